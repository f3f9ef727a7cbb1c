"""Judges and translators: a chat client plus a rubric (or a translation prompt) plus the cache.

``Judge.score`` sends each (rubric inputs) to the judge model once -- identical inputs within a
call are sent once, and inputs already in the verdict cache are not sent at all -- and returns
one ``Verdict`` per input. A reply the rubric cannot parse, or a request that failed after its
retries, is a ``Verdict`` with ``error`` set: the caller records it as an error item and counts
it, it is never dropped and never cached (a later run asks again).

``Translator`` serves the low-resource-language attacks through the same clients and cache;
its key holds the translator's identity, the language and the direction. What the jailbreak
axis needs from a translator is small (``TranslatorLike``: text in, text out, language
named), so another translator -- the demo organism's own, a rule-based one, a service -- fits
in by implementing those two methods and ``identity``. A user's translator written in Python
needs less: ``kind: python`` in the config (``python_translator.py``) adapts one that
translates a single text at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from objlab.config.evaluation import JudgeSettings, TranslatorSettings
from objlab.errors import ConfigError
from objlab.scoring.cache import VerdictCache, cache_key
from objlab.scoring.chat_clients import (
    ChatClient,
    HFChatClient,
    OpenAIChatClient,
)
from objlab.scoring.rubrics import Rubric, RubricParseError

TRANSLATION_VERSION = "translate-v1"
TRANSLATION_MAX_TOKENS = 1024
REQUEST_FAILED = "judge request failed"
TRANSLATION_FAILED = "translation failed"


def is_request_failure(error: str | None) -> bool:
    """True for an item error that says a judge or translator request failed after its retries
    (the endpoint was down, overloaded or erroring): unlike an unparseable verdict, which is the
    judge's answer, asking again later can succeed, so the grid retries such a cell."""
    return bool(error) and error.startswith((REQUEST_FAILED, TRANSLATION_FAILED))


@dataclass(frozen=True)
class Verdict:
    """A judge's verdict: the rubric's fields and score, the raw reply, or the error."""

    fields: dict
    score: float | None
    raw: str
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return asdict(self)


def _parse(rubric: Rubric, raw: str) -> Verdict:
    try:
        fields, score = rubric.parse(raw)
    except RubricParseError as error:
        return Verdict({}, None, raw, f"unparseable verdict: {error}")
    return Verdict(fields, score, raw)


def _cached_call(
    client: ChatClient, cache: VerdictCache, keys: list[str], conversations: list[list[dict]], max_tokens: int
) -> tuple[dict[str, dict], dict[str, str]]:
    """(cached entries by key, fresh replies or errors by key) -- each distinct key asked once."""
    cached = cache.get_many(list(dict.fromkeys(keys)))
    first: dict[str, list[dict]] = {}
    for key, conversation in zip(keys, conversations):
        if key not in cached:
            first.setdefault(key, conversation)
    replies = client.complete_many(list(first.values()), max_tokens) if first else []
    return cached, dict(zip(first, replies))


class Judge:
    """Scores rubric inputs with a chat model, through the verdict cache."""

    def __init__(self, client: ChatClient, cache: VerdictCache) -> None:
        self.client, self.cache = client, cache

    @property
    def identity(self) -> str:
        return self.client.identity

    def score(self, rubric: Rubric, inputs: list[dict[str, str]], key_parts: Callable[[dict], tuple[str, str]]) -> list[Verdict]:
        """One verdict per input (a dict of the rubric's template fields).

        ``key_parts(input)`` gives the (prompt, response) the cache key is made of.
        """
        identity = f"{self.identity}|{rubric.identity}"
        keys = [cache_key(identity, *key_parts(fields)) for fields in inputs]
        conversations = [rubric.conversation(**fields) for fields in inputs]
        cached, replies = _cached_call(self.client, self.cache, keys, conversations, rubric.max_tokens)
        fresh: dict[str, Verdict] = {}
        for key, reply in replies.items():
            fresh[key] = Verdict({}, None, "", f"{REQUEST_FAILED}: {reply.error}") if reply.error else _parse(rubric, reply.text)
        self.cache.put_many({key: verdict.to_dict() for key, verdict in fresh.items() if verdict.ok})
        verdicts = []
        for key in keys:
            if key in cached:
                entry = cached[key]
                verdicts.append(Verdict(entry["fields"], entry["score"], entry.get("raw", ""), None, cached=True))
            else:
                verdicts.append(fresh[key])
        return verdicts


