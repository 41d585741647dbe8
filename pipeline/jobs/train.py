"""`embedbeam train`: featurize a labelled set on Beam, analyze it with TFT, fit, export.

    ListInputBatches -> ReadAndFeaturize (the embed job's stage) -> ToTrainingExamples
        -> AnalyzeAndTransformDataset (TFT)
        -> transformed rows (Parquet, work dir) + transform_fn (model dir)
    then, on the launching machine: fit the encoder (pipeline/model/training.py),
    k-means on the training embeddings, export the model directory
    (pipeline/model/model_dir.py).

TFT learns the label vocabulary here (the softmax index of each label travels
in the model as `transform_fn/` and the labels list of model.json), and for a
vocabulary modality (text) also the token vocabulary (top-k, OOV buckets) and
tf-idf weights, which the embed job re-applies from `transform_fn/`.

A joint model (`--modality joint`, pipeline/model/joint.py) reads every one of
its modalities from the same inputs, each featurized with its own settings;
only its vocabulary modality goes through TFT (its tokens, not the others'
rows, make the tf-idf statistics), and its labels are the sorted labels of all
rows. The launcher moves each modality's ids to its place in the joint id
space, fits on the modalities oversampled to equal counts, and fits the
centroids with every modality weighing the same.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import errno
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions
from sklearn.cluster import KMeans
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from embedbeam.pipeline.errors import RunFailure, UserError
from embedbeam.pipeline.jobs.options import JobOptions, TrainOptions
from embedbeam.pipeline.jobs.preflight import (
    check_output_dir,
    claimed_output,
    expected_inputs,
    input_source,
    new_run_id,
    progress_spec,
    read_and_featurize,
    spread,
)
from embedbeam.pipeline.model import encoder as encoder_lib
from embedbeam.pipeline.model import model_dir as model_dir_lib
from embedbeam.pipeline.model.joint import (
    JOINT,
    JOINT_CONTRASTIVE_WEIGHT,
    Part,
    group_weights,
    lay_out,
)
from embedbeam.pipeline.model.quality import cluster_purity
from embedbeam.pipeline.model.training import (
    TrainingData,
    auto_embedding_dim,
    fit_at_width,
    order_by_content,
    rows_of,
    validation_metrics,
)
from embedbeam.transforms.common.by_modality import split_by_modality
from embedbeam.transforms.common.dead_letters import tagged_dead_letter
from embedbeam.transforms.common.records import DEAD_LETTER_TAG, FeaturizedBatch
from embedbeam.transforms.list_inputs import InputSource, ListInputBatches
from embedbeam.transforms.sparse import InvalidInput, TokenRows
from embedbeam.transforms.sparse.modalities import MODALITIES, vocabulary_size
from embedbeam.transforms.sparse.vocabulary import TOKENS
from embedbeam.transforms.table import claim
from embedbeam.transforms.table.centroids import write_centroids
from embedbeam.transforms.table.files import list_files, move_files, read_parquet
from embedbeam.transforms.write_dead_letters import (
    WriteDeadLetters,
    dead_letter_shards,
    write_empty_dead_letters,
)

_LOG = logging.getLogger(__name__)

LABEL_VOCABULARY = "labels"
TOKEN_VOCABULARY = "tokens"
_KEY_SPEC = {
    "id": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.string),
}
RAW_FEATURE_SPEC = {  # modalities whose featurizer yields ids and weights
    **_KEY_SPEC,
    "ids": tf.io.VarLenFeature(tf.int64),
    "weights": tf.io.VarLenFeature(tf.float32),
}
RAW_TOKEN_SPEC = {**_KEY_SPEC, TOKENS: tf.io.VarLenFeature(tf.string)}  # vocabulary modalities
TRANSFORMED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("label_id", pa.int64()),
        ("ids", pa.list_(pa.int64())),
        ("weights", pa.list_(pa.float32())),
    ]
)
# A joint model's rows, before the launcher moves their ids into the joint space.
JOINT_TRANSFORMED_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("label", pa.string()),
        ("modality", pa.string()),
        ("ids", pa.list_(pa.int64())),
        ("weights", pa.list_(pa.float32())),
    ]
)
TRANSFORMED_PREFIX = "transformed/part"
TRAIN_STAGE = "train"  # the stage of an unlabelled input's dead letter
TRAINING_BATCH_SIZE = 1024  # inputs listed, read and featurized together
TRAINING_DEAD_LETTERS = "training_dead_letter"
MODEL_CLAIM_SUFFIX = ".claim"  # `<output>.claim`: the training that writes <output> now


def preprocessing_fn(inputs: dict[str, Any]) -> dict[str, Any]:
    """Label -> its index in a TFT vocabulary; sparse ids and weights pass through."""
    return {
        "id": inputs["id"],
        "ids": inputs["ids"],
        "weights": inputs["weights"],
        "label_id": _label_id(inputs["label"]),
    }


def token_preprocessing_fn(
    top_k: int, oov_buckets: int, label_ids: bool = True
) -> Callable[[dict], dict]:
    """Tokens -> ids in a top-k TFT vocabulary (plus OOV buckets), weighted by tf-idf;
    the label as its index in a TFT vocabulary, or (`label_ids` False: a joint model,
    whose labels span its modalities) as it is."""

    def preprocess(inputs: dict[str, Any]) -> dict[str, Any]:
        token_ids = tft.compute_and_apply_vocabulary(
            inputs[TOKENS], top_k=top_k, num_oov_buckets=oov_buckets,
            vocab_filename=TOKEN_VOCABULARY,
        )  # fmt: skip
        ids, weights = tft.tfidf(token_ids, top_k + oov_buckets)
        label = (
            {"label_id": _label_id(inputs["label"])} if label_ids else {"label": inputs["label"]}
        )
        return {"id": inputs["id"], "ids": ids, "weights": weights, **label}

    return preprocess


def _label_id(label: tf.Tensor) -> tf.Tensor:
    return tft.compute_and_apply_vocabulary(label, vocab_filename=LABEL_VOCABULARY)


def trained_modalities(options: TrainOptions) -> tuple[str, ...]:
    """The modality trained on, or a joint model's modalities (UserError if it names
    two vocabulary modalities: a model directory holds one TFT vocabulary)."""
    if options.modality != JOINT:
        return (options.modality,)
    modalities = options.joint_modalities
    if sum(MODALITIES[modality].uses_vocabulary for modality in modalities) > 1:
        raise UserError(
            f"--joint-modalities {','.join(modalities)}: a joint model takes at most one "
            "modality with a vocabulary (text or ids)"
        )
    return modalities


def featurizer_settings(options: TrainOptions, modality: str | None = None) -> dict[str, Any]:
    """The featurizer flags of the trained modality (or of one modality of a joint model),
    as model.json records them."""
    spec = MODALITIES[modality or options.modality]
    return {name: getattr(options, name) for name in spec.recorded_settings}


def contrastive_weight(options: TrainOptions) -> float:
    """--contrastive-weight, else the joint model's default (joint.py), else none."""
    if options.contrastive_weight is not None:
        return options.contrastive_weight
    return JOINT_CONTRASTIVE_WEIGHT if options.modality == JOINT else 0.0


