"""Model directories and outputs under a non-local scheme, read through Beam's FileSystems.

Beam ships no in-memory or fake remote filesystem, so `rooted://` here is a
LocalFileSystem that maps `rooted://a/b` under a temporary root: a path with a
scheme that only Beam's FileSystems can resolve. Anything opening such a path
with `open()`/`os.path` instead would fail, the way it would on gs:// or s3://.
The SavedModel and TFT graph are read by TensorFlow's own file system layer,
which does not know this scheme (deploy/README.md, "Remote paths").
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from embedbeam.pipeline.jobs.embed import resolve_models
from embedbeam.pipeline.model.model_dir import CENTROIDS, ModelInfo, content_hash, read_model_info
from embedbeam.pipeline.queries.summary import summarize
from embedbeam.transforms.table.centroids import read_centroids, write_centroids
from embedbeam.transforms.table.layout import RUN_RECORD, SUCCESS

SCHEME = "rooted"


class RootedFileSystem(LocalFileSystem):
    """`rooted://PATH` is `root`/PATH on local disk; paths handed back keep the scheme."""

    root = ""  # set by the `rooted` fixture

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    @classmethod
    def _local(cls, path: str) -> str:
        return os.path.join(cls.root, path.removeprefix(f"{SCHEME}://"))

    @classmethod
    def _remote(cls, path: str) -> str:
        return f"{SCHEME}://" + os.path.relpath(path, cls.root)

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *paths])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path):
        os.makedirs(self._local(path), exist_ok=True)

    def _list(self, dir_or_prefix):
        for metadata in super()._list(self._local(dir_or_prefix)):
            yield type(metadata)(
                self._remote(metadata.path),
                metadata.size_in_bytes,
                metadata.last_updated_in_seconds,
            )

    def create(self, path, *args, **kwargs):
        os.makedirs(os.path.dirname(self._local(path)), exist_ok=True)
        return super().create(self._local(path), *args, **kwargs)

    def open(self, path, *args, **kwargs):
        return super().open(self._local(path), *args, **kwargs)

    def rename(self, source_file_names, destination_file_names):
        super().rename(
            [self._local(p) for p in source_file_names],
            [self._local(p) for p in destination_file_names],
        )

    def exists(self, path):
        return super().exists(self._local(path))

    def size(self, path):
        return super().size(self._local(path))

    def delete(self, paths):
        super().delete([self._local(p) for p in paths])


@pytest.fixture
def rooted(tmp_path, monkeypatch):
    """`rooted://` rooted in this test's tmp_path; a helper making `rooted://` paths."""
    monkeypatch.setattr(RootedFileSystem, "root", str(tmp_path))
    return lambda relative: f"{SCHEME}://{relative}"


def _model_json(directory: str) -> None:
    info = ModelInfo("image", 3, 784, ["0", "1"], {"grid": 28, "threshold": 0.2}, 2, {}, {})
    with FileSystems.create(f"{directory}/model.json") as handle:
        handle.write(json.dumps({**info.__dict__, "model_version": "abc"}).encode())


def test_model_json_and_centroids_are_read_through_beam_filesystems(rooted, tmp_path):
    model = rooted("models/mnist")
    _model_json(model)
    centroids = np.array([[0, 1, 2], [3, 4, 5]], np.float32)

    write_centroids(f"{model}/{CENTROIDS}", centroids, np.array([7, 9]))

    assert (tmp_path / "models" / "mnist" / CENTROIDS).exists()  # it really went through the scheme
    assert read_model_info(model).embedding_dim == 3
    assert read_centroids(f"{model}/{CENTROIDS}").tobytes() == centroids.tobytes()
    assert len(content_hash(model)) == 16
    assert resolve_models([f"image={model}"])["image"].directory == model  # no abspath of a uri


def test_the_embed_summary_reads_a_remote_output_through_beam_filesystems(rooted):
    out = rooted("out")
    manifest = {"rows_written": 2, "dead_letters": 1, "inputs_seen": 3, "wall_time_s": 1.5}
    manifest["models"] = {"image": {"rows": 2, "clusters": 2, "model_version": "abc"}}
    for name, data in ((RUN_RECORD, json.dumps(manifest).encode()), (SUCCESS, b"")):
        with FileSystems.create(f"{out}/{name}") as handle:
            handle.write(data)

    summary = summarize(out)

    assert summary["output"] == out and summary["rows"] == 2 and summary["dead_letters"] == 1
    assert summary["image"] == {"rows": 2, "clusters": 2, "model_version": "abc"}
