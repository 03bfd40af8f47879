"""Fine-tuning on OpenAI (and servers that implement OpenAI's fine-tuning API)."""

from __future__ import annotations

from raftkit.finetune._models import FineTuneJob
from raftkit.finetune._rest import RestFineTuneProvider, _model_name

__all__ = ["OpenAIFineTuneProvider"]


class OpenAIFineTuneProvider(RestFineTuneProvider):
    """OpenAI's ``/files``, ``/uploads`` and ``/fine_tuning/jobs`` through an
    :class:`~raftkit.llm.OpenAIClient` the caller owns.

    ``uploads_threshold`` (default 512 MB, the most ``POST /files`` takes) is the size above
    which a file goes through the multipart Uploads API in parts of ``part_bytes`` (≤ 64 MB).
    ``dedupe=False`` uploads even when an identical file is already there.
    ``poll`` is the default :class:`~raftkit.finetune.PollPolicy` of :meth:`wait`.
    """

    async def deploy(self, model: FineTuneJob | str, *, name: str | None = None) -> str:
        """A fine-tuned OpenAI model needs no deployment: its name is usable at once."""
        return _model_name(model)
