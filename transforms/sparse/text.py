"""Text -> normalized tokens. The vocabulary (ids) and tf-idf weights come from TFT.

Bytes are decoded as UTF-8; undecodable bytes are *replaced* (U+FFFD is not a
word character, so they vanish), because one bad byte in a long document
should not throw the document away. Text is NFKC-normalized and case-folded,
then split into runs of word characters in any script; Chinese, Japanese and
Korean characters, written without spaces, are one token each. Optional
bigrams join neighbouring tokens with a space.
"""

from __future__ import annotations

import re
import unicodedata

from embedbeam.transforms.sparse.features import InvalidInput

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")


def tokenize(data: bytes, bigrams: bool = False) -> list[str]:
    """The document's tokens (and bigrams); InvalidInput `no_tokens` when there are none."""
    text = unicodedata.normalize("NFKC", data.decode("utf-8", errors="replace")).casefold()
    tokens = _TOKEN.findall(text)
    if not tokens:
        raise InvalidInput("no_tokens", "the text has no words")
    if bigrams:
        tokens += [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]
    return tokens
