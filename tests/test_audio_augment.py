"""The training data of the speech model: espeak-ng in five languages, real speakers, augmentation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import soundfile

from examples.audio_augment import RATE, Recipe, augment, write_augmented
from examples.real_speakers import SPEAKERS, write_real_digits
from examples.spoken_digits import (
    LANGUAGES,
    VARIANTS,
    WIDE_PITCHES,
    WIDE_SPEEDS,
    WORDS,
    Palette,
    every_variant,
    speak,
    voices,
    voices_per_language,
)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def spoken_seven_16k(tmp_path_factory) -> np.ndarray:
    """ "7" in a French espeak-ng voice at 16 kHz, as augmentation takes it."""
    import librosa

    path = tmp_path_factory.mktemp("seven") / "seven.wav"
    speak("seven", voices(1, languages=("fr",))[0], path)
    return librosa.load(path, sr=RATE)[0]


def test_each_language_has_its_own_voices_and_the_same_seed_picks_the_same():
    chosen = voices_per_language(3, seed=0)

    assert list(chosen) == list(LANGUAGES) == ["en", "de", "fr", "es", "it"]
    assert all(voice.language == language for language in chosen for voice in chosen[language])
    assert chosen == voices_per_language(3, seed=0)
    assert chosen["en"] == voices(3, seed=0)  # the English voices are those of the first demo


def test_a_wide_palette_draws_every_variant_and_slower_voices_the_same_for_a_seed(tmp_path):
    variants = every_variant()
    wide = Palette(variants, WIDE_SPEEDS, WIDE_PITCHES)

    chosen = voices(200, seed=0, languages=("fr",), palette=wide)

    assert set(VARIANTS) < set(variants)
    assert not any("whisper" in variant for variant in variants)
    assert {voice.speed for voice in chosen} == set(WIDE_SPEEDS)
    assert len({voice.variant for voice in chosen}) > len(VARIANTS)
    assert chosen == voices(200, seed=0, languages=("fr",), palette=wide)
    speak("seven", next(voice for voice in chosen if voice.speed == 80), tmp_path / "slow.wav")
    assert soundfile.info(tmp_path / "slow.wav").duration > 0.3


def test_a_voice_says_the_digit_in_its_language_and_files_it_under_the_english_word(tmp_path):
    german, english = voices(1, languages=("de",))[0], voices(1)[0]

    speak("seven", german, tmp_path / "de.wav")
    speak("seven", english, tmp_path / "en.wav")
    speak("seven", german, tmp_path / "de-again.wav")

    assert _digest(tmp_path / "de.wav") == _digest(tmp_path / "de-again.wav")
    assert _digest(tmp_path / "de.wav") != _digest(tmp_path / "en.wav")


def test_real_speakers_become_16_khz_wav_one_file_per_digit(tmp_path):
    paths = write_real_digits(tmp_path)

    assert len(paths) == len(SPEAKERS) * len(WORDS)
    samples, rate = soundfile.read(tmp_path / "seven" / "fr-armelle.wav")
    assert rate == 16000 and samples.ndim == 1
    assert 0.3 < samples.size / rate < 2.0  # one spoken word
    assert np.abs(samples).max() > 0.1


def test_augmented_copies_are_the_same_bytes_in_any_order(tmp_path):
    sources = write_real_digits(tmp_path / "real", SPEAKERS[:1])[:3]

    first = write_augmented(sources, tmp_path / "a", copies=2, seed=7)
    second = write_augmented(sources[::-1], tmp_path / "b", copies=2, seed=7)
    other_seed = write_augmented(sources, tmp_path / "c", copies=2, seed=8)

    digests = sorted(_digest(path) for path in first)
    assert digests == sorted(_digest(path) for path in second)
    assert len(set(digests)) == 6
    assert not set(digests) & {_digest(path) for path in other_seed}
    assert first[0].name == "fr-armelle~0.wav"


def _spectrum_share_above(samples: np.ndarray, hertz: float) -> float:
    power = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(samples.size, 1 / RATE)
    return float(power[frequencies > hertz].sum() / power.sum())


def test_the_telephone_band_has_no_energy_above_4_khz(spoken_seven_16k):
    phoned = augment(spoken_seven_16k, Recipe(channel="telephone"), np.random.default_rng(0))

    assert _spectrum_share_above(spoken_seven_16k, 4000) > 0.01
    assert _spectrum_share_above(phoned, 4000) < 1e-4


@pytest.mark.parametrize("channel", ["gsm", "mulaw"])
def test_codec_round_trips_keep_the_word_but_change_the_samples(spoken_seven_16k, channel):
    coded = augment(spoken_seven_16k, Recipe(channel=channel), np.random.default_rng(0))

    assert coded.size == pytest.approx(spoken_seven_16k.size, abs=RATE // 50)  # a GSM frame
    both = min(coded.size, spoken_seven_16k.size)
    correlation = np.corrcoef(coded[:both], spoken_seven_16k[:both])[0, 1]
    assert 0.7 < correlation < 0.9999
    assert _spectrum_share_above(coded, 4000) < 1e-3  # both codecs run at 8 kHz


def test_gain_speed_shift_noise_and_reverb_do_what_they_say(spoken_seven_16k):
    clip, rng = spoken_seven_16k, np.random.default_rng(0)
    rms = float(np.sqrt(np.mean(clip**2)))

    quieter = augment(clip, Recipe(gain_db=-20), rng)
    faster = augment(clip, Recipe(speed=1.25), rng)
    shifted = augment(clip, Recipe(shift_s=0.25), rng)
    noisy = augment(clip, Recipe(snr_db=10), rng)
    echoing = augment(clip, Recipe(reverberance=80), rng)

    assert np.sqrt(np.mean(quieter**2)) == pytest.approx(rms / 10, rel=1e-3)
    assert faster.size == pytest.approx(clip.size / 1.25, rel=0.01)
    assert np.all(shifted[: RATE // 4] == 0) and np.array_equal(shifted[RATE // 4 :], clip)
    voiced = clip != 0
    snr = 10 * np.log10(np.mean(clip[voiced] ** 2) / np.mean((noisy - clip)[voiced] ** 2))
    assert snr == pytest.approx(10, abs=0.5)
    assert echoing.size == clip.size and not np.allclose(echoing, clip, atol=1e-3)
    assert augment(clip, Recipe(), rng).tobytes() == clip.astype(np.float32).tobytes()


def test_a_real_speaker_is_matched_only_against_synthetic_voices_of_their_language():
    from examples.real_speakers import language_of, real_speaker_accuracy

    uris = [
        "test/seven/fr-armelle.wav",  # query at 0.0
        "test/seven/fr-fr+m1-s120-p30.wav",  # French gallery, far from the query
        "test/one/fr-be+f3-s150-p50.wav",  # French gallery, nearest: a wrong digit
        "test/seven/it+m1-s120-p30.wav",  # Italian: nearer still, but not French
    ]
    labels = np.array(["seven", "seven", "one", "seven"])
    embeddings = np.array([[0.0], [5.0], [1.0], [0.1]])

    assert [language_of(uri) for uri in uris] == ["fr", "fr", "fr", "it"]
    assert real_speaker_accuracy(uris, labels, embeddings) == {"fr-armelle": 0.0}
    embeddings[1] = 0.5  # now the nearest French clip says seven
    assert real_speaker_accuracy(uris, labels, embeddings) == {"fr-armelle": 1.0}
