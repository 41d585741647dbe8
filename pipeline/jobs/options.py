"""Command-line options of the jobs, as typed PipelineOptions subclasses.

Beam's own flags (--runner, --direct_num_workers, --temp_location, ...) go on
the same command line and pass through untouched.
"""

from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions
from embedbeam.transforms.recluster import DEFAULT_SAMPLE_SIZE
from embedbeam.transforms.sparse import audio
from embedbeam.transforms.sparse.image import DEFAULT_GRID, DEFAULT_THRESHOLD
from embedbeam.transforms.sparse.modalities import SUPPORTED
from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES
from embedbeam.transforms.table.layout import DEFAULT_ROWS_PER_SHARD


class UserError(ValueError):
    """A mistake the user can fix; the CLI prints it as one line, no traceback."""


def _embedding_dim(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        dim = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto' or a positive integer, not {value!r}"
        ) from None
    if dim < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {dim}")
    return dim


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {number}")
    return number


class JobOptions(PipelineOptions):
    """Flags every job has: where inputs come from, where output goes.

    The job-specific classes below hold only their own flags: Beam parses all
    PipelineOptions subclasses with one argparse parser, where a flag defined
    twice would conflict. Read shared flags through `view_as(JobOptions)`.
    """

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        _add_input_args(parser)
        parser.add_argument(
            "--output",
            help="Where to write: the model directory (train) or the output directory (embed).",
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="Replace an existing model directory or committed output instead of refusing.",
        )


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    sources = parser.add_mutually_exclusive_group()
    sources.add_argument(
        "--input",
        help="File glob of inputs, e.g. 'digits/train/*/*.png' (** recurses). The modality "
        "comes from the extension; the label from the parent folder (ImageFolder layout).",
    )
    sources.add_argument(
        "--manifest",
        help="CSV, JSONL or Parquet manifest with a `uri` column and optional `id`, `label`, "
        "`modality`; relative uris are relative to the manifest. Ids must be unique: the first "
        "row of an id wins, each later row with it is a dead letter `duplicate_id`.",
    )
    parser.add_argument(
        "--label-from",
        choices=("folder", "none"),
        default="folder",
        help="With --input: take each file's label from its parent folder name, or have none.",
    )
    parser.add_argument(
        "--text-field",
        default="text",
        help="With --input: the field of each .jsonl line that holds its text document.",
    )
    parser.add_argument(
        "--max-input-bytes",
        type=positive_int,
        default=DEFAULT_MAX_BYTES,
        help="Inputs larger than this many bytes become dead letters (file_too_large).",
    )


