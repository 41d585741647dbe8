"""Every flag of the `embedbeam` command, declared once, without Beam.

`embedbeam --help` builds its parsers from these functions, and the jobs'
PipelineOptions classes (pipeline/jobs/options.py) call the same ones in
`_add_argparse_args`: one definition per flag, and help that starts without
importing Beam or TensorFlow. The featurizer flags of `train` are made from the
modality registry (transforms/sparse/modalities.py), where each modality
declares its settings.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

from embedbeam.pipeline.model.joint import (
    DEFAULT_MODALITIES,
    JOINT,
    JOINT_CONTRASTIVE_WEIGHT,
    parse_modalities,
)
from embedbeam.pipeline.queries.neighbours import INDEX_CHOICES, INDEX_MIN_ROWS, METRICS
from embedbeam.transforms.common.defaults import DEFAULT_SAMPLE_SIZE
from embedbeam.transforms.sparse.modalities import MODALITIES, SUPPORTED
from embedbeam.transforms.sparse.read_bytes import DEFAULT_MAX_BYTES
from embedbeam.transforms.sparse.settings import Setting
from embedbeam.transforms.table.layout import DEFAULT_ROWS_PER_SHARD

AddArguments = Callable[[argparse.ArgumentParser], None]

BEAM_FLAGS_NOTE = (
    "Beam pipeline flags (--runner, --direct_running_mode, --direct_num_workers, "
    "--temp_location, ...) go on the same command line and pass through."
)
VERBOSE_HELP = (
    "Also show what the libraries log and warn (TensorFlow, TFT, Beam, absl). By default "
    "a command prints only its own lines: progress, its result and one-line errors."
)


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


def joint_modalities(value: str) -> tuple[str, ...]:
    try:
        return parse_modalities(value, SUPPORTED)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def embedding_dim(value: str) -> int | None:
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


def dims(value: str) -> list[int]:
    """`START:STOP:STEP` (STOP included) or a comma list, e.g. `15:35:5` or `8,16,32`."""
    try:
        if ":" in value:
            start, stop, step = (int(part) for part in value.split(":"))
            widths = list(range(start, stop + 1, step))
        else:
            widths = [int(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be START:STOP:STEP or a comma list of widths, not {value!r}"
        ) from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} names no widths of at least 1")
    return widths


def add_verbose_arg(parser: argparse.ArgumentParser, default: object = False) -> None:
    """--verbose, on the top-level parser and (default SUPPRESS) on each command's, so
    it may go before or after the command."""
    parser.add_argument("--verbose", action="store_true", default=default, help=VERBOSE_HELP)


def add_job_args(parser: argparse.ArgumentParser) -> None:
    """Flags every job has: where inputs come from, where output goes."""
    add_input_args(parser)
    parser.add_argument(
        "--output",
        help="Where to write: the model directory (train) or the output directory (embed).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace an existing model directory or committed output instead of refusing.",
    )


def add_input_args(parser: argparse.ArgumentParser) -> None:
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


def add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--modality",
        choices=(*SUPPORTED, JOINT),
        default="image",
        help="Kind of input to train on; `joint`: one model over several modalities that "
        "share their labels (--joint-modalities), each featurized with its own settings, "
        "embedding them all into one space.",
    )
    parser.add_argument(
        "--joint-modalities",
        type=joint_modalities,
        default=DEFAULT_MODALITIES,
        help="With --modality joint: the modalities it reads (each input's modality comes from "
        f"its extension), comma-separated (default: {','.join(DEFAULT_MODALITIES)}); at most "
        "one with a vocabulary (text or ids).",
    )
    parser.add_argument(
        "--contrastive-weight",
        type=float,
        default=None,
        help="Add a supervised-contrastive term with this weight to the softmax loss: rows of "
        "the same label, of any modality, pulled together within a batch; 0 for softmax only "
        f"(default: {JOINT_CONTRASTIVE_WEIGHT} for --modality joint, which aligns modalities "
        "better in bench/joint_space.md; 0 otherwise).",
    )
    parser.add_argument(
        "--embedding-dim",
        type=embedding_dim,
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
    add_featurizer_args(parser)
    parser.add_argument("--epochs", type=positive_int, default=8, help="Training epochs.")
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=2,
        help="Stop training when the validation loss has not improved for this many epochs, "
        "keeping the best epoch's weights (as many as --epochs: never stop early).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of every random choice.")


def featurizer_settings() -> dict[str, tuple[Setting, list[str]]]:
    """Each setting the registry's modalities declare, with the modalities that take it,
    in registry order; a setting several modalities take (top_k) is listed once."""
    settings: dict[str, tuple[Setting, list[str]]] = {}
    for modality, spec in MODALITIES.items():
        for setting in spec.flags:
            known, takers = settings.setdefault(setting.name, (setting, []))
            if known != setting:
                raise ValueError(f"modalities declare the setting {setting.name!r} differently")
            takers.append(modality)
    return settings


def add_featurizer_args(parser: argparse.ArgumentParser) -> None:
    """One flag per featurizer setting, its help led by the modalities that take it."""
    for setting, takers in featurizer_settings().values():
        help_text = f"{', '.join(takers).capitalize()}: {setting.help}".replace("%", "%%")
        if setting.type is bool:
            parser.add_argument(
                setting.flag, dest=setting.name, action="store_true", help=help_text
            )
            continue
        parse = {int: positive_int, float: float, str: checked(setting.parse)}[setting.type]
        parser.add_argument(
            setting.flag, dest=setting.name, type=parse, default=setting.default, help=help_text
        )


def checked(parse: Callable[[str], object]) -> Callable[[str], str]:
    """A flag's type that checks a str setting with `parse` and keeps it as written."""

    def check(value: str) -> str:
        try:
            parse(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    return check


def add_embed_args(parser: argparse.ArgumentParser) -> None:
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
        "than this machine's cores for 50,000 images or more, one per core for 2,000 audio "
        "clips or more, when the job runs in this process with one worker (the "
        "DirectRunner's default); else 0 (a runner with "
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


def add_tune_dim_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dims",
        type=dims,
        default=None,
        help="Widths to try: START:STOP:STEP (STOP included) or a comma list. Default: five "
        "widths around the 4th-root rule's d, 20%% of d apart (26 -> 16:36:5).",
    )


