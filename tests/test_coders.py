"""The batch types' coders: pickle round trips, sizes estimated without pickling."""

from __future__ import annotations

import pickle

import apache_beam as beam
import numpy as np
from apache_beam.testing.test_pipeline import TestPipeline

from embedbeam.transforms.common.coders import FeaturizedBatchCoder, InputRefCoder
from embedbeam.transforms.common.records import FeaturizedBatch, InputRef
from embedbeam.transforms.list_inputs import InputSource, ListInputBatches
from embedbeam.transforms.read_and_featurize import ReadAndFeaturize
from embedbeam.transforms.sparse.ref_featurizer import RefFeaturizerSpec

IMAGE_SETTINGS = {"image": {"grid": 28, "threshold": 0.2}}


def _featurized_digits(digit_folders, count: int) -> FeaturizedBatch:
    paths = sorted(digit_folders.glob("test/*/*.png"))[:count]
    refs = [
        InputRef(f"id{i}", str(path), path.parent.name, "image") for i, path in enumerate(paths)
    ]
    featurized = RefFeaturizerSpec(IMAGE_SETTINGS, {"image": "unused"}, 1 << 20).build()(refs)
    [rows] = featurized.featurized
    return FeaturizedBatch("image", tuple(refs[i] for i in rows.positions), rows.rows)


def test_a_batch_round_trips_and_its_size_is_estimated_near_its_pickled_size(digit_folders):
    batch = _featurized_digits(digit_folders, 64)
    coder = FeaturizedBatchCoder()

    decoded = coder.decode(coder.encode(batch))

    assert decoded.refs == batch.refs and decoded.modality == batch.modality
    np.testing.assert_array_equal(decoded.rows.ids, batch.rows.ids)
    np.testing.assert_array_equal(decoded.rows.weights, batch.rows.weights)
    pickled = len(pickle.dumps(batch, pickle.HIGHEST_PROTOCOL))
    assert 0.8 * pickled < coder.estimate_size(batch) < 1.25 * pickled


def test_a_ref_round_trips_and_its_size_is_estimated_near_its_pickled_size():
    ref = InputRef("0" * 32, "/data/mnist/7/00012.png", "7", "image")
    coder = InputRefCoder()

    assert coder.decode(coder.encode(ref)) == ref
    pickled = len(pickle.dumps(ref, pickle.HIGHEST_PROTOCOL))
    assert 0.5 * pickled < coder.estimate_size(ref) < 2 * pickled


def test_the_embed_jobs_batches_are_declared_with_these_types(digit_folders):
    p = TestPipeline()
    ref_batches = p | ListInputBatches(InputSource(pattern=f"{digit_folders}/test/*/*.png"), 8)
    featurized, _ = ref_batches | ReadAndFeaturize(IMAGE_SETTINGS, {"image": "unused"})

    assert beam.coders.registry.get_coder(ref_batches.element_type) == beam.coders.ListCoder(
        InputRefCoder()
    )
    assert beam.coders.registry.get_coder(featurized.element_type) == FeaturizedBatchCoder()
