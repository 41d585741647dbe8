"""Bad input at scale: a Parquet manifest with a corrupt row group, and a glob whose files
vanish between listing and reading. Each unreadable input is a dead letter with a reason,
nothing is lost, and the commit's accounting (inputs seen = rows + dead letters) holds."""

from __future__ import annotations

import json
import pathlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from embedbeam.pipeline import cli
from embedbeam.transforms.list_inputs import InputSource, ListInputBatches, list_refs
from embedbeam.transforms.read_and_featurize import ReadAndFeaturize

ROWS_PER_GROUP = 4
IMAGES = {"image": {"grid": 28, "threshold": 0.2}}


def _digit_paths(digit_folders: pathlib.Path, count: int) -> list[str]:
    return [str(path) for path in sorted(digit_folders.glob("test/*/*.png"))[:count]]


def _corrupt_row_group(path: pathlib.Path, row_group: int) -> None:
    """Overwrites the data pages of one row group's `uri` column with zeros; the footer
    (and so the row count) stays whole."""
    column = pq.ParquetFile(path).metadata.row_group(row_group).column(0)
    data = bytearray(path.read_bytes())
    start = column.dictionary_page_offset if column.has_dictionary_page else column.data_page_offset
    data[start : start + column.total_compressed_size] = bytes(column.total_compressed_size)
    path.write_bytes(bytes(data))


def _manifest_with_a_corrupt_row_group(digit_folders, tmp_path) -> pathlib.Path:
    """12 image rows in 3 row groups of 4; the middle one unreadable."""
    manifest = tmp_path / "manifest.parquet"
    table = pa.table({"uri": _digit_paths(digit_folders, 3 * ROWS_PER_GROUP)})
    pq.write_table(table, manifest, row_group_size=ROWS_PER_GROUP, compression="none")
    _corrupt_row_group(manifest, 1)
    return manifest


def test_the_rows_of_a_corrupt_row_group_are_inputs_carrying_the_reason(digit_folders, tmp_path):
    manifest = _manifest_with_a_corrupt_row_group(digit_folders, tmp_path)

    refs = list(list_refs(InputSource(manifest=str(manifest))))

    assert len(refs) == 3 * ROWS_PER_GROUP
    problems = [ref.problem[0] if ref.problem else None for ref in refs]
    assert problems == [None] * 4 + ["unreadable_row_group"] * 4 + [None] * 4
    assert [ref.uri.rsplit("#", 1)[-1] for ref in refs[4:8]] == [f"row={n}" for n in (5, 6, 7, 8)]
    assert "row group 1 cannot be read" in refs[4].problem[1]


def test_embed_commits_a_manifest_with_a_corrupt_row_group_with_its_rows_as_dead_letters(
    trained_model, digit_folders, tmp_path
):
    manifest = _manifest_with_a_corrupt_row_group(digit_folders, tmp_path)
    out = tmp_path / "out"

    args = ["embed", "--model", str(trained_model), "--manifest", str(manifest)]
    assert cli.main([*args, "--output", str(out)]) == 0

    record = json.loads((out / "_manifest.json").read_text())
    assert (record["inputs_seen"], record["rows_written"], record["dead_letters"]) == (12, 8, 4)
    dead = ds.dataset(out / "dead_letter").to_table().to_pylist()
    assert sorted((d["uri"].rsplit("#", 1)[-1], d["stage"], d["error"]) for d in dead) == [
        (f"row={n}", "list", "unreadable_row_group") for n in (5, 6, 7, 8)
    ]


def _delete_every_other_file(batch: list) -> list:
    """Test stand-in for files removed after listing, before reading."""
    for ref in batch[::2]:
        pathlib.Path(ref.uri).unlink(missing_ok=True)
    return batch


def test_files_that_vanish_after_listing_are_dead_letters_and_nothing_is_lost(
    digit_folders, tmp_path
):
    for index, path in enumerate(_digit_paths(digit_folders, 12)):
        folder = tmp_path / "inputs" / str(index % 3)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{index}.png").write_bytes(pathlib.Path(path).read_bytes())
    source = InputSource(pattern=f"{tmp_path}/inputs/*/*.png")

    with TestPipeline() as p:
        listed = p | ListInputBatches(source, batch_size=4, spread=True)
        featurized, dead_letters = (
            listed | beam.Map(_delete_every_other_file) | ReadAndFeaturize(IMAGES)
        )
        rows = featurized | "Rows" >> beam.Map(lambda batch: len(batch.refs))
        assert_that(
            (rows, dead_letters | "One" >> beam.Map(lambda _: 1))
            | beam.Flatten()
            | beam.CombineGlobally(sum),
            equal_to([12]),
            label="every input accounted for",
        )
        assert_that(
            dead_letters | beam.Map(lambda letter: (letter.stage, letter.error)),
            equal_to([("read", "missing_file")] * 6),
            label="dead letters",
        )