class TrainOptions(PipelineOptions):
    """Featurize a labelled set, analyze it with TFT, fit and export."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--modality", choices=SUPPORTED, default="image", help="Kind of input to train on."
        )
        parser.add_argument(
            "--embedding-dim",
            type=_embedding_dim,
            default=None,
            help="Embedding width d: an integer, or 'auto' (default) for round(4th root of "
            "the number of possible feature ids), at least 2.",
        )
        parser.add_argument(
            "--clusters",
            type=positive_int,
            default=None,
            help="k of the k-means centroids fitted on the training embeddings "
            "(default: the number of labels).",
        )
        parser.add_argument(
            "--grid",
            type=positive_int,
            default=DEFAULT_GRID,
            help="Images are fitted onto a grid x grid raster; each cell is one feature id.",
        )
        parser.add_argument(
            "--threshold",
            type=float,
            default=DEFAULT_THRESHOLD,
            help="Image cells brighter than this (0..1, after inverting light backgrounds) are active.",
        )
        parser.add_argument(
            "--mels",
            type=positive_int,
            default=audio.DEFAULT_MELS,
            help="Audio: mel bands of the spectrogram grid.",
        )
        parser.add_argument(
            "--frames",
            type=positive_int,
            default=audio.DEFAULT_FRAMES,
            help="Audio: equal time slices the (silence-trimmed) clip is pooled onto.",
        )
        parser.add_argument(
            "--threshold-db",
            type=float,
            default=audio.DEFAULT_THRESHOLD_DB,
            help="Audio: cells louder than this many dB relative to the clip's peak are active.",
        )
        parser.add_argument(
            "--max-seconds",
            type=float,
            default=audio.DEFAULT_MAX_SECONDS,
            help="Audio: only the first this many seconds are decoded.",
        )
        parser.add_argument(
            "--bigrams",
            action="store_true",
            help="Text: add neighbouring-token bigrams to the tokens.",
        )
        parser.add_argument(
            "--top-k",
            type=positive_int,
            default=20_000,
            help="Text: keep the top-k most frequent tokens in the vocabulary.",
        )
        parser.add_argument(
            "--oov-buckets",
            type=positive_int,
            default=100,
            help="Text: hash tokens outside the vocabulary into this many buckets.",
        )
        parser.add_argument("--epochs", type=positive_int, default=8, help="Training epochs.")
        parser.add_argument("--seed", type=int, default=0, help="Seed of every random choice.")


class EmbedOptions(PipelineOptions):
    """Embed inputs with a trained model and write Parquet."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--model",
            action="append",
            help="Model directory written by `embedbeam train`. Repeat as MODALITY=DIR "
            "(--model image=DIR --model audio=DIR) to embed a mixed input in one run; each "
            "input goes to the model of its modality, into its own modality= partition.",
        )
        parser.add_argument(
            "--max-batch-size",
            type=positive_int,
            default=1024,
            help="Inputs per batch read, featurized and assigned together (Beam handles a "
            "batch as one element; batches spread over the workers). A batch's files are in "
            "memory together: lower it for large audio files.",
        )
        parser.add_argument(
            "--max-batch-nnz",
            type=positive_int,
            default=None,
            help="Largest number of non-zero features in one encoder call: ragged rows are "
            "batched by their total non-zeros, not their count, so memory stays bounded "
            "(default: 262144 for models over at most 1024 feature ids, 16384 otherwise).",
        )
        parser.add_argument(
            "--featurize-processes",
            type=non_negative_int,
            default=None,
            help="Child processes that read and featurize batches beside the model, each on a "
            "core of its own; 0 reads one batch ahead on a thread instead. Default: one fewer "
            "than this machine's cores for 50,000 images or more, when the job runs in this "
            "process with one worker (the DirectRunner's default); else 0 (a runner with "
            "workers has one per core already; fewer inputs do not repay starting them).",
        )
        parser.add_argument(
            "--resume",
            action="store_true",
            help="Continue into an output that already holds rows (committed, or left by a run "
            "that was interrupted): inputs whose ids have a row there are skipped before they are "
            "read, the rest are embedded, and the commit keeps each id exactly once. Earlier dead "
            "letters are retried. Needs the same model(s).",
        )
        parser.add_argument(
            "--rows-per-shard",
            type=positive_int,
            default=DEFAULT_ROWS_PER_SHARD,
            help="Rows per staged Parquet file. Each is written whole as soon as it fills, so an "
            "interrupted run loses at most this many rows per worker for --resume.",
        )
        parser.add_argument(
            "--recluster",
            type=positive_int,
            default=None,
            metavar="K",
            help="Fit k-means with K clusters on this run's embeddings (per modality, on a "
            "seeded sample of at most --recluster-sample rows) and assign rows with it, "
            "instead of the model's centroids. K above the distinct embeddings is clamped.",
        )
        parser.add_argument(
            "--recluster-seed",
            type=int,
            default=0,
            help="With --recluster: seed of the sample and of k-means.",
        )
        parser.add_argument(
            "--recluster-sample",
            type=positive_int,
            default=DEFAULT_SAMPLE_SIZE,
            help="With --recluster: most embeddings per modality k-means is fitted on "
            "(bounds its memory; every row is still assigned).",
        )


def _dims(value: str) -> list[int]:
    """`START:STOP:STEP` (STOP included) or a comma list, e.g. `15:35:5` or `8,16,32`."""
    try:
        if ":" in value:
            start, stop, step = (int(part) for part in value.split(":"))
            dims = list(range(start, stop + 1, step))
        else:
            dims = [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be START:STOP:STEP or a comma list of widths, not {value!r}"
        ) from None
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} names no widths of at least 1")
    return dims


class TuneDimOptions(PipelineOptions):
    """Train at several embedding widths on the same rows; report and pick the best.

    Takes the train flags too (what to read, --modality, featurizer settings,
    --epochs, --seed); --output is the folder for tune_dim.csv, .md and .png.
    """

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--dims",
            type=_dims,
            default=None,
            help="Widths to try: START:STOP:STEP (STOP included) or a comma list. Default: five "
            "widths around the 4th-root rule's d, 20%% of d apart (26 -> 16:36:5).",
        )
