"""Digit words 0 .. 9 written in English, German, French, Spanish and Italian.

The spelling comes from num2words (PyPI), which spells cardinal numbers in
many languages; only these five are used. One text file per word and
language, filed under the English digit word, as the spoken digits are
(examples/spoken_digits.py), so a joint model shares their labels.

    ROOT/<word>/<language>.txt      e.g. ROOT/seven/de.txt holds "sieben"
"""

from __future__ import annotations

import pathlib

from num2words import num2words

from examples.spoken_digits import WORDS

LANGUAGES = ("en", "de", "fr", "es", "it")


def digit_word(digit: int, language: str) -> str:
    """The digit spelled out in `language`: 7 -> "sieben" (de), "sette" (it)."""
    if language not in LANGUAGES:
        raise ValueError(f"digit words are written in {', '.join(LANGUAGES)}, not {language!r}")
    return num2words(digit, lang=language)


def write_digit_words(
    root: pathlib.Path, languages: tuple[str, ...] = LANGUAGES
) -> list[pathlib.Path]:
    """Every digit in every language: `root/<word>/<language>.txt`."""
    paths = []
    for language in languages:
        for digit, word in enumerate(WORDS):
            path = root / word / f"{language}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(digit_word(digit, language) + "\n", encoding="utf-8")
            paths.append(path)
    return paths
