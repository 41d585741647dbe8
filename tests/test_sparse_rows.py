"""Ragged batches laid end to end, as the encoder's `embed` signature takes them."""

import numpy as np

from embedbeam.transforms.sparse import SparseFeatures, SparseRows


def _row(ids, weights):
    return SparseFeatures(np.array(ids, np.int64), np.array(weights, np.float32))


def test_stack_lays_rows_end_to_end_without_padding():
    rows = SparseRows.stack(
        [_row([3, 9], [0.5, 1.0]), _row([4], [0.25]), _row([1, 2, 7], [1, 1, 1])]
    )

    np.testing.assert_array_equal(rows.ids, [3, 9, 4, 1, 2, 7])
    np.testing.assert_array_equal(rows.row_splits, [0, 2, 3, 6])
    assert rows.num_rows == 3


def test_take_picks_rows_in_the_order_asked():
    rows = SparseRows.stack(
        [_row([3, 9], [0.5, 1.0]), _row([4], [0.25]), _row([1, 2, 7], [1, 1, 1])]
    )

    picked = rows.take(np.array([2, 0]))

    np.testing.assert_array_equal(picked.ids, [1, 2, 7, 3, 9])
    np.testing.assert_array_equal(picked.weights, [1, 1, 1, 0.5, 1.0])
    np.testing.assert_array_equal(picked.row_splits, [0, 3, 5])


def test_an_empty_batch_has_one_split():
    rows = SparseRows.stack([])

    assert rows.num_rows == 0 and rows.row_splits.tolist() == [0]


def test_split_by_nnz_keeps_each_run_within_the_bound_and_a_long_row_alone():
    rows = SparseRows.stack(
        [_row([1, 2], [1, 1]), _row([3], [1]), _row([4, 5, 6, 7, 8], [1] * 5), _row([9], [1])]
    )

    parts = list(rows.split_by_nnz(3))

    assert [part.row_splits.tolist() for part in parts] == [[0, 2, 3], [0, 5], [0, 1]]
    np.testing.assert_array_equal(np.concatenate([part.ids for part in parts]), rows.ids)
    assert SparseRows.concat(parts).row_splits.tolist() == rows.row_splits.tolist()


def test_split_by_nnz_also_bounds_rows_when_asked():
    rows = SparseRows.stack([_row([i], [1]) for i in range(5)])

    parts = list(rows.split_by_nnz(100, max_rows=2))

    assert [part.num_rows for part in parts] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([part.ids for part in parts]), rows.ids)