def settings_by_modality(options: TrainOptions) -> dict[str, dict[str, Any]]:
    return {
        modality: featurizer_settings(options, modality) for modality in trained_modalities(options)
    }


def build_train_pipeline(
    options: PipelineOptions,
    source: InputSource,
    model_dir: str,
    work_dir: str,
    pipeline: beam.Pipeline | None = None,
    run_id: str | None = None,
) -> beam.Pipeline:
    """The Beam half of training: everything up to the transformed training rows.

    Inputs are listed and featurized by the embed job's stages
    (preflight.read_and_featurize); the batches are then unbatched into TFT's
    rows. Writes the TFT transform graph and the training dead letters into
    `model_dir`, the transformed rows into `work_dir`.
    """
    pipeline = pipeline or beam.Pipeline(options=options)
    options = options.view_as(TrainOptions)
    expected = expected_inputs(source)
    with tft_beam.Context(temp_dir=posixpath.join(work_dir, "tft_tmp")):
        listed = pipeline | "ListInputs" >> ListInputBatches(source, TRAINING_BATCH_SIZE)
        progress = progress_spec("train", expected, options, run_id or new_run_id())
        featurized, featurize_failures = spread(listed, options) | (
            "ReadAndFeaturize"
            >> read_and_featurize(options, settings_by_modality(options), expected, progress)
        )
        if options.modality == JOINT:
            transformed, unlabelled = _joint_rows(featurized, options, model_dir)
            schema = JOINT_TRANSFORMED_SCHEMA
        else:
            labelled = featurized | "ToTrainingExamples" >> beam.ParDo(
                _TrainingExamples()
            ).with_outputs(DEAD_LETTER_TAG, main="labelled")
            if MODALITIES[options.modality].uses_vocabulary:
                transformed = _analyze_tokens(labelled.labelled, options, model_dir, "Train")
            else:
                transformed = _analyze(labelled.labelled, RAW_FEATURE_SPEC, preprocessing_fn,
                                       model_dir, "Train")  # fmt: skip
            schema, unlabelled = TRANSFORMED_SCHEMA, [labelled[DEAD_LETTER_TAG]]
        _ = transformed | "WriteTransformedRows" >> beam.io.WriteToParquet(
            posixpath.join(work_dir, TRANSFORMED_PREFIX), schema, file_name_suffix=".parquet"
        )
        _ = (
            (featurize_failures, *unlabelled)
            | "FlattenDeadLetters" >> beam.Flatten()
            | "WriteDeadLetters"
            >> WriteDeadLetters(posixpath.join(model_dir, TRAINING_DEAD_LETTERS))
        )
    return pipeline


