"""A featurizer learned on speech: pocketsphinx's English phone recognizer on the real speakers.

The one trained speech model that installs offline is the US English acoustic
model inside pocketsphinx's PyPI wheel (not an embedbeam dependency:
`pip install pocketsphinx` first). Each clip becomes the phones it decodes in
all-phone mode; a clip's vector is the counts of its phone 1- to 3-grams,
L2-normalized. On the clips of `python -m bench.audio_voices` (same real
speakers, same unheard espeak-ng voices), reported as there: per real speaker
the 1-NN label accuracy against espeak-ng clips of the speaker's language,
and the 5-NN among the unheard espeak-ng clips; once on the clips as they are
and once with every clip through an 8 kHz telephone band first (the Asterisk
prompts are 8 kHz), so both sides have the same band.

    python -m bench.audio_phones [--workdir bench/work/voices]

Writes bench/results/audio_phones.json; bench/audio_voices.md quotes it.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import time

import numpy as np
import soundfile
import soxr

from bench import record
from bench.audio_voices import DATA, materialize
from embedbeam.pipeline.model.quality import leave_one_out_knn_accuracy
from examples.real_speakers import real_speaker_accuracy

_RATE = 16_000
_NOT_PHONES = {"SIL", "<s>", "</s>", "+NSN+", "+SPN+", "+BREATH+"}


def phone_decoder():
    import pocketsphinx

    model = pathlib.Path(pocketsphinx.get_model_path()) / "en-us"
    return pocketsphinx.Decoder(
        hmm=str(model / "en-us"),
        allphone=str(model / "en-us-phone.lm.bin"),
        lw=2.0,
        beam=1e-20,
        pbeam=1e-20,
        samprate=_RATE,
        loglevel="FATAL",
    )


def phones(decoder, path: pathlib.Path, telephone_band: bool) -> list[str]:
    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if telephone_band:
        samples, rate = soxr.resample(samples, rate, 8_000), 8_000
    samples = soxr.resample(samples, rate, _RATE)
    peak = float(np.abs(samples).max()) or 1.0
    pcm = (samples / peak * 0.7 * 32767).astype(np.int16).tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [segment.word for segment in decoder.seg() if segment.word not in _NOT_PHONES]


def phone_ngram_vectors(sequences: list[list[str]]) -> np.ndarray:
    """Counts of each sequence's phone 1- to 3-grams (word edges marked), L2-normalized."""
    counts = []
    for sequence in sequences:
        padded = ["#", *sequence, "#"]
        counts.append(
            collections.Counter(
                " ".join(padded[i : i + n]) for n in (1, 2, 3) for i in range(len(padded) - n + 1)
            )
        )
    vocabulary = {gram: i for i, gram in enumerate(sorted(set().union(*counts)))}
    vectors = np.zeros((len(counts), len(vocabulary)), dtype=np.float32)
    for row, count in enumerate(counts):
        for gram, value in count.items():
            vectors[row, vocabulary[gram]] = value
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("bench/work/voices"))
    args = parser.parse_args()
    root = args.workdir / "clips"
    materialize(root, DATA[next(iter(DATA))]())
    clips = sorted((root / "test").glob("*/*.wav")) + sorted((root / "real").glob("*/*.wav"))
    uris = [str(clip) for clip in clips]
    labels = np.array([clip.parent.name for clip in clips])
    synthetic = np.array(["+" in clip.stem for clip in clips])
    decoder = phone_decoder()
    results: dict = {"date": time.strftime("%Y-%m-%d"), "clips": len(clips), "runs": []}
    for telephone_band in (False, True):
        vectors = phone_ngram_vectors([phones(decoder, clip, telephone_band) for clip in clips])
        results["runs"].append(
            {
                "telephone_band": telephone_band,
                "real_speaker_1nn": real_speaker_accuracy(uris, labels, vectors),
                "espeak_unheard_knn5": leave_one_out_knn_accuracy(
                    vectors[synthetic], labels[synthetic]
                ),
            }
        )
    record("audio_phones", results)


if __name__ == "__main__":
    main()
