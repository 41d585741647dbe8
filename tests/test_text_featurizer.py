"""The text tokenizer, no pipeline: normalization, scripts, bigrams, bad bytes."""

from __future__ import annotations

import pytest

from embedbeam.transforms.common.records import InputRef
from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.read_bytes import read_bounded
from embedbeam.transforms.sparse.text import tokenize


def test_tokens_are_nfkc_normalized_and_case_folded():
    assert tokenize("The ﬁne STRASSE, Straße!".encode()) == ["the", "fine", "strasse", "strasse"]


def test_words_of_any_script_are_tokens_and_cjk_characters_stand_alone():
    assert tokenize("Привет, Καλημέρα 東京 ok".encode()) == ["привет", "καλημέρα", "東", "京", "ok"]


def test_bigrams_join_neighbours():
    assert tokenize(b"red fox runs", bigrams=True) == [
        "red", "fox", "runs", "red fox", "fox runs",
    ]  # fmt: skip


def test_bytes_that_are_not_utf8_are_replaced_not_fatal():
    assert tokenize(b"caf\xe9 au lait") == ["caf", "au", "lait"]


@pytest.mark.parametrize("data", [b"", b"   \n\t", b"...!?", b"\xff\xfe\xfa"])
def test_text_without_words_has_no_tokens(data):
    with pytest.raises(InvalidInput) as caught:
        tokenize(data)

    assert caught.value.reason == "no_tokens"


def test_a_50_mb_text_file_is_refused_without_reading_it_all(tmp_path):
    big = tmp_path / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)

    with pytest.raises(InvalidInput) as caught:
        read_bounded(InputRef("big", str(big), None, "text"), max_bytes=20 * 1024 * 1024)

    assert caught.value.reason == "file_too_large"
