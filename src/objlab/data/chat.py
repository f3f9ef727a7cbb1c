"""Tokenising prompts and responses with the model's chat template.

Training, budget accounting and evaluation all render text through this one encoder, so a
token counted in the budget is the same token the model is trained on and evaluated with.
Prompt and response are tokenised separately (as TRL's prompt-completion format does): the
prompt ends with the template's generation prompt, the response carries the template's
end-of-turn tokens, which are trained on so the model learns to stop.
"""

from __future__ import annotations

from functools import lru_cache

from objlab.data.records import EncodedPair


class ChatEncoder:
    """Renders (prompt, response) with a tokenizer's chat template into token ids."""

    def __init__(self, tokenizer, max_length: int = 1024) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncated = 0
        self._prompt_text = lru_cache(maxsize=65536)(self._render_prompt)

    def _render_prompt(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def prompt_text(self, prompt: str) -> str:
        """The prompt as the model sees it: chat template plus generation prompt."""
        return self._prompt_text(prompt)

    def response_text(self, prompt: str, response: str) -> str:
        """The assistant turn as the template renders it (response plus end-of-turn markup)."""
        prompt_text = self.prompt_text(prompt)
        full = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(prompt_text) and len(full) > len(prompt_text):
            return full[len(prompt_text) :]
        # Templates that rewrite history (e.g. strip reasoning) do not extend the prompt text;
        # fall back to the response followed by the end-of-sequence token.
        return response + (self.tokenizer.eos_token or "")

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of the rendered prompt, for generation and scoring."""
        return self._ids(self.prompt_text(prompt))

    def encode_pair(self, prompt: str, response: str) -> EncodedPair:
        """Token ids of prompt and response; the response is cut to fit ``max_length``.

        Cutting is counted in ``truncated`` (and reported in the manifest), never silent. A
        prompt that alone fills ``max_length`` keeps its last tokens so at least one response
        token remains to train on.
        """
        prompt_ids = self.encode_prompt(prompt)
        response_ids = self._ids(self.response_text(prompt, response))
        if len(prompt_ids) + len(response_ids) > self.max_length:
            self.truncated += 1
            keep_prompt = min(len(prompt_ids), self.max_length - 1)
            prompt_ids = prompt_ids[len(prompt_ids) - keep_prompt :]
            response_ids = response_ids[: self.max_length - keep_prompt]
        return EncodedPair(prompt_ids=tuple(prompt_ids), response_ids=tuple(response_ids))