@dataclasses.dataclass(frozen=True)
class Job:
    """A Beam job's command: what it does (--help; the first line in the command list)
    and its flags, in order."""

    description: str
    add_arguments: tuple[AddArguments, ...]


JOBS = {
    "train": Job(
        "Featurize a labelled set, analyze it with TFT, fit and export.",
        (add_job_args, add_train_args),
    ),
    "embed": Job(
        "Embed inputs with a trained model and write Parquet.", (add_job_args, add_embed_args)
    ),
    "tune-dim": Job(
        "Train at several embedding widths on the same rows; report and pick the best.\n\n"
        "Takes the train flags too (what to read, --modality, featurizer settings, "
        "--epochs, --seed); --output is the folder for tune_dim.csv, .md and .png.",
        (add_job_args, add_train_args, add_tune_dim_args),
    ),
}


def add_table_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--embeddings",
        required=True,
        help="Output directory of `embedbeam embed` (holds _SUCCESS).",
    )


def add_similar_args(parser: argparse.ArgumentParser) -> None:
    add_table_arg(parser)
    parser.add_argument(
        "--query", required=True, help="An id or uri in the table, or the path of a raw input file."
    )
    parser.add_argument("-k", type=positive_int, default=10, help="How many neighbours to list.")
    parser.add_argument("--modality", help="Which modality partition to search (if several).")
    parser.add_argument(
        "--metric",
        choices=METRICS,
        default="euclidean",
        help="Distance between embeddings (the encoder is trained for Euclidean).",
    )
    parser.add_argument(
        "--index",
        choices=INDEX_CHOICES,
        default="auto",
        help="Search through an HNSW index (faiss), built once and kept in the table's _index/: "
        f"auto = for tables of at least {INDEX_MIN_ROWS:,} rows; never = exact numpy search.",
    )


def add_projector_args(parser: argparse.ArgumentParser) -> None:
    add_table_arg(parser)
    parser.add_argument(
        "--logdir", required=True, help="Where to write the files (then: tensorboard --logdir DIR)."
    )
    parser.add_argument("--modality", help="Only this modality (default: every one).")
    parser.add_argument(
        "--max-rows",
        type=positive_int,
        default=10_000,
        help="Rows per modality (the smallest ids; the projector is a browser view).",
    )


def add_report_args(parser: argparse.ArgumentParser) -> None:
    add_table_arg(parser)
    parser.add_argument(
        "--output", required=True, help="The HTML file to write (self-contained; open it anywhere)."
    )
