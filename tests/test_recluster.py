"""--recluster: k-means fitted inside the pipeline on a bounded, seeded sample."""

from __future__ import annotations

import json
import pathlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin

from embedbeam.pipeline import cli
from embedbeam.pipeline.jobs.embed import build_embed_pipeline
from embedbeam.pipeline.model.quality import cluster_purity
from embedbeam.transforms import assign_staged_shards
from embedbeam.transforms.assign_clusters import nearest_centroids
from embedbeam.transforms.assign_staged_shards import squared_distance_units
from embedbeam.transforms.common.records import EmbeddedBatch, InputRef, StagedShard
from embedbeam.transforms.recluster import (
    Recluster,
    SumSquaredDistances,
    bounded_sample_fn,
    fit_kmeans,
    keyed_for_sample,
)
from embedbeam.transforms.table.centroids import read_centroids
from embedbeam.transforms.table.layout import embeddings_schema, vectors

BLOB_CENTRES = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], np.float32)


def _batch(vectors, first_id: int = 0) -> EmbeddedBatch:
    """Rows `id<first_id>`, `id<first_id + 1>`, ... embedded as `vectors`."""
    refs = tuple(
        InputRef(f"id{i}", f"/in/{i}.png", None, "image")
        for i in range(first_id, first_id + len(vectors))
    )
    return EmbeddedBatch(refs, np.full(len(vectors), 7), np.asarray(vectors, np.float32))


def _blobs(per_blob: int) -> EmbeddedBatch:
    """Three tight, well separated blobs; row i belongs to blob i % 3."""
    noise = np.random.default_rng(0).normal(0, 0.5, (3 * per_blob, 2))
    return _batch([BLOB_CENTRES[i % 3] + noise[i] for i in range(3 * per_blob)])


def _keyed(batch: EmbeddedBatch, seed: int) -> list[tuple[bytes, np.ndarray]]:
    return list(keyed_for_sample(batch, seed))


def test_the_sample_accumulator_never_holds_more_than_its_bound():
    sample_size = 50
    combine = bounded_sample_fn(sample_size)
    keyed = _keyed(_blobs(200), seed=0)
    bundles = [keyed[i::4] for i in range(4)]  # 4 workers' partial accumulators

    accumulators = []
    for bundle in bundles:
        accumulator = combine.create_accumulator()
        for element in bundle:
            accumulator = combine.add_input(accumulator, element)
            assert len(accumulator[1]) <= sample_size
        accumulators.append(accumulator)
    merged = combine.merge_accumulators(accumulators)

    assert len(merged[1]) == sample_size
    # The same elements, however bundled, give the same sample: the smallest hashes.
    assert [key for key, _ in combine.extract_output(merged)] == sorted(k for k, _ in keyed)[:50]


def test_fit_is_the_same_whatever_order_the_sample_arrives_in():
    keyed = _keyed(_blobs(40), seed=3)

    first = fit_kmeans(keyed, k=3, seed=3, dim=2)
    second = fit_kmeans(list(reversed(keyed)), k=3, seed=3, dim=2)

    np.testing.assert_array_equal(first.centroids, second.centroids)
    assert (first.sample_rows, first.iterations) == (120, second.iterations)
    assert sorted(map(tuple, np.round(first.centroids))) == sorted(map(tuple, BLOB_CENTRES))


def test_k_above_the_distinct_embeddings_is_clamped_and_recorded():
    repeated = _batch([BLOB_CENTRES[i % 2] for i in range(10)])  # 2 distinct vectors
    keyed = _keyed(repeated, seed=0)

    fit = fit_kmeans(keyed, k=4, seed=0, dim=2)

    assert fit.record(inertia=0.0)["k_requested"] == 4 and len(fit.centroids) == 2
    assert fit_kmeans([], k=4, seed=0, dim=2).centroids.shape == (0, 2)


def test_inertia_is_the_same_however_rows_are_sharded_and_bundled_and_does_not_overflow():
    distances = np.array([1e6, 0.1, 3.3, 1e-3, 7.77, 2.5e5])  # 1e6 ** 2 * 2 ** 32 > int64

    def shards(sizes):
        ends = np.cumsum(sizes)
        return [
            StagedShard("image", f"part-{i}", (), squared_distance_units(distances[end - n : end]))
            for i, (n, end) in enumerate(zip(sizes, ends, strict=True))
        ]

    combine = SumSquaredDistances()

    def inertia(bundles):
        accumulators = []
        for bundle in bundles:
            accumulator = combine.create_accumulator()
            for shard in bundle:
                accumulator = combine.add_input(accumulator, shard)
            accumulators.append(accumulator)
        return combine.extract_output(combine.merge_accumulators(accumulators))

    one_shard, two_shards, six_shards = shards([6]), shards([2, 4]), shards([1] * 6)
    assert (
        inertia([one_shard])
        == inertia([two_shards[::-1]])
        == inertia([six_shards[:2], six_shards[2:]])
        == inertia([[shard] for shard in six_shards])
    )
    assert inertia([one_shard]) == pytest.approx(np.sum(distances**2), rel=1e-12)


