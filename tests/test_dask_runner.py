"""embedbeam's DaskRunner (`pipeline/runners/dask_runner.py`) on small pipelines, in the
style of Beam's `apache_beam/runners/dask/dask_runner_test.py`: each output of a ParDo
reaches only its own consumers, a Flatten of several outputs of one ParDo, output
emitted in `finish_bundle`, side inputs. The client is an in-process
`distributed.LocalCluster` of 2 single-threaded workers."""

from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

import apache_beam as beam  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions  # noqa: E402
from apache_beam.testing.test_pipeline import TestPipeline  # noqa: E402
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to  # noqa: E402

from embedbeam.pipeline.runners import DASK_RUNNER, with_runners_resolved  # noqa: E402
from embedbeam.pipeline.runners.dask_runner import DaskRunner  # noqa: E402


@pytest.fixture(scope="module")
def dask_address():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def pipeline(dask_address):
    options = PipelineOptions([f"--dask_client_address={dask_address}", "--dask_npartitions=3"])
    return TestPipeline(runner=DaskRunner(), options=options)


def split_odd(number: int):
    yield beam.pvalue.TaggedOutput("odd", number) if number % 2 else number


def test_each_tagged_output_reaches_only_its_consumer(pipeline):
    with pipeline as p:
        parts = (
            p
            | beam.Create([1, 2, 3, 4, 5])
            | beam.FlatMap(split_odd).with_outputs("odd", main="even")
        )
        assert_that(parts.even, equal_to([2, 4]), label="CheckEven")
        assert_that(
            parts.odd | "Square" >> beam.Map(lambda n: n * n),
            equal_to([1, 9, 25]),
            label="CheckOdd",
        )


def test_flatten_of_two_tags_of_one_pardo(pipeline):
    def three_ways(number: int):
        tag = ("zero", "one", "two")[number % 3]
        yield number if tag == "zero" else beam.pvalue.TaggedOutput(tag, number)

    with pipeline as p:
        parts = p | beam.Create(range(9)) | beam.FlatMap(three_ways).with_outputs("one", "two")
        assert_that((parts.one, parts.two) | beam.Flatten(), equal_to([1, 2, 4, 5, 7, 8]))
        assert_that(parts[None], equal_to([0, 3, 6]), label="CheckMain")


def test_an_unconsumed_tag_is_dropped(pipeline):
    with pipeline as p:
        parts = p | beam.Create([1, 2, 3]) | beam.FlatMap(split_odd).with_outputs("odd")
        assert_that(parts[None], equal_to([2]))


