"""Notes and short phrases of General MIDI instruments, rendered by fluidsynth, one folder per family.

Each clip is one GM program playing one phrase (a single note, a chord, a run
or an arpeggio) from a root pitch at a velocity and a tempo; its label is the
program's GM family (`piano`, `organ`, ...). The generator writes the MIDI
(mido) and fluidsynth renders it with the FluidR3 GM soundfont, the only
soundfont used here. Everything is seeded, so the same clips (and bytes) come
out on every machine with the same fluidsynth and soundfont.

    ROOT/<family>/<name>.wav     e.g. ROOT/reed/p066-arpeggio2-n57-v92-b120.wav

`music_splits` holds out, per family, some phrases and pitches (for trained
programs) and some programs altogether, so both can be measured apart.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
import subprocess
import tempfile
import wave

import mido
import numpy as np

SOUNDFONT = pathlib.Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 16_000
# General MIDI level 1: program p (0-based) is in family p // 8.
FAMILIES = (
    "piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
    "reed", "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive",
    "sound_effects",
)  # fmt: skip
ACOUSTIC = ("piano", "organ", "guitar", "bass", "strings", "brass", "reed", "pipe")
# Root notes each family plays its phrases from (MIDI note numbers, inclusive), so that a
# phrase (up to 16 semitones above its root) stays where FluidR3 has samples: up to note 84
# for most programs, to 96 for the pipes.
_ROOTS = {"bass": (28, 52), "pipe": (60, 80), "chromatic_percussion": (55, 80)}
_DEFAULT_ROOTS = (45, 68)
# Programs that FluidR3 leaves silent above a lower note (contrabass, tuba, baritone sax):
# their phrases move down by octaves until they fit.
_HIGHEST_NOTE = {43: 57, 58: 72, 67: 72}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_RELEASE_SECONDS = 0.75  # kept after the last note ends: the instrument's release and reverb
_GAIN = 0.4  # fluidsynth's default 0.2 leaves a soft note a few hundred 16-bit steps
_GAP_SECONDS = 0.5  # of silence between clips in one rendering, so no tail reaches the next
# The audio settings `embedbeam train` learns these families with (bench/music_quality.md):
# the full band and each band's long-term statistics without time slices (a timbre is its
# spectrum's shape, not its melody or rhythm), a longer fit that waits out a noisy
# validation loss, and the supervised-contrastive term, which pulls a family's programs
# together.
TRAIN_FLAGS = [
    "--cells", "band_summary", "--trim", "samples", "--fmin", "0", "--fmax", "8000",
    "--mels", "64", "--threshold-db", "-60", "--embedding-dim", "16",
    "--epochs", "200", "--patience", "20", "--contrastive-weight", "0.5",
]  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Phrase:
    """Notes relative to a root: (semitones above it, start beat, length in beats)."""

    name: str
    notes: tuple[tuple[int, float, float], ...]

    @property
    def beats(self) -> float:
        return max(start + length for _, start, length in self.notes)


@dataclasses.dataclass(frozen=True)
class Clip:
    program: int  # General MIDI program, 0..127
    phrase: Phrase
    root: int  # MIDI note the phrase starts from
    velocity: int
    bpm: int

    @property
    def family(self) -> str:
        return FAMILIES[self.program // 8]

    @property
    def name(self) -> str:
        return f"p{self.program:03d}-{self.phrase.name}-n{self.root}-v{self.velocity}-b{self.bpm}"

    @property
    def seconds(self) -> float:
        """Length of the rendered clip: its notes, then their release."""
        return self.phrase.beats * 60.0 / self.bpm + _RELEASE_SECONDS


def phrases(count: int, seed: int = 0) -> list[Phrase]:
    """`count` phrases of a major scale: a held note first, then seeded chords, runs and arpeggios."""
    rng = np.random.default_rng(seed)
    made = [Phrase("note", ((0, 0.0, 2.0),))]
    while len(made) < count:
        kind = ("chord", "run", "arpeggio")[len(made) % 3]
        size = int(rng.integers(2, 5)) if kind == "chord" else int(rng.integers(3, 7))
        if kind == "run":
            degrees = np.cumsum(np.concatenate([[0], rng.choice([-2, -1, 1, 2], size=size - 1)]))
            degrees -= degrees.min()  # the root is the lowest note
        else:
            degrees = np.cumsum(np.concatenate([[0], rng.choice([2, 2, 3], size=size - 1)]))
        steps = _semitones(degrees)
        if kind == "chord":
            notes = tuple((step, 0.0, 2.0) for step in steps)
        else:
            beat = float(rng.choice([0.25, 0.5, 1.0]))
            legato = float(rng.choice([0.5, 0.9]))
            notes = tuple((step, i * beat, beat * legato) for i, step in enumerate(steps))
        made.append(Phrase(f"{kind}{len(made)}", notes))
    return made


def roots(family: str) -> range:
    """The root notes `family` plays its phrases from."""
    low, high = _ROOTS.get(family, _DEFAULT_ROOTS)
    return range(low, high + 1)


@dataclasses.dataclass(frozen=True)
class MusicSplits:
    train: list[Clip]
    held_out_phrases: list[Clip]  # trained programs, phrases and root pitches never trained on
    held_out_programs: list[Clip]  # programs never trained on, held-out phrases and pitches


def music_splits(
    families: tuple[str, ...] = ACOUSTIC,
    train_per_program: int = 12,
    test_per_program: int = 4,
    held_out_programs: int = 2,
    seed: int = 0,
) -> MusicSplits:
    """Seeded clips of `families`: per family, `held_out_programs` of its 8 programs are kept
    out of training; a quarter of the phrases and every fourth root pitch are too."""
    rng = np.random.default_rng(seed)
    shapes = phrases(16, seed=seed)
    train_shapes, test_shapes = shapes[:12], shapes[12:]
    splits = MusicSplits([], [], [])
    for family in families:
        programs = FAMILIES.index(family) * 8 + rng.permutation(8)
        pitches = roots(family)
        test_roots = [r for r in pitches if (r - pitches.start) % 4 == 2]
        train_roots = [r for r in pitches if r not in test_roots]
        for index, program in enumerate(programs):
            trained = index >= held_out_programs
            if trained:
                splits.train.extend(
                    _clips(rng, int(program), train_shapes, train_roots, train_per_program)
                )
            held_out = splits.held_out_phrases if trained else splits.held_out_programs
            held_out.extend(_clips(rng, int(program), test_shapes, test_roots, test_per_program))
    return splits


def write_music(root: pathlib.Path, clips: list[Clip], batch: int = 64) -> list[pathlib.Path]:
    """Renders every clip to `root/<family>/<name>.wav` (16 kHz, as fluidsynth writes it).

    fluidsynth is started once per `batch` clips, which it renders one after
    another into one file with silence between them, cut here into one WAV per
    clip: starting fluidsynth costs more than rendering a clip.
    """
    paths = []
    with tempfile.TemporaryDirectory(prefix="music-") as scratch:
        for start in range(0, len(clips), batch):
            paths.extend(_render_batch(clips[start : start + batch], root, pathlib.Path(scratch)))
    return paths


def _clips(rng, program: int, shapes: list[Phrase], pitches: list[int], count: int) -> list[Clip]:
    clips: dict[str, Clip] = {}  # by name: a repeated draw would overwrite its file
    while len(clips) < count:
        phrase = shapes[int(rng.integers(len(shapes)))]
        root = int(rng.choice(pitches))
        top = max(step for step, _, _ in phrase.notes)
        while root + top > _HIGHEST_NOTE.get(program, 127):
            root -= 12  # an octave keeps a held-out root held out (they are every 4th note)
        velocity, bpm = int(rng.integers(50, 121)), int(rng.choice([80, 100, 120, 140, 160]))
        clip = Clip(program, phrase, root, velocity, bpm)
        clips.setdefault(clip.name, clip)
    return list(clips.values())


def _semitones(degrees: np.ndarray) -> tuple[int, ...]:
    """Major-scale degrees (0 = the root, may pass the octave) as semitones above the root."""
    return tuple(int(12 * (d // 7) + _MAJOR[d % 7]) for d in degrees)


def _render_batch(
    clips: list[Clip], root: pathlib.Path, scratch: pathlib.Path
) -> list[pathlib.Path]:
    starts = np.cumsum([0.0] + [clip.seconds + _GAP_SECONDS for clip in clips[:-1]])
    midi, rendered = scratch / "batch.mid", scratch / "batch.wav"
    _midi_file(clips, starts).save(midi)
    _fluidsynth(midi, rendered)
    with wave.open(str(rendered), "rb") as reader:
        params = reader.getparams()
        frames = reader.readframes(params.nframes)
    frame_bytes = params.nchannels * params.sampwidth
    paths = []
    for clip, start in zip(clips, starts, strict=True):
        first = round(start * params.framerate)
        count = round(clip.seconds * params.framerate)
        path = root / clip.family / f"{clip.name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as writer:
            writer.setparams(params)
            writer.writeframes(frames[first * frame_bytes : (first + count) * frame_bytes])
        paths.append(path)
    return paths


def _midi_file(clips: list[Clip], starts: np.ndarray) -> mido.MidiFile:
    """One track on channel 0: each clip's program, its notes, then all sound off."""
    ticks_per_second = 1000  # 480 ticks a beat at 0.48 s a beat: one tick a millisecond
    events = []  # (tick, order at that tick, message): note-offs before note-ons
    for clip, start in zip(clips, starts, strict=True):
        seconds_per_beat = 60.0 / clip.bpm
        events.append(
            (
                round(start * ticks_per_second),
                0,
                mido.Message("program_change", program=clip.program),
            )
        )
        for step, beat, length in clip.phrase.notes:
            on = start + beat * seconds_per_beat
            note = clip.root + step
            events.append(
                (
                    round(on * ticks_per_second),
                    2,
                    mido.Message("note_on", note=note, velocity=clip.velocity),
                )
            )
            off = on + length * seconds_per_beat
            events.append((round(off * ticks_per_second), 1, mido.Message("note_off", note=note)))
        end = start + clip.seconds
        events.append(
            (round(end * ticks_per_second), 1, mido.Message("control_change", control=120))
        )
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=480_000)])
    now = 0
    for tick, _, message in sorted(events, key=lambda event: event[:2]):
        track.append(message.copy(time=tick - now))
        now = tick
    return mido.MidiFile(type=0, ticks_per_beat=480, tracks=[track])


def _fluidsynth(midi: pathlib.Path, wav: pathlib.Path) -> None:
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None or not SOUNDFONT.exists():
        raise RuntimeError(
            "fluidsynth and the FluidR3 soundfont are not installed: "
            "apt-get install fluidsynth fluid-soundfont-gm (make does this)"
        )
    subprocess.run(
        [fluidsynth, "-q", "-n", "-i", "-F", str(wav), "-r", str(SAMPLE_RATE), "-g", str(_GAIN),
         str(SOUNDFONT),
         str(midi)],
        check=True, capture_output=True,
    )  # fmt: skip
