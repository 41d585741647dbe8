"""Listing, reading and featurizing on a handful of real files: plain functions, and the
ListInputBatches and ReadAndFeaturize stages in a TestPipeline."""

from __future__ import annotations

import itertools
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow
from PIL import Image

from embedbeam.transforms.common.records import DeadLetter, InputRef, id_for_uri
from embedbeam.transforms.list_inputs import (
    GlobPart,
    InputSource,
    ListInputBatches,
    ManifestPart,
    duplicate_ids,
    list_refs,
    listing_parts,
)
from embedbeam.transforms.read_and_featurize import (
    _BATCHES_IN_FLIGHT_PER_WORKER,
    ReadAndFeaturize,
    _ReadAndFeaturizeBatchFn,
)
from embedbeam.transforms.sparse import InvalidInput
from embedbeam.transforms.sparse.modalities import modality_for_uri
from embedbeam.transforms.sparse.read_bytes import (
    DEFAULT_MAX_BYTES,
    READ_CHUNK_BYTES,
    read_bounded,
    read_or_dead_letter,
)
from embedbeam.transforms.sparse.ref_featurizer import RefFeaturizerSpec
from embedbeam.transforms.table.files import match_paths
from tests.conftest import encode

IMAGES = {"image": {"grid": 28, "threshold": 0.2}}


def _file_stage_error(letter: DeadLetter) -> tuple[str, str, str]:
    """What a test says of a dead letter: its file's name, the stage and the reason."""
    return letter.uri.rsplit("/", 1)[-1], letter.stage, letter.error


def _listed(p: beam.Pipeline, source: InputSource) -> beam.PCollection[InputRef]:
    """Every ref ListInputBatches lists, one element each (in batches of two)."""
    return p | ListInputBatches(source, batch_size=2) | beam.FlatMap(lambda batch: batch)


def _read(source: InputSource) -> tuple[list[tuple[InputRef, bytes]], list[DeadLetter]]:
    """What reading makes of every input listed: (ref, bytes) pairs, and dead letters."""
    read, dead_letters = [], []
    for ref in list_refs(source):
        data = read_or_dead_letter(ref, DEFAULT_MAX_BYTES)
        (dead_letters.append(data) if isinstance(data, DeadLetter) else read.append((ref, data)))
    return read, dead_letters


@pytest.fixture
def image_folder(tmp_path, seven_png):
    (tmp_path / "7").mkdir()
    (tmp_path / "blank").mkdir()
    (tmp_path / "7" / "a.png").write_bytes(seven_png)
    (tmp_path / "blank" / "b.png").write_bytes(encode(Image.new("L", (28, 28)), "PNG"))
    (tmp_path / "7" / "notes.xyz").write_text("not an input")
    return tmp_path


def test_a_glob_lists_files_with_labels_from_their_folders(image_folder):
    with TestPipeline() as p:
        refs = _listed(p, InputSource(pattern=f"{image_folder}/*/*"))

        assert_that(
            refs | beam.Map(lambda ref: (ref.uri.rsplit("/", 2)[-2:], ref.label, ref.modality)),
            equal_to(
                [
                    (["7", "a.png"], "7", "image"),
                    (["blank", "b.png"], "blank", "image"),
                    (["7", "notes.xyz"], "7", None),
                ]
            ),
        )


@pytest.mark.parametrize(
    "pattern",
    ["*/*", "**", "*/*.png", "7/a.png", "7/", "*/?.png", "[7b]*/*", "**.xyz", "7/.h*", "missing/*"],
)
def test_local_globs_match_what_beams_filesystems_match(image_folder, pattern, monkeypatch):
    (image_folder / "7" / "deep").mkdir()
    (image_folder / "7" / "deep" / "c.png").write_bytes(b"png")
    (image_folder / "7" / ".hidden").write_text("a dotfile")
    beam_paths = lambda p: [m.path for m in FileSystems.match([p])[0].metadata_list]  # noqa: E731

    assert match_paths(f"{image_folder}/{pattern}") == beam_paths(f"{image_folder}/{pattern}")
    monkeypatch.chdir(image_folder)  # relative patterns too
    assert match_paths(pattern) == beam_paths(pattern)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_manifest_gives_ids_labels_and_resolves_relative_uris(image_folder, fmt):
    rows = [
        {"uri": "7/a.png", "id": "007", "label": "seven"},
        {"uri": str(image_folder / "blank" / "b.png"), "id": None, "label": None},
    ]
    manifest = image_folder / f"manifest.{fmt}"
    if fmt == "csv":
        manifest.write_text("uri,id,label\n7/a.png,007,seven\n" + f"{rows[1]['uri']},,\n")
    elif fmt == "jsonl":
        manifest.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), manifest)

    with TestPipeline() as p:
        refs = _listed(p, InputSource(manifest=str(manifest)))

        assert_that(
            refs | beam.Map(lambda ref: (ref.id, ref.uri, ref.label)),
            equal_to(
                [
                    ("007", f"{image_folder}/7/a.png", "seven"),
                    (id_for_uri(rows[1]["uri"]), rows[1]["uri"], None),
                ]
            ),
        )