def _analyze(
    examples: beam.PCollection, spec: dict, preprocess: Callable, model_dir: str, name: str
) -> beam.PCollection:
    """TFT's analysis and transform of `examples`; writes its transform_fn into `model_dir`."""
    metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
    (transformed, _), transform_fn = (
        examples,
        metadata,
    ) | f"AnalyzeAndTransform[{name}]" >> tft_beam.AnalyzeAndTransformDataset(preprocess)
    _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(model_dir)
    return transformed


def _analyze_tokens(
    examples: beam.PCollection, options: TrainOptions, model_dir: str, name: str, label_ids=True
) -> beam.PCollection:
    preprocess = token_preprocessing_fn(options.top_k, options.oov_buckets, label_ids)
    return _analyze(examples, RAW_TOKEN_SPEC, preprocess, model_dir, name)


def _joint_rows(
    featurized: beam.PCollection[FeaturizedBatch], options: TrainOptions, model_dir: str
) -> tuple[beam.PCollection, list[beam.PCollection]]:
    """A joint model's training rows (JOINT_TRANSFORMED_SCHEMA), each modality's ids still
    its own, and the dead letters of unlabelled inputs. Only the vocabulary modality's
    tokens go through TFT, so its tf-idf counts its own documents only."""
    modalities = trained_modalities(options)
    rows, unlabelled = [], []
    for modality, batches in zip(
        modalities, split_by_modality(featurized, modalities), strict=True
    ):
        labelled = batches | f"ToTrainingExamples[{modality}]" >> beam.ParDo(
            _TrainingExamples()
        ).with_outputs(DEAD_LETTER_TAG, main="labelled")
        examples = labelled.labelled
        if MODALITIES[modality].uses_vocabulary:
            examples = _analyze_tokens(examples, options, model_dir, modality, label_ids=False)
        rows.append(examples | f"ToJointRows[{modality}]" >> beam.Map(_joint_row, modality))
        unlabelled.append(labelled[DEAD_LETTER_TAG])
    return rows | "FlattenJointRows" >> beam.Flatten(), unlabelled


