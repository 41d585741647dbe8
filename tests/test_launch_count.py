"""What the launcher counts before a job starts (preflight.expected_inputs): a Parquet
manifest's rows from its footer, however many; a glob's files only up to a limit, so
that the launch does not grow with the job (the commit checks the job's own count)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from embedbeam.pipeline.jobs import preflight
from embedbeam.transforms.list_inputs import InputSource


def test_a_parquet_manifest_is_counted_from_its_footer_past_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "LAUNCH_COUNT_LIMIT", 3)
    manifest = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(7)], "text": ["t"] * 7}), manifest)

    assert preflight.expected_inputs(InputSource(manifest=str(manifest))) == 7


def test_a_glob_or_csv_manifest_is_counted_up_to_the_limit_and_no_further(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "LAUNCH_COUNT_LIMIT", 3)
    for count, folder in [(3, "few"), (4, "many")]:
        (tmp_path / folder).mkdir()
        for i in range(count):
            (tmp_path / folder / f"{i}.txt").write_text("text")
        (tmp_path / f"{folder}.csv").write_text("text\n" + "words\n" * count)

    assert preflight.expected_inputs(InputSource(pattern=f"{tmp_path}/few/*")) == 3
    assert preflight.expected_inputs(InputSource(pattern=f"{tmp_path}/many/*")) is None
    assert preflight.expected_inputs(InputSource(manifest=f"{tmp_path}/few.csv")) == 3
    assert preflight.expected_inputs(InputSource(manifest=f"{tmp_path}/many.csv")) is None
