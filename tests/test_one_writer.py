"""One writer per output: a second run into a claimed OUT (or model directory) fails fast,
a dead run's claim is taken over, and the claim goes when its run ends."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pyarrow.dataset as ds
import pytest

from embedbeam.pipeline import cli
from embedbeam.transforms.table import claim

REPO = pathlib.Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _write_claim(path: pathlib.Path, **fields) -> claim.Claim:
    record = dataclasses.replace(claim.new_claim("earlier-run"), **fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(record.to_json())
    return record


def test_a_claim_is_created_once_and_names_its_run(tmp_path):
    path = str(tmp_path / "out" / "_claim.json")

    held = claim.acquire(path, "run1")
    with pytest.raises(claim.ClaimHeld) as refused:
        claim.acquire(path, "run2")

    record = json.loads(pathlib.Path(path).read_text())
    assert record["run_id"] == "run1" and record["pid"] == os.getpid() == held.pid
    assert record["host"] == socket.gethostname()
    assert refused.value.holder.run_id == "run1"
    assert f"run run1 (host {socket.gethostname()}, pid {os.getpid()}, since " in str(refused.value)


def test_the_claim_of_a_dead_process_on_this_host_is_taken_over(tmp_path, caplog):
    path = tmp_path / "_claim.json"
    _write_claim(path, pid=_dead_pid())

    with caplog.at_level(logging.INFO, logger="embedbeam"):
        claim.acquire(str(path), "run2")

    assert claim.holder(str(path)).run_id == "run2"
    [line] = [r.getMessage() for r in caplog.records if "taking over" in r.getMessage()]
    assert "run earlier-run" in line and "is no longer running on this host" in line


def test_a_reused_pid_is_not_taken_for_the_run_that_claimed(tmp_path):
    """Same host, the pid alive (this process) but started at another time: a dead run."""
    path = tmp_path / "_claim.json"
    _write_claim(path, pid=os.getpid(), pid_started=1)

    claim.acquire(str(path), "run2")

    assert claim.holder(str(path)).run_id == "run2"


def test_elsewhere_only_a_claim_without_heartbeat_is_taken_over(tmp_path):
    fresh, old = tmp_path / "fresh.json", tmp_path / "old.json"
    now = time.time()
    _write_claim(fresh, host="worker-7", pid=1, heartbeat_at=now - 5)
    _write_claim(old, host="worker-7", pid=1, heartbeat_at=now - claim.STALE_AFTER_S - 5)

    with pytest.raises(claim.ClaimHeld):
        claim.acquire(str(fresh), "run2")
    claim.acquire(str(old), "run2")

    assert claim.holder(str(old)).run_id == "run2"


def test_an_unreadable_claim_holds_until_it_is_old(tmp_path):
    path = tmp_path / "_claim.json"
    path.write_bytes(b'{"run_id": "half wri')

    with pytest.raises(claim.ClaimHeld, match="held by run unknown"):
        claim.acquire(str(path), "run2")
    old = time.time() - claim.STALE_AFTER_S - 5
    os.utime(path, (old, old))
    claim.acquire(str(path), "run2")

    assert claim.holder(str(path)).run_id == "run2"


def test_a_claim_is_released_only_by_its_run(tmp_path):
    path = str(tmp_path / "_claim.json")
    claim.acquire(path, "run1")

    assert not claim.release(path, "run2") and claim.holder(path).run_id == "run1"
    assert claim.release(path, "run1") and claim.holder(path) is None


def test_holding_refreshes_the_heartbeat_and_releases_even_on_failure(tmp_path):
    path = tmp_path / "new" / "_claim.json"

    with pytest.raises(RuntimeError), claim.holding(str(path), "run1", heartbeat_s=0.05) as held:
        time.sleep(0.3)
        beat = claim.holder(str(path)).heartbeat_at
        raise RuntimeError("the job failed")

    assert beat > held.heartbeat_at
    assert not path.exists() and not path.parent.exists()  # it made the folder, and removed it


class _FakeBlob:
    """The part of google.cloud.storage's Blob the claim uses, with generations."""

    def __init__(self, objects: dict, name: str) -> None:
        self._objects, self.name = objects, name

    @property
    def generation(self) -> int:
        return self._objects[self.name][1]

    def _check(self, generation: int) -> None:
        from google.api_core.exceptions import PreconditionFailed

        current = self._objects.get(self.name, (b"", 0))[1]
        if generation != current:
            raise PreconditionFailed("generation mismatch")

    def upload_from_string(self, data, content_type, if_generation_match):
        self._check(if_generation_match)
        self._objects[self.name] = (data, self._objects.get(self.name, (b"", 0))[1] + 1)

    def download_as_bytes(self, if_generation_match):
        self._check(if_generation_match)
        return self._objects[self.name][0]

    def delete(self, if_generation_match):
        self._check(if_generation_match)
        del self._objects[self.name]


class _FakeBucket:
    def __init__(self, objects: dict) -> None:
        self._objects = objects

    def blob(self, name: str) -> _FakeBlob:
        return _FakeBlob(self._objects, name)

    def get_blob(self, name: str) -> _FakeBlob | None:
        return _FakeBlob(self._objects, name) if name in self._objects else None


def test_on_gcs_every_change_is_conditional_on_the_generation_read(monkeypatch):
    objects: dict = {}

    class Client:
        def bucket(self, name):
            return _FakeBucket(objects)

    def fake_store(self):
        from apache_beam.io.gcp import gcsio

        self._client, self._parse_path = Client(), gcsio.parse_gcs_path

    monkeypatch.setattr(claim._GcsStore, "__init__", fake_store)
    path = "gs://bucket/out/_claim.json"

    claim.acquire(path, "run1")
    with pytest.raises(claim.ClaimHeld):
        claim.acquire(path, "run2")
    assert claim.refresh(path, "run1") and objects["out/_claim.json"][1] == 2
    store = claim._GcsStore()
    assert not store.replace(path, b"{}", 1) and not store.delete(path, 1)  # a stale generation
    assert claim.release(path, "run1") and objects == {}


