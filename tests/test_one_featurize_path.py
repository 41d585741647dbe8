"""`train` and `embed` read and featurize through one stage, ReadAndFeaturize, so a model
is trained on exactly the features it later embeds (no training/serving skew)."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pipeline import PipelineVisitor

from embedbeam.pipeline.jobs.embed import build_embed_pipeline
from embedbeam.pipeline.jobs.train import build_train_pipeline
from embedbeam.pipeline.model.model_dir import read_model_info
from embedbeam.transforms.list_inputs import InputSource, list_refs
from embedbeam.transforms.read_and_featurize import ReadAndFeaturize
from embedbeam.transforms.sparse.vocabulary import VocabularyTransform


def _featurize_stages(pipeline: beam.Pipeline) -> list[ReadAndFeaturize]:
    """The ReadAndFeaturize stages of a built (never run) graph."""
    found = []

    class FindStages(PipelineVisitor):
        def enter_composite_transform(self, node) -> None:
            if isinstance(node.transform, ReadAndFeaturize):
                found.append(node.transform)

    pipeline.visit(FindStages())
    return found


def test_a_text_model_embeds_with_the_featurizer_it_was_trained_with(
    text_model, wordnet_folders, tmp_path
):
    documents = f"{wordnet_folders}/test/*/*.txt"
    train_options = PipelineOptions(["--modality", "text", "--input", documents])
    embed_options = PipelineOptions(
        ["--model", str(text_model), "--input", documents, "--output", str(tmp_path / "out")]
    )
    source = InputSource(pattern=documents)
    train_graph = build_train_pipeline(
        train_options, source, str(tmp_path / "m"), str(tmp_path / "w"), beam.Pipeline()
    )
    embed_graph = build_embed_pipeline(embed_options, beam.Pipeline())

    [trained] = _featurize_stages(train_graph)
    [embedded] = _featurize_stages(embed_graph)

    model_settings = {"text": read_model_info(str(text_model)).featurizer}
    assert trained.spec.settings_by_modality == embedded.spec.settings_by_modality
    assert embedded.spec.settings_by_modality == model_settings
    # Training yields tokens, for TFT to learn the vocabulary; embedding applies that vocabulary.
    assert (trained.spec.vocabulary_dirs, embedded.spec.vocabulary_dirs) == (
        {},
        {"text": str(text_model)},
    )
    refs = list(list_refs(source))[:20]
    tokens = trained.spec.build()(refs).featurized[0].rows
    ids = embedded.spec.build()(refs).featurized[0].rows
    through_the_vocabulary = VocabularyTransform(str(text_model))(tokens)
    assert np.array_equal(through_the_vocabulary.row_splits, ids.row_splits)
    assert np.array_equal(through_the_vocabulary.ids, ids.ids)
    assert through_the_vocabulary.weights.tobytes() == ids.weights.tobytes()
