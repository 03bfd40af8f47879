"""The plug-ins of a run: the ones the caller gave, else those the config names; and their
names, which ``settings.json`` records so that a run resumes only with the same ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

from raftkit.errors import UsageError
from raftkit.extract import Extractor, PdfExtractor, VisionPdfExtractor, default_extractors
from raftkit.llm import LLMClient
from raftkit.llm.caps import CompletionCaps
from raftkit.pipeline.config import RaftConfig
from raftkit.synth import (
    AnswerGenerator,
    BM25Sampler,
    DistractorSampler,
    EmbeddingSampler,
    Prompts,
    QuestionSynthesizer,
    TeacherAnswerGenerator,
    TeacherQuestionSynthesizer,
    TypedQuestionSynthesizer,
    UniformSampler,
)
from raftkit.types import Chunk

__all__ = [
    "AnswererArg",
    "SamplerArg",
    "SynthesizerArg",
    "make_answerer",
    "make_sampler",
    "make_synthesizer",
    "plugin_name",
    "run_extractors",
    "run_settings",
]

SynthesizerArg = QuestionSynthesizer | Callable[[LLMClient], QuestionSynthesizer] | None
AnswererArg = AnswerGenerator | Callable[[LLMClient], AnswerGenerator] | None
SamplerArg = DistractorSampler | Callable[[Sequence[Chunk]], DistractorSampler] | None

_PluginT = TypeVar("_PluginT")


def make_synthesizer(
    given: SynthesizerArg,
    client: LLMClient,
    config: RaftConfig,
    prompts: Prompts,
    caps: CompletionCaps | None = None,
) -> QuestionSynthesizer:
    """``given`` (an instance, or a factory taking the journaled client), else the teacher
    (asking for the config's question mix, when it has one)."""
    mix = config.question_mix
    if mix is not None and given is not None:
        raise UsageError(
            "a question mix is asked of the built-in question synthesizer; a synthesizer of "
            "your own sets Question.question_type itself (leave question_mix unset)"
        )

    def default(client: LLMClient) -> QuestionSynthesizer:
        if mix is not None:
            return TypedQuestionSynthesizer(
                client,
                config.teacher_model,
                mix,
                prompts=prompts,
                seed=config.seed,
                max_tokens=config.question_max_tokens,
                caps=caps,
            )
        return TeacherQuestionSynthesizer(
            client,
            config.teacher_model,
            prompts=prompts,
            max_tokens=config.question_max_tokens,
            caps=caps,
        )

    return _resolve(given, client, default, QuestionSynthesizer)


def make_answerer(
    given: AnswererArg,
    client: LLMClient,
    config: RaftConfig,
    prompts: Prompts,
    caps: CompletionCaps | None = None,
) -> AnswerGenerator:
    """``given`` (an instance, or a factory taking the journaled client), else the teacher."""

    def default(client: LLMClient) -> AnswerGenerator:
        return TeacherAnswerGenerator(
            client,
            config.teacher_model,
            prompts=prompts,
            max_attempts=config.max_answer_attempts,
            max_tokens=config.answer_max_tokens,
            rules=config.verification,
            caps=caps,
        )

    return _resolve(given, client, default, AnswerGenerator)


async def make_sampler(
    given: SamplerArg, client: LLMClient, config: RaftConfig, chunks: list[Chunk]
) -> DistractorSampler:
    """``given`` (an instance, or a factory taking the chunks), else the config's sampler."""
    if isinstance(given, DistractorSampler) and not isinstance(given, type):
        return given
    if given is not None:
        return given(chunks)
    if config.sampler == "bm25":
        return await BM25Sampler.build(chunks)
    if config.sampler == "embedding":
        return await EmbeddingSampler.from_client(chunks, client, model=config.embedding_model)
    return UniformSampler(chunks)


def run_extractors(
    config: RaftConfig,
    given: Sequence[Extractor] | None,
    client: LLMClient | None = None,
    caps: CompletionCaps | None = None,
) -> list[Extractor]:
    """The extractors of a run: ``given`` (else the built-in ones), with the vision extractor
    in place of the PDF one when the config names a vision model and there is a client."""
    extractors = list(given) if given is not None else default_extractors()
    if config.vision_model is None or client is None:
        return extractors
    vision = VisionPdfExtractor(
        client,
        config.vision_model,
        table_pages_only=config.vision_pages == "tables",
        caps=caps,
    )
    return [vision, *(e for e in extractors if not isinstance(e, PdfExtractor))]


def plugin_name(plugin: object) -> str:
    """``module.QualifiedName`` of a plug-in: its class, or the function itself."""
    named = plugin if callable(plugin) and hasattr(plugin, "__qualname__") else type(plugin)
    return f"{getattr(named, '__module__', '?')}.{getattr(named, '__qualname__', repr(named))}"


def run_settings(config: RaftConfig, plugins: Mapping[str, object]) -> dict[str, Any]:
    """What ``settings.json`` records: the data-shaping config and, by name, the plug-ins the
    caller chose (``None`` values are the defaults the config names, and are left out)."""
    settings = config.data_settings()
    chosen: dict[str, str | list[str]] = {}
    for role, plugin in plugins.items():
        if plugin is None:
            continue
        if isinstance(plugin, list | tuple):
            chosen[role] = [plugin_name(p) for p in plugin]
        else:
            chosen[role] = plugin_name(plugin)
    if chosen:
        # only when the caller chose one, so runs with the defaults resume as before
        settings["plugins"] = chosen
    return settings


def _resolve(
    given: _PluginT | Callable[[LLMClient], _PluginT] | None,
    client: LLMClient,
    default: Callable[[LLMClient], _PluginT],
    protocol: type[Any],
) -> _PluginT:
    """A plug-in given as an instance, a factory taking the journaled client, or the default."""
    if given is None:
        return default(client)
    if isinstance(given, protocol) and not isinstance(given, type):
        return cast("_PluginT", given)
    factory = cast("Callable[[LLMClient], _PluginT]", given)
    return factory(client)
