"""Chat-completion clients for judges and translators: an OpenAI-compatible endpoint or a local model.

Both take many conversations at once and return one ``Completion`` per conversation, in order;
a failure is a ``Completion`` with an ``error``, never an exception that loses the batch, so
every failed item is recorded and counted.

The endpoint client speaks ``POST {base_url}/chat/completions`` (OpenAI, vLLM's and llama.cpp's
servers, most gateways) with the standard library only. Requests run on a thread pool of
``max_concurrency``; 429, 5xx, timeouts and dropped connections are retried up to
``max_retries`` times with exponential backoff (``backoff_s * 2**attempt``, honouring a
``Retry-After`` header, with a little jitter so parallel workers do not retry in lockstep).
The API key is read from the environment variable named in the config at request time; it is
held in no attribute, and it is scrubbed from every error message.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from objlab.config.evaluation import GenerationSettings
from objlab.lm.generation import GenerationRequest, HFGenerator

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 60.0
ERROR_BODY_CHARS = 300

Conversation = list[dict[str, str]]


@dataclass(frozen=True)
class Completion:
    """The reply text, or the error that prevented one."""

    text: str | None
    error: str | None = None


class ChatClient(Protocol):
    identity: str
    calls: int

    def complete_many(self, conversations: list[Conversation], max_tokens: int) -> list[Completion]: ...


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIChatClient:
    """Thread-pooled, retrying client for an OpenAI-compatible chat endpoint; temperature 0."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        max_retries: int = 5,
        timeout_s: float = 60.0,
        backoff_s: float = 1.0,
    ) -> None:
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.max_concurrency, self.max_retries = max_concurrency, max_retries
        self.timeout_s, self.backoff_s = timeout_s, backoff_s
        self.identity = f"openai:{model}@{self.base_url}"
        self.calls = 0
        self.retries = 0
        self._count_lock = threading.Lock()

    def _count(self, calls: int = 0, retries: int = 0) -> None:
        with self._count_lock:
            self.calls += calls
            self.retries += retries

    def _scrub(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text

    def _request(self, body: dict) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return urllib.request.Request(f"{self.base_url}/chat/completions", json.dumps(body).encode(), headers, method="POST")

    def _post_once(self, body: dict) -> str:
        """One HTTP round trip; raises ``_Retryable`` for transient failures, ValueError otherwise."""
        try:
            with urllib.request.urlopen(self._request(body), timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:ERROR_BODY_CHARS]
            message = f"HTTP {error.code} from {self.base_url}: {detail}"
            if error.code in RETRYABLE_STATUS:
                retry_after = error.headers.get("Retry-After") if error.headers else None
                raise _Retryable(message, float(retry_after) if retry_after and retry_after.isdigit() else None) from None
            hint = f" (is {self.api_key_env} set?)" if error.code in (401, 403) else ""
            raise ValueError(message + hint) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise _Retryable(f"{type(error).__name__} talking to {self.base_url}: {getattr(error, 'reason', error)}") from None
        except json.JSONDecodeError:
            raise ValueError(f"{self.base_url} answered with something that is not JSON") from None
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"{self.base_url} answered without choices[0].message.content") from None

    def complete(self, conversation: Conversation, max_tokens: int) -> Completion:
        """One conversation, retried on transient failures."""
        body = {"model": self.model, "messages": conversation, "temperature": 0, "max_tokens": max_tokens}
        self._count(calls=1)
        for attempt in range(self.max_retries + 1):
            try:
                return Completion(self._post_once(body))
            except ValueError as error:
                return Completion(None, self._scrub(str(error)))
            except _Retryable as error:
                if attempt == self.max_retries:
                    return Completion(None, self._scrub(f"{error} (gave up after {attempt + 1} attempts)"))
                self._count(retries=1)
                delay = error.retry_after if error.retry_after is not None else self.backoff_s * 2**attempt
                time.sleep(min(MAX_BACKOFF_S, delay) * (1 + 0.25 * random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def complete_many(self, conversations: list[Conversation], max_tokens: int) -> list[Completion]:
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            return list(pool.map(lambda conversation: self.complete(conversation, max_tokens), conversations))


class HFChatClient:
    """A local Hugging Face chat model used as judge or translator (greedy, batched).

    Loaded once per client; ``generator`` can be given to share an already loaded model.
    """

    def __init__(self, model: str, generator: HFGenerator | None = None) -> None:
        self.identity = f"hf:{model}"
        self.calls = 0
        if generator is None:
            from objlab.config.sections import ModelSettings
            from objlab.lm.loading import load_bundle

            bundle = load_bundle(ModelSettings(name_or_path=model))
            bundle.model.eval()
            settings = GenerationSettings(backend="hf")
            generator = HFGenerator(bundle.model, bundle.tokenizer, settings, bundle.base_vocab_size, bundle.device)
        self.generator = generator

    def complete_many(self, conversations: list[Conversation], max_tokens: int) -> list[Completion]:
        tokenizer = self.generator.tokenizer
        texts = [tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True) for conversation in conversations]
        requests = [
            GenerationRequest(tuple(tokenizer(text, add_special_tokens=False)["input_ids"]), max_new_tokens=max_tokens)
            for text in texts
        ]
        self.calls += len(requests)
        return [Completion(generated.text) for generated in self.generator.generate(requests)]