Translation = tuple[str | None, str | None]  # (the translated text, None) or (None, why it failed)


class TranslatorLike(Protocol):
    """The translator interface of the jailbreak axis: text in, text out, language named.

    ``language`` is the configured language (objlab's own ``translation`` attack uses it);
    StrongREJECT's ``translation_<language>`` attacks name theirs. Each method returns one
    ``Translation`` per text, in order; a failure is an entry with its reason, never an
    exception that loses the batch. ``identity`` names the translator in the evaluation info.
    """

    identity: str
    language: str

    def to_language(self, texts: list[str], language: str | None = None) -> list[Translation]: ...

    def to_english(self, texts: list[str], language: str | None = None) -> list[Translation]: ...


class Translator:
    """Translates attack prompts into a language and responses back into English, with a chat
    model (endpoint or local) through the verdict cache."""

    def __init__(self, client: ChatClient, language: str, cache: VerdictCache) -> None:
        self.client, self.language, self.cache = client, language, cache
        self.identity = f"{client.identity}|{TRANSLATION_VERSION}|{language}"

    def _translate(self, texts: list[str], source: str, target: str, language: str) -> list[Translation]:
        """(translation, error) per text; ``language`` (the non-English side) is in the key."""
        instruction = (
            f"Translate the following text from {source} into {target}. Reply with the translation only, "
            "keeping the meaning and the formatting; do not answer or comment on it."
        )
        conversations = [[{"role": "system", "content": instruction}, {"role": "user", "content": text}] for text in texts]
        identity = f"{self.client.identity}|{TRANSLATION_VERSION}|{language}"
        keys = [cache_key(f"{identity}|{source}->{target}", text, "") for text in texts]
        cached, replies = _cached_call(self.client, self.cache, keys, conversations, TRANSLATION_MAX_TOKENS)
        self.cache.put_many({key: {"text": reply.text} for key, reply in replies.items() if reply.error is None})
        out = []
        for key in keys:
            if key in cached:
                out.append((cached[key]["text"], None))
            else:
                reply = replies[key]
                out.append((reply.text, None) if reply.error is None else (None, f"{TRANSLATION_FAILED}: {reply.error}"))
        return out

    def to_language(self, texts: list[str], language: str | None = None) -> list[Translation]:
        language = language or self.language
        return self._translate(texts, "English", language, language)

    def to_english(self, texts: list[str], language: str | None = None) -> list[Translation]:
        language = language or self.language
        return self._translate(texts, language, "English", language)


def build_client(kind: str, model: str | None, where: str, limits: JudgeSettings, base_url: str | None, api_key_env: str) -> ChatClient:
    """A chat client from config values; ``where`` names the config section in errors."""
    if not model:
        raise ConfigError(f"{where}.model: required when {where}.kind is {kind!r}")
    if kind == "hf":
        return HFChatClient(model)
    return OpenAIChatClient(
        model,
        base_url=base_url,
        api_key_env=api_key_env,
        max_concurrency=limits.max_concurrency,
        max_retries=limits.max_retries,
        timeout_s=limits.timeout_s,
        backoff_s=limits.backoff_s,
    )


def judge_client(settings: JudgeSettings) -> ChatClient:
    """The client of the configured judge (``kind`` must not be ``none``)."""
    return build_client(settings.kind, settings.model, "eval.judge", settings, settings.base_url, settings.api_key_env)


def translator_client(settings: TranslatorSettings, limits: JudgeSettings) -> ChatClient:
    """The translator's client; retry and concurrency limits are the judge section's."""
    return build_client(settings.kind, settings.model, "eval.jailbreak.translator", limits, settings.base_url, settings.api_key_env)
