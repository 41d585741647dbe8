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


def test_char_ngrams_are_marked_runs_of_each_word_between_boundaries():
    assert tokenize(b"Sei", char_ngrams="2:3") == [
        "sei", "#<s", "#se", "#ei", "#i>", "#<se", "#sei", "#ei>",
    ]  # fmt: skip


def test_cousin_words_share_char_ngrams_but_no_word_token():
    sette, siete = (set(tokenize(word, char_ngrams="2:4")) for word in (b"sette", b"siete"))

    assert "sette" not in siete and sorted(sette & siete) == ["#<s", "#e>", "#et", "#te", "#te>"]


@pytest.mark.parametrize("value", ["4:2", "0:3", "two", "2:"])
def test_a_malformed_char_ngram_range_is_refused(value):
    with pytest.raises(ValueError):
        tokenize(b"word", char_ngrams=value)
