"""Featurizing in child processes gives what featurizing here gives, and says when it fails."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from PIL import Image

from embedbeam.pipeline.jobs.preflight import (
    FEATURIZE_PROCESSES_MIN_INPUTS,
    default_featurize_processes,
)
from embedbeam.transforms.common.records import InputRef
from embedbeam.transforms.sparse.featurize_processes import (
    FeaturizeProcessError,
    FeaturizeProcesses,
)
from embedbeam.transforms.sparse.modalities import MODALITIES
from embedbeam.transforms.sparse.ref_featurizer import RefFeaturizerSpec
from tests.conftest import encode

IMAGE_SPEC = RefFeaturizerSpec({"image": {"grid": 28, "threshold": 0.2}}, {"image": "unused"}, 4096)


@pytest.fixture
def mixed_refs(tmp_path, digit_folders) -> list[InputRef]:
    """Digits, and inputs that fail at each step: listing, reading, featurizing, no model."""
    (tmp_path / "blank.png").write_bytes(encode(Image.new("L", (28, 28)), "PNG"))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    digits = sorted(digit_folders.glob("test/*/*.png"))[:3]
    return [
        InputRef("d0", str(digits[0]), "0", "image"),
        InputRef("gone", str(tmp_path / "gone.png"), None, "image"),
        InputRef("blank", str(tmp_path / "blank.png"), None, "image"),
        InputRef("d1", str(digits[1]), "1", "image"),
        InputRef("line", "manifest.jsonl:3", None, None, problem=("bad_json", "line 3")),
        InputRef("broken", str(tmp_path / "broken.png"), None, "image"),
        InputRef("words", "", None, "text", inline=b"no model for text here"),
        InputRef("d2", str(digits[2]), "2", "image"),
    ]


def test_a_child_process_featurizes_a_batch_as_this_process_would(mixed_refs):
    here = IMAGE_SPEC.build()(mixed_refs)
    processes = FeaturizeProcesses(IMAGE_SPEC, 2)
    try:
        # Two batches per child, taken in turns: each result comes back for its own batch.
        waits = [processes.submit(refs) for refs in (mixed_refs, mixed_refs[:4]) * 2]
        there, first_four, there_again, _ = [wait() for wait in waits]
    finally:
        processes.close()

    for result in (there, there_again):
        assert result.read == here.read == 6
        assert result.dead_letters == here.dead_letters
        assert [(r.modality, r.positions.tolist()) for r in result.featurized] == [
            ("image", [0, 3, 7])
        ]
        np.testing.assert_array_equal(result.featurized[0].rows.ids, here.featurized[0].rows.ids)
        np.testing.assert_array_equal(
            result.featurized[0].rows.weights, here.featurized[0].rows.weights
        )
    assert sorted(
        (letter.uri.rsplit("/", 1)[-1], letter.stage, letter.error) for letter in here.dead_letters
    ) == [
        ("", "featurize", "no_model_for_modality"),
        ("blank.png", "featurize", "no_active_features"),
        ("broken.png", "featurize", "undecodable_image"),
        ("gone.png", "read", "missing_file"),
        ("manifest.jsonl:3", "list", "bad_json"),
    ]
    assert [r.positions.tolist() for r in first_four.featurized] == [[0, 3]]


def test_two_children_featurize_each_audio_batch_together_as_this_process_would():
    corpus = pathlib.Path(__file__).parent / "data" / "bad"
    paths = [*sorted((corpus / "audio").glob("*")), *sorted((corpus / "ok").glob("*.wav"))]
    refs = [InputRef(path.name, str(path), None, "audio") for path in paths]
    settings = {"mels": 32, "frames": 24, "threshold_db": -60.0, "max_seconds": 10.0}
    spec = RefFeaturizerSpec({"audio": settings}, {}, 1 << 20)
    here = spec.build()(refs)
    processes = FeaturizeProcesses(spec, 2)
    try:
        there = processes.submit(refs)()  # its first half in one child, the rest in the other
    finally:
        processes.close()

    assert there.read == here.read == len(refs)
    assert there.dead_letters == here.dead_letters
    (rows,) = there.featurized
    assert (
        rows.positions.tolist()
        == here.featurized[0].positions.tolist()
        == [2, 3, 4, 5, 6, 7, 8, 12]
    )
    for name in ("ids", "weights", "row_splits"):
        np.testing.assert_array_equal(
            getattr(rows.rows, name), getattr(here.featurized[0].rows, name)
        )


def test_a_featurizing_process_that_fails_raises_its_error_here():
    processes = FeaturizeProcesses(RefFeaturizerSpec({"smell": {}}, {"smell": "-"}, 4096), 1)
    try:
        with pytest.raises(FeaturizeProcessError, match="modality 'smell' is not supported"):
            processes.submit([])()
    finally:
        processes.close()


class _DyingSpec(RefFeaturizerSpec):
    """A spec whose child exits at once, as one killed by the kernel would."""

    def build(self):
        os._exit(3)


def test_a_featurizing_process_that_dies_is_an_error_naming_its_exit_code():
    processes = FeaturizeProcesses(_DyingSpec({}, {}, 4096), 1)
    try:
        with pytest.raises(FeaturizeProcessError, match="exited with code 3"):
            processes.submit([])()
    finally:
        processes.close()


def test_a_featurizing_process_starts_without_beam_or_tensorflow():
    """What keeps its start-up at a fraction of a second (the embed job waits for it)."""
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, embedbeam.transforms.sparse.featurize_processes; "
            "IMAGE = {'image': {'grid': 28, 'threshold': 0.2}}; "
            "embedbeam.transforms.sparse.featurize_processes.RefFeaturizerSpec(IMAGE, {'image': '-'}, 1).build(); "
            "print(sorted(m for m in ('apache_beam', 'tensorflow') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert heavy.strip() == "[]"


def test_by_default_large_image_and_audio_jobs_run_in_this_process_featurize_in_processes():
    in_process, cores = PipelineOptions([]), len(os.sched_getaffinity(0))
    many = MODALITIES["image"].featurize_processes_from
    clips = MODALITIES["audio"].featurize_processes_from

    assert many == FEATURIZE_PROCESSES_MIN_INPUTS > clips
    assert default_featurize_processes(in_process, ["image"], many) == cores - 1
    assert default_featurize_processes(in_process, ["image"], many - 1) == 0
    assert default_featurize_processes(in_process, ["image", "text"], many) == 0
    # Audio's featurizing is nearly all of its job: a child on every core.
    assert default_featurize_processes(in_process, ["audio"], clips) == cores
    assert default_featurize_processes(in_process, ["audio"], clips - 1) == 0
    assert default_featurize_processes(in_process, ["image", "audio"], many) == cores - 1
    assert default_featurize_processes(in_process, ["image", "audio"], many - 1) == 0
    for runner_with_workers in (
        ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        ["--direct_num_workers=2"],
        ["--runner=PortableRunner"],
    ):
        assert (
            default_featurize_processes(PipelineOptions(runner_with_workers), ["image"], many) == 0
        )