def test_reading_routes_missing_oversize_and_unknown_files_to_dead_letters(image_folder):
    big = image_folder / "7" / "big.png"
    big.write_bytes(b"\0" * 5000)
    manifest = image_folder / "manifest.csv"
    manifest.write_text("uri\n7/a.png\n7/missing.png\n7/big.png\n7/notes.xyz\n")

    with TestPipeline() as p:
        listed = p | ListInputBatches(InputSource(manifest=str(manifest)), batch_size=2)
        featurized, dead_letters = listed | ReadAndFeaturize(IMAGES, max_bytes=4000)

        assert_that(
            featurized | beam.FlatMap(lambda batch: [r.uri.rsplit("/", 1)[-1] for r in batch.refs]),
            equal_to(["a.png"]),
            label="featurized",
        )
        assert_that(
            dead_letters | beam.Map(_file_stage_error),
            equal_to(
                [
                    ("missing.png", "read", "missing_file"),
                    ("big.png", "read", "file_too_large"),
                    ("notes.xyz", "read", "unknown_modality"),
                ]
            ),
            label="dead letters",
        )


def test_a_read_spanning_several_chunks_is_whole_cut_or_refused_by_the_limit(tmp_path):
    content = bytes(range(256)) * (3 * READ_CHUNK_BYTES // 256 + 7)  # three chunks and a bit
    (tmp_path / "long.png").write_bytes(content)
    (tmp_path / "long.wav").write_bytes(content)
    image = InputRef(id="i", uri=str(tmp_path / "long.png"), label=None, modality="image")
    audio = InputRef(id="a", uri=str(tmp_path / "long.wav"), label=None, modality="audio")

    assert read_bounded(image, len(content)) == content
    assert read_bounded(audio, 2 * READ_CHUNK_BYTES + 5) == content[: 2 * READ_CHUNK_BYTES + 5]
    with pytest.raises(InvalidInput) as caught:
        read_bounded(image, len(content) - 1)
    assert caught.value.reason == "file_too_large"


def test_a_file_that_cannot_be_read_says_why(tmp_path):
    (tmp_path / "folder.png").mkdir()  # a manifest can name a directory
    folder = InputRef(id="d", uri=str(tmp_path / "folder.png"), label=None, modality="image")

    with pytest.raises(InvalidInput) as caught:
        read_bounded(folder, 1000)

    assert caught.value.reason == "not_a_regular_file"
    assert "is a directory" in str(caught.value)


def test_stages_count_what_they_see_in_beam_metrics(image_folder):
    p = TestPipeline()
    listed = p | ListInputBatches(InputSource(pattern=f"{image_folder}/*/*"), batch_size=2)
    _ = listed | ReadAndFeaturize(IMAGES)

    result = p.run()
    result.wait_until_finish()

    counters = {c.key.metric.name: c.committed for c in result.metrics().query()["counters"]}
    assert counters["inputs_seen"] == 3
    assert counters["inputs_read"] == 2 and counters["dead_letters_read"] == 1
    assert counters["inputs_featurized"] == 1 and counters["dead_letters_featurize"] == 1


def test_manifest_rows_may_carry_their_text_or_ids_inline(tmp_path):
    manifest = tmp_path / "inline.jsonl"
    manifest.write_text(
        json.dumps({"id": "doc1", "label": "food", "text": "a sweet red fruit"}) + "\n"
        + json.dumps({"id": "pkg1", "label": "net", "ids": ["libc6", "perl"]}) + "\n"
        + json.dumps({"id": "pkg2", "ids": []}) + "\n"
    )  # fmt: skip

    read, dead_letters = _read(InputSource(manifest=str(manifest)))

    assert [(ref.id, ref.modality, data) for ref, data in read] == [
        ("doc1", "text", b"a sweet red fruit"),
        ("pkg1", "ids", b"libc6\nperl"),
        ("pkg2", "ids", b""),
    ]
    assert dead_letters == []


def test_each_jsonl_line_is_an_input_and_bad_lines_are_dead_letters(tmp_path):
    (tmp_path / "fruit").mkdir()
    docs = tmp_path / "fruit" / "docs.jsonl"
    docs.write_text(
        json.dumps({"body": "a sweet red fruit"}) + "\n"
        + json.dumps({"body": "yellow and curved", "label": "banana"}) + "\n\n"
        + "{not json\n"
        + json.dumps({"title": "no body"}) + "\n"
    )  # fmt: skip

    read, dead_letters = _read(InputSource(pattern=f"{tmp_path}/*/*.jsonl", text_field="body"))

    assert [(ref.uri.rsplit("#", 1)[-1], ref.label, data) for ref, data in read] == [
        ("1", "fruit", b"a sweet red fruit"),
        ("2", "banana", b"yellow and curved"),
    ]
    assert [(letter.uri.rsplit("#", 1)[-1], letter.error) for letter in dead_letters] == [
        ("4", "bad_jsonl_line"),
        ("5", "bad_jsonl_line"),
    ]


def test_the_first_row_of_an_id_wins_and_later_rows_are_dead_letters(image_folder):
    manifest = image_folder / "manifest.csv"
    manifest.write_text(
        "uri,id,label\n7/a.png,x,first\nblank/b.png,x,second\nblank/b.png,y,\n7/a.png,x,third\n"
    )

    read, dead_letters = _read(InputSource(manifest=str(manifest)))

    assert [(ref.id, ref.label) for ref, _ in read] == [("x", "first"), ("y", None)]
    assert [(*_file_stage_error(letter), "row 1" in letter.message) for letter in dead_letters] == [
        ("b.png", "list", "duplicate_id", True),
        ("a.png", "list", "duplicate_id", True),
    ]


def test_manifest_rows_that_do_not_parse_or_carry_bad_ids_are_dead_letters(image_folder):
    manifest = image_folder / "manifest.jsonl"
    manifest.write_text(
        json.dumps({"uri": "7/a.png", "id": 7.0, "label": float("nan")}) + "\n\n"
        + "{not json\n"
        + "[1, 2]\n"
        + json.dumps({"uri": "7/a.png", "id": ["a", "list"]}) + "\n"
        + json.dumps({"uri": "blank/b.png", "id": float("nan")}) + "\n"
        + json.dumps({"id": "pkg", "ids": [float("nan"), None, "libc6"]}) + "\n"
    )  # fmt: skip

    read, dead_letters = _read(InputSource(manifest=str(manifest)))

    assert [(ref.id, ref.label, data[:6]) for ref, data in read] == [
        ("7", None, (image_folder / "7" / "a.png").read_bytes()[:6]),
        (
            id_for_uri(str(image_folder / "blank" / "b.png")),
            None,
            (image_folder / "blank" / "b.png").read_bytes()[:6],
        ),
        ("pkg", None, b"libc6"),
    ]
    assert sorted((letter.uri.rsplit("/", 1)[-1], letter.error) for letter in dead_letters) == [
        ("a.png", "bad_id"),
        ("manifest.jsonl#row=3", "bad_manifest_row"),
        ("manifest.jsonl#row=4", "bad_manifest_row"),
    ]


def test_a_csv_row_with_too_many_fields_is_a_dead_letter_not_a_failed_job(image_folder):
    manifest = image_folder / "manifest.csv"
    manifest.write_text("uri,id\n7/a.png,a\n7/a.png,b,extra\nblank/b.png,c\n")

    refs = list_refs(InputSource(manifest=str(manifest)))

    assert [(ref.id, ref.problem and ref.problem[0]) for ref in refs] == [
        ("a", None),
        (id_for_uri(f"{manifest}#row=2"), "bad_manifest_row"),
        ("c", None),
    ]


def test_read_and_featurize_takes_batches_and_gives_each_failure_its_stage(image_folder):
    (image_folder / "7" / "c.txt").write_text("seven")
    refs = [
        InputRef(id_for_uri(str(path)), str(path), path.parent.name, modality_for_uri(str(path)))
        for path in sorted(image_folder.glob("*/*"))
    ]
    refs.append(InputRef("gone", str(image_folder / "gone.png"), None, "image"))

    with TestPipeline() as p:
        featurized, dead_letters = p | beam.Create([refs[:2], refs[2:]]) | ReadAndFeaturize(IMAGES)

        assert_that(
            featurized
            | beam.FlatMap(lambda batch: [(ref.label, batch.modality) for ref in batch.refs]),
            equal_to([("7", "image")]),
            label="featurized",
        )
        assert_that(
            dead_letters | beam.Map(_file_stage_error),
            equal_to(
                [
                    ("b.png", "featurize", "no_active_features"),
                    ("c.txt", "featurize", "no_model_for_modality"),
                    ("gone.png", "read", "missing_file"),
                    ("notes.xyz", "read", "unknown_modality"),
                ]
            ),
            label="dead letters",
        )


@pytest.mark.parametrize("processes", [0, 2])
def test_read_and_featurize_works_ahead_and_keeps_batch_order(digit_folders, processes):
    """The next batches are read while the last goes downstream (two per child process,
    or two on the thread); the bundle's end flushes them."""
    paths = sorted(digit_folders.glob("test/*/*.png"))[:12]
    refs = [
        InputRef(f"id{i}", str(path), path.parent.name, "image") for i, path in enumerate(paths)
    ]
    batches = [refs[start : start + 2] for start in range(0, 12, 2)]
    spec = RefFeaturizerSpec(IMAGES, {}, 1 << 20)
    read_and_featurize = _ReadAndFeaturizeBatchFn(spec, None, processes)
    read_and_featurize.setup()
    read_and_featurize.start_bundle()

    emitted_per_batch = [list(read_and_featurize.process(batch)) for batch in batches]
    flushed = list(read_and_featurize.finish_bundle())
    read_and_featurize.teardown()

    ahead = _BATCHES_IN_FLIGHT_PER_WORKER * max(processes, 1)
    assert [len(outputs) for outputs in emitted_per_batch] == [0] * ahead + [1] * (6 - ahead)
    assert [list(w.windows) for w in flushed] == [[GlobalWindow()]] * ahead
    emitted = [*itertools.chain(*emitted_per_batch), *(w.value for w in flushed)]
    assert [featurized.refs for featurized in emitted] == [tuple(batch) for batch in batches]


def _ids_manifest(path, ids: list[str], row_group_size: int):
    """A Parquet manifest of inline ids rows, `row_group_size` rows a row group."""
    table = pa.table({"id": ids, "ids": [["libc6", f"lib{i}"] for i in range(len(ids))]})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_a_parquet_manifest_is_listed_one_row_group_a_part_with_its_first_row(tmp_path):
    manifest = _ids_manifest(tmp_path / "m.parquet", ["a", "b", "c", "d", "e"], 2)

    parts = listing_parts(InputSource(manifest=str(manifest)))

    assert parts == [ManifestPart(str(manifest), 0, 1, 2), ManifestPart(str(manifest), 1, 3, 2),
                     ManifestPart(str(manifest), 2, 5, 1)]  # fmt: skip


def test_the_first_row_of_an_id_wins_across_row_groups_listed_apart(tmp_path):
    manifest = _ids_manifest(tmp_path / "m.parquet", ["a", "b", "c", "a", "b", "a"], 2)

    refs = list_refs(InputSource(manifest=str(manifest)))

    assert duplicate_ids(str(manifest)) == {"a": 1, "b": 2}
    assert [(ref.id, ref.problem and ref.problem[1]) for ref in refs] == [
        ("a", None),
        ("b", None),
        ("c", None),
        ("a", "id 'a' is already used by row 1 of the manifest; the first row of an id wins"),
        ("b", "id 'b' is already used by row 2 of the manifest; the first row of an id wins"),
        ("a", "id 'a' is already used by row 1 of the manifest; the first row of an id wins"),
    ]


def test_a_glob_is_listed_one_top_folder_a_part_and_finds_what_one_walk_finds(image_folder):
    (image_folder / "7" / "deeper").mkdir()
    (image_folder / "7" / "deeper" / "c.png").write_bytes(
        (image_folder / "7" / "a.png").read_bytes()
    )
    (image_folder / "top.png").write_bytes((image_folder / "7" / "a.png").read_bytes())
    source = InputSource(pattern=f"{image_folder}/**.png")

    parts = listing_parts(source)

    assert parts == [
        GlobPart(source.pattern, str(image_folder), recursive=False),
        GlobPart(source.pattern, str(image_folder / "7")),
        GlobPart(source.pattern, str(image_folder / "blank")),
    ]
    matched = FileSystems.match([source.pattern])[0].metadata_list
    assert sorted(ref.uri for ref in list_refs(source)) == sorted(m.path for m in matched)
    assert len(matched) == 4


def test_listing_spread_over_workers_expands_jsonl_after_the_spread(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        lines = [json.dumps({"text": f"{folder} document {i}"}) for i in range(3)]
        (tmp_path / folder / "docs.jsonl").write_text("\n".join(lines) + "\n")
    source = InputSource(pattern=f"{tmp_path}/*/*.jsonl")

    with TestPipeline() as p:
        batches = p | ListInputBatches(source, batch_size=2, spread=True)

        assert_that(
            batches | beam.FlatMap(lambda batch: [ref.uri.rsplit("/", 2)[-2:] for ref in batch]),
            equal_to([[folder, f"docs.jsonl#{line}"] for folder in "xy" for line in (1, 2, 3)]),
        )
        assert_that(batches | beam.Map(len), equal_to([2, 1, 2, 1]), label="batch sizes")


def _csv_and_jsonl_manifests(folder) -> dict[str, object]:
    """The same rows as CSV and JSONL: a header (CSV), a quoted field holding a newline
    (CSV), blank lines, a row that does not parse, and ids used again further on."""
    csv_manifest = folder / "m.csv"
    csv_manifest.write_text(
        "uri,id,label\n7/a.png,x,first\n"
        '7/a.png,long,"a label\nspread over two lines, long enough to cross a cut"\n'
        "\nblank/b.png,y,\n7/a.png,bad,row,extra\nblank/b.png,x,again\n\n7/a.png,z,\n"
        "blank/b.png,y,last\n"
    )
    rows = [{"uri": "7/a.png", "id": "x", "label": "first"},
            {"uri": "7/a.png", "id": "long", "label": "a label long enough to cross a cut"},
            {"uri": "blank/b.png", "id": "y"}, {"uri": "blank/b.png", "id": "x"},
            {"id": "t", "text": "inline"}, {"uri": "7/a.png", "id": "z"},
            {"uri": "blank/b.png", "id": "y", "label": "last"}]  # fmt: skip
    lines = [json.dumps(row) for row in rows]
    jsonl_manifest = folder / "m.jsonl"
    jsonl_manifest.write_text("\n".join([*lines[:3], "", "{not json", *lines[3:]]) + "\n")
    return {"csv": csv_manifest, "jsonl": jsonl_manifest}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_text_manifest_cut_in_byte_ranges_lists_what_one_part_lists(
    image_folder, fmt, monkeypatch
):
    manifest = _csv_and_jsonl_manifests(image_folder)[fmt]
    source = InputSource(manifest=str(manifest))
    one_part = list(list_refs(source))
    monkeypatch.setattr("embedbeam.transforms.list_inputs.MANIFEST_PART_BYTES", 30)

    parts = listing_parts(source)
    refs = list(list_refs(source))

    assert len(parts) > 3
    starts = [part.byte_range[0] for part in parts]
    data = manifest.read_bytes()
    assert all(data[start - 1 : start] == b"\n" for start in starts[1:])  # where rows start
    assert any(b - a > 30 for a, b in itertools.pairwise(starts))  # past a row across a cut
    assert refs == one_part
    assert [(ref.id, ref.problem and ref.problem[0]) for ref in refs if ref.problem] == [
        (id_for_uri(f"{manifest}#row={4 if fmt == 'csv' else 5}"), "bad_manifest_row"),
        ("x", "duplicate_id"),
        ("y", "duplicate_id"),
    ]
    assert refs[1].label.startswith("a label")


def test_a_csv_manifest_gives_its_header_to_every_part_and_the_spread_listing_agrees(
    image_folder, monkeypatch
):
    manifest = _csv_and_jsonl_manifests(image_folder)["csv"]
    source = InputSource(manifest=str(manifest))
    one_part = [(ref.id, ref.label, ref.problem) for ref in list_refs(source)]
    monkeypatch.setattr("embedbeam.transforms.list_inputs.MANIFEST_PART_BYTES", 30)

    assert {part.header for part in listing_parts(source)} == {("uri", "id", "label")}
    with TestPipeline() as p:
        batches = p | ListInputBatches(source, batch_size=2, spread=True)

        assert_that(
            batches | beam.FlatMap(lambda batch: [(r.id, r.label, r.problem) for r in batch]),
            equal_to(one_part),
        )