def _read_staged(directory: pathlib.Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(path) for path in sorted(directory.glob("part-*")))


def test_recluster_assigns_every_row_to_its_blob_in_a_pipeline(tmp_path):
    blobs = _blobs(30)
    batches = [  # as the embed job passes them: several batches
        _batch(blobs.embeddings[start : start + 25], first_id=start) for start in range(0, 90, 25)
    ]
    unassigned, assigned = tmp_path / "unassigned", tmp_path / "assigned"

    def refit_summary(refit):
        return refit.modality, refit.record["k"], refit.record["sample_rows"], refit.centroids.shape

    with TestPipeline() as p:
        shards, refit = (
            p
            | beam.Create(batches)
            | Recluster(
                "image", k=3, seed=0, embedding_dim=2, model_version="v1",
                unassigned_dir=str(unassigned), assigned_dir=str(assigned),
                sample_size=40, rows_per_shard=20,
            )
        )  # fmt: skip
        rows_per_shard = shards | beam.Map(lambda shard: sum(shard.cluster_sizes))
        assert_that(rows_per_shard | beam.CombineGlobally(sum), equal_to([90]), label="every row")
        assert_that(
            refit | beam.Map(refit_summary), equal_to([("image", 3, 40, (3, 2))]), label="refit"
        )

    table = _read_staged(assigned)
    blob_of_row = [int(i[2:]) % 3 for i in table.column("id").to_pylist()]
    cluster_of_row = table.column("cluster_id").to_pylist()
    # Every row of a blob shares one cluster id, and the three ids differ.
    assert len(set(zip(blob_of_row, cluster_of_row, strict=True))) == 3
    assert set(cluster_of_row) == {0, 1, 2}
    assert table.schema == embeddings_schema(2) and table.num_rows == 90
    # The rows staged before the fit have no cluster ids: they wait as files, not in memory.
    staged = _read_staged(unassigned)
    assert staged.num_rows == 90 and staged.column("cluster_id").null_count == 90


def _subtransforms_of(pipeline: beam.Pipeline):
    """Every applied transform of the graph, with the full labels of its enclosing ones."""
    found = []

    class Visitor(beam.pipeline.PipelineVisitor):
        def visit_transform(self, node):
            found.append(node)

        def enter_composite_transform(self, node):
            found.append(node)

    pipeline.visit(Visitor())
    return found


def _graph(trained_model, digit_folders, tmp_path, *flags) -> beam.Pipeline:
    options = PipelineOptions(
        ["--model", str(trained_model), "--input", f"{digit_folders}/test/*/*.png",
         "--output", str(tmp_path / "out"), *flags]
    )  # fmt: skip
    return build_embed_pipeline(options, beam.Pipeline(options=options))


def test_only_the_recluster_path_uses_side_inputs_and_nothing_gathers_all_embeddings(
    trained_model, digit_folders, tmp_path
):
    plain = _subtransforms_of(_graph(trained_model, digit_folders, tmp_path))
    reclustered = _subtransforms_of(
        _graph(trained_model, digit_folders, tmp_path, "--recluster", "10")
    )

    # Beam's own file sinks (WriteToParquet: iobase.Write) use side inputs in both graphs;
    # the only ones --recluster adds are its own.
    plain_side_inputs = {node.full_label for node in plain if node.side_inputs}
    added = {node.full_label for node in reclustered if node.side_inputs} - plain_side_inputs
    assert added and all(label.startswith("Recluster[image]/") for label in added)
    # Inside Recluster the only shuffles are those of combiners (bounded accumulators).
    recluster_nodes = [n for n in reclustered if n.full_label.startswith("Recluster[image]/")]
    shuffles = [n.full_label for n in recluster_nodes if isinstance(n.transform, beam.GroupByKey)]
    assert shuffles and all("/CombinePerKey/" in label for label in shuffles)
    assert not [n for n in recluster_nodes if "ToList" in n.full_label]


