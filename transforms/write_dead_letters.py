"""WriteDeadLetters: DeadLetter records -> Parquet files under a prefix."""

from __future__ import annotations

import apache_beam as beam

from transforms.records import DeadLetter
from transforms.schemas import DEAD_LETTER_SCHEMA


class WriteDeadLetters(beam.PTransform):
    """PCollection[DeadLetter] -> PCollection[str] of the written file names."""

    def __init__(self, file_path_prefix: str) -> None:
        super().__init__()
        self._file_path_prefix = file_path_prefix

    def expand(self, dead_letters: beam.PCollection[DeadLetter]) -> beam.PCollection[str]:
        return (
            dead_letters
            | "DeadLetterToRecord" >> beam.Map(DeadLetter.to_record)
            | "WriteDeadLetterParquet"
            >> beam.io.WriteToParquet(
                self._file_path_prefix, DEAD_LETTER_SCHEMA, file_name_suffix=".parquet"
            )
        )
