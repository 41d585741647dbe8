"""WriteDeadLetters: DeadLetter records -> whole Parquet shards in a directory."""

from __future__ import annotations

import posixpath

import apache_beam as beam
import pyarrow as pa

from embedbeam.transforms.common.records import DeadLetter
from embedbeam.transforms.table.layout import DEAD_LETTER_SCHEMA, DEFAULT_ROWS_PER_SHARD
from embedbeam.transforms.table.shards import complete_shards, write_shard_batches
from embedbeam.transforms.write_shards import WriteParquetShards

_DEAD_LETTERS_PER_BATCH = 1024


class WriteDeadLetters(beam.PTransform[beam.PCollection[DeadLetter], beam.PCollection[str]]):
    """PCollection[DeadLetter] -> PCollection[str]: the names of the complete shards written.

    Written like embeddings (WriteParquetShards), not by Beam's WriteToParquet,
    whose finalizing steps add stages of their own to every job, a fixed cost
    that small jobs feel most (measured in bench/README.md, 'Why the code is
    this way'). No dead letters, no shard:
    whoever needs the table to exist anyway adds `write_empty_dead_letters`.
    """

    def __init__(self, directory: str, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD) -> None:
        super().__init__()
        self._directory = directory
        self._rows_per_shard = rows_per_shard

    def expand(self, dead_letters: beam.PCollection[DeadLetter]) -> beam.PCollection[str]:
        return (
            dead_letters
            # Many dead letters to a record batch: one record batch each costs far more.
            | "BatchDeadLetters"
            >> beam.BatchElements(
                min_batch_size=_DEAD_LETTERS_PER_BATCH, max_batch_size=_DEAD_LETTERS_PER_BATCH
            )
            | "DeadLettersToRecordBatch" >> beam.Map(_record_batch)
            | "WriteDeadLetterShards"
            >> WriteParquetShards(self._directory, DEAD_LETTER_SCHEMA, self._rows_per_shard)
        )


def write_empty_dead_letters(directory: str) -> str:
    """An empty dead-letter shard in `directory`, so readers find the table with no rows."""
    return write_shard_batches(directory, DEAD_LETTER_SCHEMA, [])


def dead_letter_shards(directory: str) -> list[str]:
    """The complete dead-letter shards in `directory` (none if it does not exist)."""
    return complete_shards(posixpath.join(directory, "*"))


def _record_batch(dead_letters: list[DeadLetter]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(
        [dead_letter.to_record() for dead_letter in dead_letters], schema=DEAD_LETTER_SCHEMA
    )
