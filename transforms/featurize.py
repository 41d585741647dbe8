"""Featurize: raw bytes -> SparseFeatures, by the featurizer of the input's modality."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.dead_letters import tagged_dead_letter
from transforms.modalities import Featurizer, make_featurizer
from transforms.records import DEAD_LETTER_TAG, FeaturizedInput, RawInput
from transforms.sparse import InvalidInput

STAGE = "featurize"


class Featurize(beam.PTransform):
    """PCollection[RawInput] -> (PCollection[FeaturizedInput], PCollection[DeadLetter]).

    `settings_by_modality` holds each modality's featurizer settings as the
    model recorded them (grid, threshold, ...), so embedding applies exactly the
    training-time featurization. A vocabulary modality (text) yields tokens,
    unless `vocabulary_dirs` names its model: then the model's TFT vocabulary
    turns them into sparse features.
    """

    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._settings_by_modality = {m: dict(s) for m, s in settings_by_modality.items()}
        self._vocabulary_dirs = dict(vocabulary_dirs or {})

    def expand(self, raw_inputs: beam.PCollection[RawInput]):
        results = raw_inputs | "ExtractSparseFeatures" >> beam.ParDo(
            _FeaturizeFn(self._settings_by_modality, self._vocabulary_dirs)
        ).with_outputs(DEAD_LETTER_TAG, main="featurized")
        return results.featurized, results[DEAD_LETTER_TAG]


class _FeaturizeFn(beam.DoFn):
    def __init__(
        self,
        settings_by_modality: Mapping[str, Mapping[str, Any]],
        vocabulary_dirs: Mapping[str, str],
    ) -> None:
        self._settings_by_modality = settings_by_modality
        self._vocabulary_dirs = vocabulary_dirs
        self._featurized = Metrics.counter("embedbeam", "inputs_featurized")
        self._nnz = Metrics.distribution("embedbeam", "nnz")
        self._featurizers: dict[str, Featurizer] = {}

    def setup(self) -> None:
        self._featurizers = {
            modality: make_featurizer(modality, settings, self._vocabulary_dirs.get(modality))
            for modality, settings in self._settings_by_modality.items()
        }

    def process(self, raw: RawInput) -> Iterator[FeaturizedInput | beam.pvalue.TaggedOutput]:
        featurizer = self._featurizers.get(raw.ref.modality)
        try:
            if featurizer is None:
                raise InvalidInput(
                    "no_model_for_modality",
                    f"no model was given for modality {raw.ref.modality!r}",
                )
            features = featurizer(raw.data)
        except Exception as error:  # noqa: BLE001 - every failure becomes a dead letter
            yield tagged_dead_letter(STAGE, raw.ref.uri, error)
            return
        self._featurized.inc()
        self._nnz.update(features.nnz)
        yield FeaturizedInput(ref=raw.ref, features=features)
