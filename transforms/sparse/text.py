"""Text -> normalized tokens. The vocabulary (ids) and tf-idf weights come from TFT.

Bytes are decoded as UTF-8; undecodable bytes are *replaced* (U+FFFD is not a
word character, so they vanish), because one bad byte in a long document
should not throw the document away. Text is NFKC-normalized and case-folded,
then split into runs of word characters in any script; Chinese, Japanese and
Korean characters, written without spaces, are one token each. Optional
bigrams join neighbouring tokens with a space. Optional character n-grams of
each word (fastText's subwords: the word between `<` and `>`, cut into every
run of MIN..MAX characters) let a word never seen in training share features
with its cousins: "sette" and "siete" share `<s`, `se`, `te>`, ...
"""

from __future__ import annotations

import re
import unicodedata

from embedbeam.transforms.sparse.features import InvalidInput

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
# Marks an n-gram token: never part of a word token, so the n-gram "sei" of "seis"
# and the Italian word "sei" stay two tokens.
NGRAM_MARK = "#"


def char_ngram_range(value: str) -> tuple[int, int] | None:
    """`"MIN:MAX"` or `"N"` -> (MIN, MAX); `""` -> None (no n-grams); ValueError if malformed."""
    if not value:
        return None
    low, colon, high = value.partition(":")
    try:
        bounds = int(low), int(high if colon else low)
    except ValueError:
        raise ValueError(f"character n-grams are MIN:MAX or N, e.g. 2:4, not {value!r}") from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise ValueError(f"character n-grams need 1 <= MIN <= MAX, not {value!r}")
    return bounds


def tokenize(data: bytes, bigrams: bool = False, char_ngrams: str = "") -> list[str]:
    """The document's tokens (then bigrams, then each word's character n-grams, as
    `char_ngram_range` reads `char_ngrams`); InvalidInput `no_tokens` when there are none."""
    text = unicodedata.normalize("NFKC", data.decode("utf-8", errors="replace")).casefold()
    words = _TOKEN.findall(text)
    if not words:
        raise InvalidInput("no_tokens", "the text has no words")
    tokens = list(words)
    if bigrams:
        tokens += [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
    ngram_sizes = char_ngram_range(char_ngrams)
    if ngram_sizes is not None:
        tokens += [gram for word in words for gram in char_ngrams_of(word, *ngram_sizes)]
    return tokens


def char_ngrams_of(word: str, low: int, high: int) -> list[str]:
    """Every run of `low`..`high` characters of `<word>`, each marked with NGRAM_MARK."""
    padded = f"<{word}>"
    return [
        NGRAM_MARK + padded[start : start + size]
        for size in range(low, high + 1)
        for start in range(len(padded) - size + 1)
    ]
