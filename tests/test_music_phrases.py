"""The music generator: seeded clips, GM family labels, and real audio out of fluidsynth."""

from __future__ import annotations

import hashlib

import numpy as np
import soundfile

from examples.music_phrases import ACOUSTIC, FAMILIES, Clip, Phrase, music_splits, write_music

NOTE = Phrase("note", ((0, 0.0, 2.0),))


def test_families_are_the_general_midi_ones_in_program_order():
    assert len(FAMILIES) == 16 and FAMILIES[0] == "piano" and FAMILIES[-1] == "sound_effects"
    assert Clip(0, NOTE, 60, 90, 120).family == "piano"
    assert Clip(40, NOTE, 60, 90, 120).family == "strings"  # violin
    assert Clip(73, NOTE, 72, 90, 120).family == "pipe"  # flute
    assert set(ACOUSTIC) <= set(FAMILIES)


def test_splits_are_seeded_and_keep_programs_phrases_and_pitches_apart():
    splits = music_splits(train_per_program=6, test_per_program=2, seed=3)
    again = music_splits(train_per_program=6, test_per_program=2, seed=3)

    assert splits == again and splits != music_splits(train_per_program=6, test_per_program=2)
    train, phrases_held, programs_held = (
        splits.train, splits.held_out_phrases, splits.held_out_programs
    )  # fmt: skip
    assert {clip.family for clip in train} == set(ACOUSTIC)
    assert len(train) == 8 * 6 * 6 and len(phrases_held) == 8 * 6 * 2
    assert len(programs_held) == 8 * 2 * 2
    trained_programs = {clip.program for clip in train}
    assert {clip.program for clip in phrases_held} == trained_programs
    assert not {clip.program for clip in programs_held} & trained_programs
    assert not {clip.phrase for clip in phrases_held} & {clip.phrase for clip in train}
    for family in ACOUSTIC:  # each family has its own pitch range, and its own held-out roots
        held_roots = {clip.root for clip in phrases_held + programs_held if clip.family == family}
        assert not held_roots & {clip.root for clip in train if clip.family == family}
    assert all(clip.program // 8 == FAMILIES.index(clip.family) for clip in train)


def test_fluidsynth_renders_each_clip_as_real_audio_of_its_length(tmp_path):
    clips = [Clip(0, NOTE, 60, 100, 120), Clip(73, NOTE, 72, 70, 80), Clip(33, NOTE, 36, 120, 160)]

    paths = write_music(tmp_path, clips)

    assert [path.relative_to(tmp_path).as_posix() for path in paths] == [
        "piano/p000-note-n60-v100-b120.wav",
        "pipe/p073-note-n72-v70-b80.wav",
        "bass/p033-note-n36-v120-b160.wav",
    ]
    for clip, path in zip(clips, paths, strict=True):
        samples, rate = soundfile.read(path)
        assert rate == 16_000 and len(samples) == round(clip.seconds * rate)
        loud = np.abs(samples).max(axis=1) > 0.01
        # The note sounds within its attack (a flute's is slowest) and has died down by the
        # end of its release.
        assert loud[:1000].any() and loud.mean() > 0.2 and not loud[-100:].any()


def test_the_same_clips_render_to_the_same_bytes(tmp_path):
    clips = music_splits(train_per_program=1, test_per_program=1, seed=0).train[:4]

    first = write_music(tmp_path / "first", clips)
    second = write_music(tmp_path / "second", clips, batch=2)  # in other fluidsynth runs

    digests = [
        [hashlib.sha256(path.read_bytes()).hexdigest() for path in run] for run in (first, second)
    ]
    assert digests[0][:2] == digests[1][:2]  # each batch's first clips: same bytes
    for a, b in zip(first, second, strict=True):
        x, y = soundfile.read(a)[0], soundfile.read(b)[0]
        spectrum = [np.abs(np.fft.rfft(s.mean(axis=1))) for s in (x, y)]
        assert np.corrcoef(*spectrum)[0, 1] > 0.99