@pytest.mark.slow
def test_recluster_on_real_digits_matches_scikit_learn_and_repeats_exactly(
    trained_model, digit_folders, tmp_path
):
    """1,000 held-out real digits, k-means fitted on a 500-row sample inside the pipeline."""

    def run(out: pathlib.Path, *beam_flags: str):
        status = cli.main(
            ["embed", "--model", str(trained_model), "--input", f"{digit_folders}/test/*/*.png",
             "--output", str(out), "--recluster", "10", "--recluster-sample", "500", *beam_flags]
        )  # fmt: skip
        assert status == 0
        table = ds.dataset(out / "embeddings", partitioning="hive").to_table().sort_by("id")
        centroids = ds.dataset(out / "centroids" / "modality=image").to_table()
        manifest = json.loads((out / "_manifest.json").read_text())
        return table, centroids, manifest

    table, centroids, manifest = run(tmp_path / "in_process")
    again, centroids_again, _ = run(
        tmp_path / "multi_processing",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    )

    embeddings = vectors(table.column("embedding"))
    labels = np.asarray(table.column("label").to_pylist())
    ours = cluster_purity(table.column("cluster_id").to_numpy(), labels)
    sklearn = KMeans(n_clusters=10, n_init=10, random_state=0).fit(embeddings)
    theirs = cluster_purity(sklearn.labels_, labels)
    # Measured: ours 0.895, scikit-learn KMeans on all 1,000 vectors 0.898 (seed 0).
    assert ours >= theirs - 0.02
    record = manifest["models"]["image"]["recluster"]
    assert (record["k"], record["k_requested"], record["seed"], record["sample_rows"]) == (
        10,
        10,
        0,
        500,
    )
    assert record["refit"] and record["iterations"] >= 1
    fitted = vectors(centroids.column("centroid"))
    distances = np.linalg.norm(embeddings - fitted[table.column("cluster_id").to_numpy()], axis=1)
    assert np.isclose(record["inertia"], float(np.sum(distances**2)), rtol=1e-4)
    assert (
        centroids.column("size").to_pylist()
        == np.bincount(table.column("cluster_id").to_numpy(), minlength=10).tolist()
    )
    # Same inputs, K and seed on another runner mode: the same centroids and ids, bit for bit.
    assert centroids_again.equals(centroids)
    assert again.column("cluster_id").equals(table.column("cluster_id"))
    assert again.column("id").equals(table.column("id"))


def test_recluster_commits_each_row_with_its_nearest_committed_centroid_and_nothing_staged(
    trained_model, digit_folders, tmp_path, monkeypatch
):
    """300 real digits; small shards read back in several record batches each."""
    monkeypatch.setattr(assign_staged_shards, "ASSIGN_BATCH_ROWS", 50)  # in-process runner
    out = tmp_path / "out"
    status = cli.main(
        ["embed", "--model", str(trained_model), "--input", f"{digit_folders}/test/[012]/*.png",
         "--output", str(out), "--recluster", "5", "--rows-per-shard", "128"]
    )  # fmt: skip
    assert status == 0

    table = ds.dataset(out / "embeddings", partitioning="hive").to_table()
    centroids = read_centroids(str(out / "centroids" / "modality=image" / "centroids.parquet"))
    embeddings = vectors(table.column("embedding"))
    cluster_ids = table.column("cluster_id").to_numpy()
    assert table.num_rows == len(set(table.column("id").to_pylist())) == 300
    # The committed ids are scikit-learn's nearest centroids, and ids and distances are
    # bit for bit what AssignClusters computes for rows in memory (the path without --recluster).
    np.testing.assert_array_equal(cluster_ids, pairwise_distances_argmin(embeddings, centroids))
    nearest, distances = nearest_centroids(embeddings, centroids)
    np.testing.assert_array_equal(cluster_ids, nearest)
    np.testing.assert_array_equal(table.column("cluster_distance").to_numpy(), distances)
    assert table.column("cluster_id").null_count == 0
    sizes = ds.dataset(out / "centroids" / "modality=image").to_table().column("size")
    assert sizes.to_pylist() == np.bincount(cluster_ids, minlength=5).tolist()
    # Only assigned shards were committed; the unassigned ones went with _staging.
    files = sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())
    embedding_files = [name for name in files if name.startswith("embeddings/")]
    assert len(embedding_files) >= 3  # 300 rows, 128 a shard
    row_groups = [pq.ParquetFile(out / name).num_row_groups for name in embedding_files]
    assert max(row_groups) > 1  # written back batch by batch
    assert all(pathlib.PurePath(name).name.startswith("part-") for name in embedding_files)
    assert not [name for name in files if "unassigned" in name or "_staging" in name]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert sorted(manifest["files"]) == [name for name in files if not name.startswith("_")]
    assert manifest["rows_written"] == manifest["inputs_seen"] == 300


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--recluster", "50", "--recluster-sample", "10"], "must not exceed --recluster-sample"),
        (["--recluster", "10", "--resume"], "use one or the other"),
    ],
    ids=["k-above-sample", "with-resume"],
)
def test_recluster_mistakes_are_one_line(
    trained_model, digit_folders, tmp_path, capsys, flags, message
):
    status = cli.main(
        ["embed", "--model", str(trained_model), "--input", f"{digit_folders}/test/3/*.png",
         "--output", str(tmp_path / "out"), *flags]
    )  # fmt: skip

    error = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in error and message in error