def _as_text(value: Any) -> str:
    """A string TFT handed back as bytes (or as str), as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _joint_row(example: dict[str, Any], modality: str) -> dict[str, Any]:
    return {
        "id": _as_text(example["id"]),
        "label": _as_text(example["label"]),
        "modality": modality,
        "ids": np.asarray(example["ids"], np.int64),
        "weights": np.asarray(example["weights"], np.float32),
    }


class _TrainingExamples(beam.DoFn):
    """A featurized batch -> one TFT example per input (TFT analyzes rows, not batches).

    Training needs a label: an unlabelled input becomes a dead letter.
    """

    def process(self, batch: FeaturizedBatch) -> Iterator[dict | beam.pvalue.TaggedOutput]:
        rows = batch.rows
        for index, ref in enumerate(batch.refs):
            if ref.label is None:
                error = InvalidInput("missing_label", "training inputs need a label")
                yield tagged_dead_letter(TRAIN_STAGE, ref.uri, error)
                continue
            keys = {"id": ref.id.encode("utf-8"), "label": ref.label.encode("utf-8")}
            if isinstance(rows, TokenRows):
                yield {**keys, TOKENS: [token.encode("utf-8") for token in rows.row(index)]}
            else:
                start, end = rows.row_splits[index], rows.row_splits[index + 1]
                yield {**keys, "ids": rows.ids[start:end], "weights": rows.weights[start:end]}


def read_transformed(work_dir: str) -> pa.Table:
    """The transformed rows the Beam half wrote, as written."""
    shards = sorted(list_files(posixpath.dirname(posixpath.join(work_dir, TRANSFORMED_PREFIX))))
    return pa.concat_tables(read_parquet(path) for path in shards)


def train(options: PipelineOptions) -> model_dir_lib.ModelInfo:
    """Runs the whole training job and returns the written model's info.

    One training at a time writes a model directory: the run holds a claim
    beside it (`<output>.claim`, table/claim.py) from launch to end, so a
    second one fails fast. The model directory is assembled beside its
    destination (`<output>.partial-<run>`) and put in place only when complete
    (replace_directory), after checking that the claim is still this run's, so
    a failed or killed training leaves no half model and never a mixed one.
    """
    started = time.time()
    job = options.view_as(JobOptions)
    check_output_dir(job.output, model_dir_lib.MODEL_JSON, job.overwrite)
    output = job.output.rstrip("/")
    run_id = new_run_id()
    claim_file = output + MODEL_CLAIM_SUFFIX
    with claimed_output(claim_file, run_id, output) as held:
        check_output_dir(output, model_dir_lib.MODEL_JSON, job.overwrite)  # now under the claim
        with analyzed(options, f"{output}.partial", run_id) as (work_dir, model_dir):
            info = _fit_and_export(options.view_as(TrainOptions), work_dir, model_dir, started)
            holder = claim.holder(claim_file)
            if holder is None or holder.run_id != run_id:
                held = f"it is held by {holder.describe()}" if holder else "its claim is gone"
                raise RunFailure(
                    f"claim lost: training run {run_id} no longer holds {output} ({held}); "
                    "the model was not written"
                )
            if not job.overwrite and FileSystems.exists(
                posixpath.join(output, model_dir_lib.MODEL_JSON)
            ):
                raise RunFailure(
                    f"refusing to write the model: {output} got a model while this training "
                    "ran; pass --overwrite to replace it"
                )
            replace_directory(model_dir, output)
        # A training killed before this left its half-made model beside the output.
        left = f"{output}.partial-{held.took_over}"
        if held.took_over and FileSystems.exists(left):
            FileSystems.delete([left])
    return info


def replace_directory(new: str, target: str) -> None:
    """Puts the complete directory `new` at `target`, replacing what is there, so that a
    reader of `target` sees the old directory or the new one, never a mix or nothing.

    Locally: a rename if `target` does not exist; else the two are swapped in one
    step (Linux renameat2 with RENAME_EXCHANGE; the old one is left at `new`, for
    the caller to delete), or where the filesystem cannot swap, the old one is
    renamed aside, the new one into place (the old one back if that fails) and the
    old one deleted. Object stores have no directories to rename: the old files
    are moved aside, the new ones in, and the old ones deleted, so a reader in
    between can find a partial model (deploy/README.md, "One writer per output").
    """
    if "://" in target:
        _replace_by_moving_files(new, target)
        return
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        return
    aside = f"{new}.replaced"
    os.rename(target, aside)
    try:
        os.rename(new, target)
    except OSError:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# What renameat2 returns where the kernel, the C library or the filesystem cannot swap.
_CANNOT_EXCHANGE = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP}


def _exchange(first: str, second: str) -> bool:
    """Swaps two paths atomically (Linux renameat2 RENAME_EXCHANGE); False if not possible here."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    paths = os.fsencode(first), os.fsencode(second)
    if renameat2(_AT_FDCWD, paths[0], _AT_FDCWD, paths[1], _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in _CANNOT_EXCHANGE:
        return False
    raise OSError(error, os.strerror(error), second)


def _replace_by_moving_files(new: str, target: str) -> None:
    aside = f"{new}.replaced"
    old = list_files(target) if FileSystems.exists(target) else []
    if old:
        move_files(old, target, aside)
    try:
        move_files(list_files(new), new, target)
    except Exception:
        if old:
            move_files(list_files(aside), aside, target)
        raise
    if FileSystems.exists(aside):
        FileSystems.delete([aside])


@contextlib.contextmanager
def analyzed(
    options: PipelineOptions, model_dir_prefix: str, run_id: str | None = None
) -> Iterator[tuple[str, str]]:
    """Runs the Beam half of training; yields (work dir, model dir) and removes both after.

    The work dir (transformed rows) is under --temp_location if given, else a
    local temporary folder; the model dir (transform_fn, dead letters) is
    `model_dir_prefix` plus the run id (a new one if not given).
    """
    source = input_source(options.view_as(JobOptions))
    run_id = run_id or new_run_id()
    temp_location = options.view_as(GoogleCloudOptions).temp_location
    work_dir = (
        posixpath.join(temp_location, f"embedbeam-train-{run_id}")
        if temp_location
        else tempfile.mkdtemp(prefix="embedbeam-train-")
    )
    model_dir = f"{model_dir_prefix}-{run_id}"
    try:
        build_train_pipeline(
            options, source, model_dir, work_dir, run_id=run_id
        ).run().wait_until_finish()
        dead_letters = posixpath.join(model_dir, TRAINING_DEAD_LETTERS)
        if not dead_letter_shards(dead_letters):
            write_empty_dead_letters(dead_letters)
        yield work_dir, model_dir
    finally:
        FileSystems.delete([path for path in (work_dir, model_dir) if FileSystems.exists(path)])


def load_training_data(options: TrainOptions, work_dir: str, model_dir: str) -> TrainingData:
    """What the Beam half left in `work_dir` and `model_dir`, split by content hash."""
    table = read_transformed(work_dir)
    if table.num_rows == 0:
        reasons = _dead_letter_reasons(posixpath.join(model_dir, TRAINING_DEAD_LETTERS))
        raise UserError(f"no training input could be used (dead letters by reason: {reasons})")
    if options.modality == JOINT:
        return _joint_training_data(options, table, model_dir)
    table = order_by_content(table)
    transform_output = tft.TFTransformOutput(model_dir)
    labels = transform_output.vocabulary_by_name(LABEL_VOCABULARY)
    labels = [_as_text(label) for label in labels]
    if MODALITIES[options.modality].uses_vocabulary:
        # Ids are the learned vocabulary (at most top-k) followed by the OOV buckets.
        vocabulary = transform_output.vocabulary_by_name(TOKEN_VOCABULARY)
        num_ids = len(vocabulary) + options.oov_buckets
    else:
        num_ids = vocabulary_size(options.modality, featurizer_settings(options))
    return TrainingData.from_transformed(table, labels, num_ids)


def joint_parts(options: TrainOptions, model_dir: str) -> dict[str, Part]:
    """Each modality's place in a joint model's id space; the vocabulary modality's size
    is what TFT learned (the vocabulary, then the OOV buckets)."""
    sizes = {}
    for modality in trained_modalities(options):
        if MODALITIES[modality].uses_vocabulary:
            vocabulary = tft.TFTransformOutput(model_dir).vocabulary_by_name(TOKEN_VOCABULARY)
            sizes[modality] = len(vocabulary) + options.oov_buckets
        else:
            sizes[modality] = vocabulary_size(modality, featurizer_settings(options, modality))
    return lay_out(sizes)


def _joint_training_data(options: TrainOptions, table: pa.Table, model_dir: str) -> TrainingData:
    """A joint model's rows with their ids moved into the joint space, labels sorted."""
    modalities = trained_modalities(options)
    present = collections.Counter(table.column("modality").to_pylist())
    missing = [modality for modality in modalities if not present[modality]]
    if missing:
        raise UserError(
            f"the joint model's modality {missing[0]} has no training input: give some, or "
            f"leave it out of --joint-modalities ({', '.join(modalities)})"
        )
    parts = joint_parts(options, model_dir)
    labels = sorted(set(table.column("label").to_pylist()))
    rows = rows_of(table)
    offsets = np.array([parts[m].id_offset for m in table.column("modality").to_pylist()])
    joint = pa.table(
        {
            "label_id": pa.array(
                np.searchsorted(labels, table.column("label").to_pylist()), pa.int64()
            ),
            "ids": pa.ListArray.from_arrays(
                rows.row_splits.astype(np.int32), rows.ids + np.repeat(offsets, rows.lengths)
            ),
            "weights": pa.ListArray.from_arrays(rows.row_splits.astype(np.int32), rows.weights),
            "modality": table.column("modality"),
        }
    )
    num_ids = sum(part.vocabulary_size for part in parts.values())
    return TrainingData.from_transformed(order_by_content(joint), labels, num_ids, modalities)


def _fit_and_export(
    options: TrainOptions, work_dir: str, model_dir: str, started: float
) -> model_dir_lib.ModelInfo:
    """The launcher half of training: fit, cluster, measure, write the model files."""
    data = load_training_data(options, work_dir, model_dir)
    dim = options.embedding_dim or auto_embedding_dim(data.num_ids)
    _LOG.info(
        "embedding width d=%d (%s; %d possible feature ids)",
        dim,
        "given" if options.embedding_dim else "auto: round(ids ** 0.25)",
        data.num_ids,
    )
    config = encoder_lib.TrainingConfig(
        epochs=options.epochs,
        seed=options.seed,
        patience=options.patience,
        contrastive_weight=contrastive_weight(options),
    )
    encoder = fit_at_width(data, dim, config)

    embeddings = encoder_lib.embed_rows(encoder.embed, data.rows)
    fit_index = data.fit_index
    num_clusters = options.clusters or len(data.labels)
    if fit_index.size < num_clusters:
        raise UserError(f"{fit_index.size} training rows cannot make {num_clusters} clusters")
    # A joint model's centroids: every modality weighs the same, however many rows it has.
    weights = None if data.groups is None else group_weights(data.groups[fit_index])
    kmeans = KMeans(n_clusters=num_clusters, n_init=10, random_state=options.seed).fit(
        embeddings[fit_index], sample_weight=weights
    )
    predicted = encoder_lib.predict_labels(encoder, data.rows)
    metrics = {
        "train_accuracy": float(np.mean(predicted[fit_index] == data.label_ids[fit_index])),
        "cluster_purity_train": cluster_purity(kmeans.labels_, data.label_ids[fit_index]),
        **validation_metrics(data, predicted, embeddings),
    }
    metrics = {key: round(value, 4) for key, value in metrics.items()}
    metrics["wall_time_s"] = round(time.time() - started, 1)

    joint = options.modality == JOINT
    parts = joint_parts(options, model_dir) if joint else {}
    encoder_lib.save_encoder(encoder, model_dir, parts)
    write_centroids(
        posixpath.join(model_dir, model_dir_lib.CENTROIDS),
        kmeans.cluster_centers_,
        np.bincount(kmeans.labels_, minlength=num_clusters),
    )
    info = model_dir_lib.ModelInfo(
        modality=options.modality,
        embedding_dim=dim,
        vocabulary_size=data.num_ids,
        labels=data.labels,
        featurizer={} if joint else featurizer_settings(options),
        num_clusters=num_clusters,
        metrics=metrics,
        training={
            "max_epochs": config.epochs,
            "early_stopping_patience": config.patience,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "lookup_units": config.lookup_units,
            "hidden_units": config.hidden_units,
            "seed": config.seed,
            "embedding_layer": "bottleneck",
            "examples_fit": int(fit_index.size),
            "examples_validation": int(data.validation_index.size),
            "loss": "softmax cross-entropy"
            + (
                f" + {config.contrastive_weight} x supervised contrastive "
                f"(temperature {config.contrastive_temperature})"
                if config.contrastive_weight
                else ""
            ),
            **(_joint_training_record(data) if joint else {}),
        },
        model_version=model_dir_lib.content_hash(model_dir),
        parts={
            modality: {
                "featurizer": featurizer_settings(options, modality),
                "id_offset": part.id_offset,
                "vocabulary_size": part.vocabulary_size,
            }
            for modality, part in parts.items()
        },
    )
    model_dir_lib.write_model_info(model_dir, info)
    return info


def _joint_training_record(data: TrainingData) -> dict[str, Any]:
    """How a joint model's modalities were fitted: rows of each, oversampled to equal counts."""
    counts = np.bincount(data.groups[data.fit_index], minlength=len(data.modalities))
    return {
        "examples_fit_by_modality": dict(zip(data.modalities, counts.tolist(), strict=True)),
        "sampling": "each modality oversampled to the largest one's rows, every epoch",
    }


def _dead_letter_reasons(directory: str) -> dict[str, int]:
    reasons: collections.Counter = collections.Counter()
    for path in dead_letter_shards(directory):
        with FileSystems.open(path) as handle:
            reasons.update(
                pq.read_table(pa.BufferReader(handle.read())).column("error").to_pylist()
            )
    return dict(reasons)
