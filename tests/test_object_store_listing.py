"""A gs:// glob listed in key ranges by workers apart, against a fake google.cloud.storage
client that holds a bucket's names in memory and lists them as GCS does (byte order,
`prefix`, `start_offset` inclusive, `end_offset` exclusive). Beam's own GCS FileSystem
is given the same client, so one FileSystems.match of the glob is the listing the key
ranges must add up to."""

from __future__ import annotations

import dataclasses
import datetime
import random
import string

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.gcp import gcsio
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from embedbeam.transforms.list_inputs import (
    GlobPart,
    InputSource,
    KeyRangePart,
    ListInputBatches,
    list_refs,
    listing_parts,
    refs_of_part,
)
from embedbeam.transforms.table import files

BUCKET = "bkt"
# First characters of the names after a glob's prefix: every kind a key range must take.
FIRST_CHARACTERS = string.digits + string.ascii_letters + "_-.~é中"
# Characters each glob below has names starting with: the cuts' own and those between them.
EDGE_CHARACTERS = "0Zz_-.é"


@dataclasses.dataclass(frozen=True)
class _FakeBucketRef:
    name: str


@dataclasses.dataclass(frozen=True)
class _FakeBlob:
    """The fields of google.cloud.storage's Blob that listing reads."""

    name: str
    bucket: _FakeBucketRef
    size: int = 1
    updated: datetime.datetime = datetime.datetime(2026, 1, 1)


class _FakeClient:
    """Lists `names` as Client.list_blobs does, and remembers how it was asked."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.listings: list[dict[str, str | None]] = []

    def bucket(self, name: str) -> _FakeBucketRef:
        return _FakeBucketRef(name)

    def list_blobs(self, bucket, prefix=None, start_offset=None, end_offset=None, **_):
        self.listings.append({"prefix": prefix, "start": start_offset, "end": end_offset})
        name_of_bucket = bucket if isinstance(bucket, str) else bucket.name
        in_range = (
            name
            for name in sorted(self.names, key=lambda name: name.encode("utf-8"))
            if name.startswith(prefix or "")
            and (start_offset is None or name >= start_offset)
            and (end_offset is None or name < end_offset)
        )
        return iter([_FakeBlob(name, _FakeBucketRef(name_of_bucket)) for name in in_range])


def _bucket_names(seed: int = 0) -> list[str]:
    """~200 names: under `data/` (nested, every kind of first character), `img_` files at
    the top, and the prefixes' edges (the folder object itself, names one character long,
    names sharing the cut characters)."""
    rng = random.Random(seed)

    def tail() -> str:
        return "".join(
            rng.choices(string.ascii_letters + string.digits + "_-é", k=rng.randint(0, 6))
        )

    names = {"data/", "data/0", "data/z", "data/zz.png", "img_.png"}
    for c in EDGE_CHARACTERS:
        names.update({f"data/{c}.png", f"data/{c}/{c}.png", f"img_{c}.png"})
    for _ in range(120):
        folder = rng.choice(["", *(f"{c}{tail()}/" for c in rng.sample(FIRST_CHARACTERS, 3))])
        names.add(
            f"data/{folder}{rng.choice(FIRST_CHARACTERS)}{tail()}{rng.choice(['.png', '.wav'])}"
        )
    for _ in range(60):
        names.add(f"img_{rng.choice(FIRST_CHARACTERS)}{tail()}{rng.choice(['.png', '.txt'])}")
    names.update({"dat.png", "other/x.png", "img.png", "data2/x.png"})
    return sorted(names)


@pytest.fixture
def fake_gcs(monkeypatch):
    """A fake client for both embedbeam's ranged listings and Beam's FileSystems.match."""
    client = _FakeClient(_bucket_names())
    monkeypatch.setattr(gcsio, "create_storage_client", lambda *args, **kwargs: client)
    files._gcs_client.cache_clear()
    yield client
    files._gcs_client.cache_clear()


def _beam_match(pattern: str) -> list[str]:
    return [metadata.path for metadata in FileSystems.match([pattern])[0].metadata_list]


@pytest.mark.parametrize(
    "pattern", ["gs://bkt/data/**", "gs://bkt/img_*.png", "gs://bkt/data/*/*.png"]
)
def test_the_key_ranges_of_a_gcs_glob_list_apart_and_in_order_what_one_match_lists(
    fake_gcs, pattern
):
    source = InputSource(pattern=pattern)
    prefix = pattern.removeprefix(f"gs://{BUCKET}/").split("*")[0]

    parts = listing_parts(source)
    listings = [[ref.uri for ref in refs_of_part(part, source, {})] for part in parts]
    ranged = list(fake_gcs.listings)
    whole = _beam_match(pattern)

    assert all(isinstance(part, KeyRangePart) for part in parts) and len(parts) > 1
    assert [uri for listing in listings for uri in listing] == whole  # disjoint, in order
    assert all(listing == sorted(listing, key=str.encode) for listing in listings)
    assert len(set(whole)) == len(whole) > 10
    first_characters = {uri.removeprefix(f"gs://{BUCKET}/{prefix}")[:1] for uri in whole}
    assert set(EDGE_CHARACTERS) <= first_characters
    assert len(ranged) == len(parts)
    assert all(call["prefix"] == prefix for call in ranged)
    assert all(call["start"] is not None or call["end"] is not None for call in ranged)


def test_a_gcs_glob_listed_by_workers_gives_every_path_once(fake_gcs):
    source = InputSource(pattern="gs://bkt/data/**.png")
    whole = _beam_match(source.pattern)

    assert sorted(ref.uri for ref in list_refs(source)) == sorted(whole)
    with TestPipeline() as p:
        batches = p | ListInputBatches(source, batch_size=16, spread=True)

        assert_that(
            batches | beam.FlatMap(lambda batch: [ref.uri for ref in batch]), equal_to(whole)
        )


@pytest.mark.parametrize(
    "pattern", ["s3://bkt/data/*.png", "hdfs://host/data/**", "gs://bkt/data/a.png"]
)
def test_other_schemes_and_globs_without_a_wildcard_are_one_part(pattern):
    assert listing_parts(InputSource(pattern=pattern)) == [GlobPart(pattern)]


def test_the_launcher_counts_a_gcs_glob_range_by_range_and_stops_past_its_limit(
    fake_gcs, monkeypatch
):
    from embedbeam.pipeline.jobs import preflight

    source = InputSource(pattern="gs://bkt/data/**")
    assert preflight.expected_inputs(source) == len(_beam_match(source.pattern))
    fake_gcs.listings.clear()

    monkeypatch.setattr(preflight, "LAUNCH_COUNT_LIMIT", 5)

    assert preflight.expected_inputs(source) is None
    assert 0 < len(fake_gcs.listings) < len(listing_parts(source))  # not the whole prefix
    assert all(call["start"] is not None or call["end"] is not None for call in fake_gcs.listings)
