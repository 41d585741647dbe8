"""Splitting batches (FeaturizedBatch, EmbeddingRows: anything with a `modality`) by modality."""

from __future__ import annotations

from collections.abc import Sequence

import apache_beam as beam


def split_by_modality(
    batches: beam.PCollection, modalities: Sequence[str]
) -> list[beam.PCollection]:
    """One PCollection per modality of `modalities`, in that order.

    A job of one modality needs no Partition: a step fewer for every batch,
    and a PCollection fewer whose elements Beam samples by pickling them to
    estimate their size.
    """
    if len(modalities) == 1:
        return [batches]
    index_of = {modality: index for index, modality in enumerate(modalities)}
    return list(
        batches
        | "PartitionByModality"
        >> beam.Partition(lambda batch, _: index_of[batch.modality], len(modalities))
    )
