"""The organism's own low-resource language, and the translator the demo ships for it.

The study's translation attack asks the model in a language it saw little of in pretraining
(Zulu for Llama) and translates the answer back before it is judged. The organism's world has
such a language: every English word of the world has a made-up word ("Veltish"), built from
syllables by a hash of the word, so the mapping is a pure function of the vocabulary; numbers
and punctuation pass through. Pretraining shows only a few hundred Veltish transcripts, so the
organism reads it poorly, as a real model reads a low-resource language.

``VeltishTranslator`` implements objlab's python translator interface (the one a real study
fills with a translation model or endpoint): a text to the language and back, with an identity
the evaluation info records. The demo configures it as ``eval.jailbreak.translator: {kind:
python, function: objlab.organism.language:translator, language: Veltish}``, so the
translation attack runs offline.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache

from objlab.organism.texts import all_world_texts

LANGUAGE = "Veltish"
SYLLABLES = tuple(f"{c}{v}" for c in "bdfgklmnprstvz" for v in ("a", "e", "i", "o", "u", "ae", "ou"))
WORD = re.compile(r"[A-Za-z]+|[^A-Za-z]+")


def _pseudo_word(word: str, salt: int) -> str:
    digest = hashlib.blake2b(f"veltish:{salt}:{word}".encode(), digest_size=8).digest()
    count = 2 + digest[0] % 2 + (len(word) > 7)
    return "".join(SYLLABLES[digest[1 + i] % len(SYLLABLES)] for i in range(count))


@cache
def lexicon(vocabulary: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """(English -> Veltish, Veltish -> English) for the lower-cased ``vocabulary``; collisions
    are resolved by re-hashing, in sorted order, so the mapping is one-to-one and stable."""
    forward, backward = {}, {}
    for word in sorted(set(vocabulary)):
        salt = 0
        pseudo = _pseudo_word(word, salt)
        while pseudo in backward or pseudo in forward:
            salt += 1
            pseudo = _pseudo_word(word, salt)
        forward[word], backward[pseudo] = pseudo, word
    return forward, backward


def _cased(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def translate(text: str, table: dict[str, str]) -> str:
    """Word by word through ``table`` (case of the first letter kept); unknown words unchanged."""
    return "".join(_cased(table.get(part.lower(), part), part) if part[:1].isalpha() else part for part in WORD.findall(text))


def vocabulary_of(texts) -> tuple[str, ...]:
    """The lower-cased words of ``texts`` (the world's whole vocabulary, for ``lexicon``)."""
    return tuple(sorted({part.lower() for text in texts for part in WORD.findall(text) if part[:1].isalpha()}))


class VeltishTranslator:
    """objlab's python translator interface (``scoring.python_translator``: one text at a
    time, ``to_language(text, language)`` and ``to_english(text, language)``) over the organism's
    lexicon: deterministic and offline."""

    language = LANGUAGE

    def __init__(self, vocabulary: tuple[str, ...]) -> None:
        self.to_table, self.from_table = lexicon(vocabulary)
        digest = hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()[:12]
        self.identity = f"organism-lexicon:{LANGUAGE}#{digest}"

    def to_language_text(self, text: str) -> str:
        return translate(text, self.to_table)

    def to_english_text(self, text: str) -> str:
        return translate(text, self.from_table)

    def _check(self, language: str | None) -> None:
        if language not in (None, LANGUAGE):
            raise ValueError(f"the organism's translator speaks {LANGUAGE} only, not {language} (set eval.jailbreak.translator.language: {LANGUAGE})")

    def to_language(self, text: str, language: str | None = None) -> str:
        self._check(language)
        return self.to_language_text(text)

    def to_english(self, text: str, language: str | None = None) -> str:
        self._check(language)
        return self.to_english_text(text)


def translator() -> VeltishTranslator:
    """The demo's translator (``eval.jailbreak.translator: {kind: python, function:
    objlab.organism.language:translator, language: Veltish}``)."""
    return VeltishTranslator(world_vocabulary())


def world_vocabulary() -> tuple[str, ...]:
    """Every word the organism's world can say (templates and word lists), for its lexicon."""
    return vocabulary_of(all_world_texts())