def test_partition_keeps_its_parts_apart(pipeline):
    with pipeline as p:
        low, high = p | beam.Create(range(6)) | beam.Partition(lambda n, _: n // 3, 2)
        assert_that(low, equal_to([0, 1, 2]), label="CheckLow")
        assert_that(high, equal_to([3, 4, 5]), label="CheckHigh")


class CountPerBundle(beam.DoFn):
    """Emits in `finish_bundle` only: one count per bundle, and a tagged total."""

    def start_bundle(self):
        self._count = 0

    def process(self, element):
        self._count += 1
        return []

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindow
        from apache_beam.utils.windowed_value import WindowedValue

        yield WindowedValue(self._count, 0, [GlobalWindow()])
        yield beam.pvalue.TaggedOutput("seen", WindowedValue(self._count, 0, [GlobalWindow()]))


def test_outputs_of_finish_bundle_are_kept(pipeline):
    with pipeline as p:
        counts = p | beam.Create(range(10)) | beam.ParDo(CountPerBundle()).with_outputs("seen")
        assert_that(counts[None] | beam.CombineGlobally(sum), equal_to([10]))
        assert_that(
            counts.seen | "SumSeen" >> beam.CombineGlobally(sum), equal_to([10]), label="CheckSeen"
        )


def test_side_inputs(pipeline):
    with pipeline as p:
        factor = p | "Factor" >> beam.Create([3])
        letters = p | "Letters" >> beam.Create(["x", "y"])
        numbers = p | "Numbers" >> beam.Create([1, 2])
        scaled = numbers | beam.Map(lambda n, f: n * f, beam.pvalue.AsSingleton(factor))
        pairs = numbers | beam.FlatMap(
            lambda n, ls: [(n, letter) for letter in ls], ls=beam.pvalue.AsList(letters)
        )
        assert_that(scaled, equal_to([3, 6]), label="CheckScaled")
        assert_that(pairs, equal_to([(1, "x"), (1, "y"), (2, "x"), (2, "y")]), label="CheckPairs")


def test_side_input_from_a_tagged_output(pipeline):
    with pipeline as p:
        parts = p | beam.Create([1, 2, 3, 4]) | beam.FlatMap(split_odd).with_outputs("odd")
        total_odd = parts.odd | beam.CombineGlobally(sum)
        shifted = parts[None] | beam.Map(lambda n, t: n + t, beam.pvalue.AsSingleton(total_odd))
        assert_that(shifted, equal_to([6, 8]))


def test_a_failed_assertion_fails_the_run(pipeline):
    """The checks above are live: a wrong expectation on a tagged output fails the run."""
    with pytest.raises(BeamAssertException):
        with pipeline as p:
            parts = p | beam.Create([1, 2]) | beam.FlatMap(split_odd).with_outputs("odd")
            assert_that(parts.odd, equal_to([1, 2]))


@pytest.mark.parametrize(
    "args",
    [
        ["--runner=DaskRunner"],
        ["--runner=dask"],
        ["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"],
        ["--runner", "DaskRunner"],
    ],
)
def test_dask_runner_names_select_ours(args):
    assert DASK_RUNNER in " ".join(with_runners_resolved(args))
    assert with_runners_resolved(["--runner=DirectRunner"]) == ["--runner=DirectRunner"]


def test_reshuffle_keeps_every_element(pipeline):
    with pipeline as p:
        assert_that(p | beam.Create(range(10)) | beam.Reshuffle(), equal_to(list(range(10))))


def test_reshuffle_spreads_one_partition_over_the_workers():
    from apache_beam.runners.dask.overrides import dask_overrides

    from embedbeam.pipeline.runners.dask_runner import DaskBagVisitor

    p = beam.Pipeline()
    listed = p | beam.Create(["one listing"]) | beam.FlatMap(lambda _: range(8))
    _ = listed | beam.Reshuffle()
    p.replace_all(dask_overrides())
    visitor = DaskBagVisitor(spread_to=4)
    p.visit(visitor)
    (spread,) = visitor.leaves()
    assert visitor.bags[listed].npartitions == 1
    assert spread.npartitions == 4
    assert sorted(spread.compute(scheduler="sync")) == list(range(8))


def test_tft_analyze_and_transform_runs_on_dask(tmp_path):
    """TFT's phase-0 ApplySavedModel and its final Transform are two ParDos of one DoFn
    class over the same input, each with its own SavedModel directory as a side input:
    each must run with its own (it once ran one's DoFn with the other's directory). One
    worker thread: TFT traces a SavedModel under a process-wide tracker, which two
    threads of one worker process must not do at once."""
    tf = pytest.importorskip("tensorflow")
    tft = pytest.importorskip("tensorflow_transform")
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec({"x": tf.io.FixedLenFeature([], tf.float32)})
    )

    def scale(inputs):
        return {"x": tft.scale_to_0_1(inputs["x"])}

    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        TestPipeline(
            runner=DaskRunner(),
            options=PipelineOptions([f"--dask_client_address={cluster.scheduler_address}"]),
        ) as p,
        tft_beam.Context(temp_dir=str(tmp_path)),
    ):
        rows = p | beam.Create([{"x": 1.0}, {"x": 3.0}, {"x": 5.0}])
        (transformed, _), _ = (rows, metadata) | tft_beam.AnalyzeAndTransformDataset(scale)
        assert_that(transformed | beam.Map(lambda row: float(row["x"])), equal_to([0.0, 0.5, 1.0]))
