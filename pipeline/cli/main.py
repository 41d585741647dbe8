"""The `embedbeam` command: Beam jobs (`train`, `embed`, `tune-dim`) and queries of a table.

For the jobs, our flags are parsed here for help and validation; everything
else on the command line must be a Beam pipeline flag (--runner,
--direct_num_workers, ...) and passes through to the runner.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from apache_beam.options.pipeline_options import (  # noqa: E402
    PipelineOptions,
    _BeamArgumentParser,
)
from embedbeam.pipeline.jobs.options import (  # noqa: E402
    EmbedOptions,
    JobOptions,
    TrainOptions,
    TuneDimOptions,
    UserError,
    positive_int,
)
from embedbeam.pipeline.queries.neighbours import INDEX_CHOICES, INDEX_MIN_ROWS, METRICS  # noqa: E402

_JOBS = {
    "train": (TrainOptions,),
    "embed": (EmbedOptions,),
    "tune-dim": (TrainOptions, TuneDimOptions),
}
_BEAM_FLAGS_NOTE = (
    "Beam pipeline flags (--runner, --direct_running_mode, --direct_num_workers, "
    "--temp_location, ...) go on the same command line and pass through."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedbeam",
        description="Sparse features -> embeddings -> Parquet, as Apache Beam batch jobs.",
        epilog=_BEAM_FLAGS_NOTE,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, options_classes in _JOBS.items():
        doc = options_classes[-1].__doc__
        command = commands.add_parser(
            name, help=doc.splitlines()[0], description=doc, epilog=_BEAM_FLAGS_NOTE
        )
        for options_class in (JobOptions, *options_classes):
            options_class._add_argparse_args(command)
    for name, query in _QUERIES.items():
        query.add_arguments(
            commands.add_parser(
                name, help=query.description.split(": ")[0], description=query.description
            )
        )
    return parser


def _add_table_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--embeddings",
        required=True,
        help="Output directory of `embedbeam embed` (holds _SUCCESS).",
    )


def _add_similar_args(parser: argparse.ArgumentParser) -> None:
    _add_table_arg(parser)
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


def _run_similar(args: argparse.Namespace) -> str:
    from embedbeam.pipeline.queries.similar import format_neighbours, similar

    return format_neighbours(
        similar(args.embeddings, args.query, args.k, args.modality, args.metric, args.index)
    )


def _add_projector_args(parser: argparse.ArgumentParser) -> None:
    _add_table_arg(parser)
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


def _run_projector(args: argparse.Namespace) -> str:
    from embedbeam.pipeline.queries.projector import write_projector

    written = write_projector(args.embeddings, args.logdir, args.modality, args.max_rows)
    return (
        f"projector files for {', '.join(written)} written to {args.logdir}; "
        f"view them with: tensorboard --logdir {args.logdir}"
    )


def _add_report_args(parser: argparse.ArgumentParser) -> None:
    _add_table_arg(parser)
    parser.add_argument(
        "--output", required=True, help="The HTML file to write (self-contained; open it anywhere)."
    )


def _run_report(args: argparse.Namespace) -> str:
    from embedbeam.pipeline.queries.report import write_report

    write_report(args.embeddings, args.output)
    return f"report written to {args.output}"


@dataclasses.dataclass(frozen=True)
class _Query:
    """A command that reads a committed table (no Beam job): its flags and what it does."""

    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], str]


_QUERIES = {
    "similar": _Query(
        "Nearest neighbours of an item in a committed embeddings table: the query is an id or "
        "uri in the table, or a raw file, which is embedded with the table's model.",
        _add_similar_args,
        _run_similar,
    ),
    "projector": _Query(
        "TensorBoard projector files of a committed table: vectors, metadata (label, "
        "cluster_id, id, uri) and, for images, a sprite sheet, one embedding per modality.",
        _add_projector_args,
        _run_projector,
    ),
    "report": _Query(
        "One HTML page about a committed table: counts per modality and cluster, dead-letter "
        "reasons, a 3-D scatter coloured by label, 5-NN accuracy, purity, image neighbours.",
        _add_report_args,
        _run_report,
    ),
}


def _unknown_flags(args: list[str]) -> list[str]:
    """Flags that are neither ours nor Beam's: most likely typos."""
    _register_optional_runner_options()
    beam_parser = _BeamArgumentParser(allow_abbrev=False)
    for options_class in PipelineOptions.__subclasses__():
        options_class._add_argparse_args(beam_parser)
    _, unknown = beam_parser.parse_known_args(args)
    return [arg for arg in unknown if arg.startswith("-")]


def _register_optional_runner_options() -> None:
    """Beam defines some runners' flags (DaskRunner's --dask_client_address, ...) in the
    runner's own module, which registers them only when imported; import those that are
    installed so their flags count as Beam's."""
    with contextlib.suppress(ImportError):
        import apache_beam.runners.dask.dask_runner  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    parsed, beam_args = parser.parse_known_args(argv)
    if parsed.command in _QUERIES:
        return _run_query(parsed.command, parser.parse_args(argv))
    unknown = _unknown_flags(beam_args)
    if unknown:
        parser.error(f"unknown flags: {' '.join(unknown)} (see embedbeam {parsed.command} --help)")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("embedbeam").setLevel(logging.INFO)

    options = PipelineOptions(argv[1:])
    output = options.view_as(JobOptions).output
    try:
        if parsed.command == "train":
            from embedbeam.pipeline.jobs.train import train

            info = train(options)
            print(f"model written to {output} (version {info.model_version})")
            for key, value in info.metrics.items():
                print(f"  {key:<26} {value}")
        elif parsed.command == "tune-dim":
            from embedbeam.pipeline.jobs.tune_dim import format_results, tune_dim

            results, best = tune_dim(options)
            print(format_results(results, best))
            print(f"picked d={best.dim}; table and plot written to {output}")
        else:
            from embedbeam.pipeline.jobs.embed import embed
            from embedbeam.pipeline.queries.summary import format_summary, summarize

            embed(options)
            print(f"embeddings written to {os.path.join(output, 'embeddings')}")
            print(format_summary(summarize(output)))
    except UserError as error:
        print(f"embedbeam {parsed.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


def _run_query(command: str, args: argparse.Namespace) -> int:
    try:
        print(_QUERIES[command].run(args))
    except UserError as error:
        print(f"embedbeam {command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