def _embed(model, pattern, out, *extra) -> list[str]:
    return ["embed", "--model", str(model), "--input", pattern, "--output", str(out), *extra]


@pytest.mark.slow
def test_two_embeds_into_one_output_one_wins_the_other_fails_in_one_line(
    trained_model, digit_folders, tmp_path, capsys
):
    out = tmp_path / "out"
    pattern = f"{digit_folders}/test/*/*.png"
    first = subprocess.Popen(
        [sys.executable, "-m", "embedbeam.pipeline.cli.command", *_embed(trained_model, pattern, out)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (out / "_claim.json").exists():
        assert first.poll() is None, first.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the first run never claimed OUT"
        time.sleep(0.01)

    second = cli.main(_embed(trained_model, pattern, out, "--overwrite"))

    error = capsys.readouterr().err.strip()
    assert second == 2 and error.count("\n") == 0 and "Traceback" not in error
    assert f"pid {first.pid}" in error and "delete" in error and "_claim.json" in error
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert (out / "_SUCCESS").exists() and not (out / "_claim.json").exists()
    assert ds.dataset(out / "embeddings", partitioning="hive").count_rows() == 1000
    assert not (out / "_staging").exists()


@pytest.mark.slow
def test_an_embed_takes_over_the_claim_a_killed_run_left(
    trained_model, digit_folders, tmp_path, caplog
):
    out = tmp_path / "out"
    _write_claim(out / "_claim.json", pid=_dead_pid())

    with caplog.at_level(logging.INFO, logger="embedbeam"):
        status = cli.main(_embed(trained_model, f"{digit_folders}/test/7/*.png", out))

    assert status == 0 and (out / "_SUCCESS").exists() and not (out / "_claim.json").exists()
    assert any("taking over" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def few_digits(digit_folders, tmp_path_factory) -> pathlib.Path:
    """Twelve training digits of each class: enough to train a (poor) model quickly."""
    root = tmp_path_factory.mktemp("few_digits")
    for folder in sorted((digit_folders / "train").iterdir()):
        (root / folder.name).mkdir()
        for path in sorted(folder.glob("*.png"))[:12]:
            shutil.copy(path, root / folder.name)
    return root


def _train(inputs: pathlib.Path, model: pathlib.Path, *extra: str) -> list[str]:
    return ["train", "--input", f"{inputs}/*/*.png", "--output", str(model), "--epochs", "2",
            *extra]  # fmt: skip


def _model_files(model: pathlib.Path) -> set[str]:
    return {str(p.relative_to(model)) for p in model.rglob("*")}


@pytest.mark.slow
def test_two_trainings_into_one_model_directory_leave_one_whole_model(few_digits, tmp_path, capsys):
    model = tmp_path / "models" / "mnist"
    first = subprocess.Popen(
        [sys.executable, "-m", "embedbeam.pipeline.cli.command", *_train(few_digits, model)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    claim_file = model.parent / "mnist.claim"
    deadline = time.monotonic() + 120
    while not claim_file.exists():
        assert first.poll() is None, first.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the first training never claimed its output"
        time.sleep(0.01)

    second = cli.main(_train(few_digits, model, "--overwrite", "--seed", "1"))

    error = capsys.readouterr().err.strip()
    assert second == 2 and error.count("\n") == 0 and f"pid {first.pid}" in error
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    info = json.loads((model / "model.json").read_text())
    assert info["training"]["seed"] == 0
    assert sorted(p.name for p in model.parent.iterdir()) == ["mnist"]  # no claim, no partial


@pytest.mark.slow
def test_train_overwrite_swaps_the_whole_model_directory(few_digits, tmp_path):
    model = tmp_path / "mnist"
    assert cli.main(_train(few_digits, model, "--seed", "0")) == 0
    (model / "left_by_hand.txt").write_text("an old file must not survive a replace")
    before = json.loads((model / "model.json").read_text())["model_version"]

    assert cli.main(_train(few_digits, model, "--seed", "1", "--overwrite")) == 0

    after = json.loads((model / "model.json").read_text())
    assert after["model_version"] != before and after["training"]["seed"] == 1
    assert "left_by_hand.txt" not in _model_files(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist"]


@pytest.mark.slow
def test_a_run_whose_claim_was_taken_commits_nothing_and_says_so_in_one_line(
    trained_model, digit_folders, digits_table, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(digits_table, out)
    before = (out / "_manifest.json").read_text()
    command = [sys.executable, "-m", "embedbeam.pipeline.cli.command",
               *_embed(trained_model, f"{digit_folders}/test/*/*.png", out, "--overwrite",
                       "--rows-per-shard", "100")]  # fmt: skip
    job = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(out.glob("_staging/*/embeddings/*/part-*.parquet")):
        assert job.poll() is None, job.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no shard was staged"
        time.sleep(0.01)
    _write_claim(out / "_claim.json", run_id="intruder", host="elsewhere")  # e.g. by hand

    status = job.wait(timeout=300)

    error = job.stderr.read().decode().strip()
    assert status == 1 and "claim lost" in error and "Traceback" not in error, error[-2000:]
    assert error.splitlines()[-1].count("claim lost") == 1, error
    assert (out / "_SUCCESS").exists() and (out / "_manifest.json").read_text() == before
    assert ds.dataset(out / "embeddings", partitioning="hive").count_rows() == 1000
    assert claim.holder(str(out / "_claim.json")).run_id == "intruder", error  # not released
