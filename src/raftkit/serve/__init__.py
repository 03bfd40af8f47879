"""Floor 3: serving a local open-weight model (and LoRA adapters) over an OpenAI-compatible
API, for evaluation on small models and CPUs.

- :class:`LocalChatModel` — the base model and named adapters, answering chat requests with
  transformers' ``generate`` (the ``train`` extra).
- :func:`create_app` — ``/v1/models`` and ``/v1/chat/completions`` on Starlette.
- :class:`ServerThread` — the app on 127.0.0.1 in a background thread.

``raftkit serve BASE --adapter raft=PATH`` runs it from the command line. For production
throughput serve with vLLM or llama.cpp instead (docs/open-models.md): the API is the same.
"""

from raftkit.serve.app import create_app, parse_chat_request
from raftkit.serve.model import ChatRequest, Completion, LocalChatModel, RequestError
from raftkit.serve.server import ServerThread

__all__ = [
    "ChatRequest",
    "Completion",
    "LocalChatModel",
    "RequestError",
    "ServerThread",
    "create_app",
    "parse_chat_request",
]
