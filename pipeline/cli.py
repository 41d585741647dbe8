"""The `embedbeam` command: `train` and `embed` (Beam jobs), `similar` (a query).

For the jobs, our flags are parsed here for help and validation; everything
else on the command line must be a Beam pipeline flag (--runner,
--direct_num_workers, ...) and passes through to the runner.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from apache_beam.options.pipeline_options import (  # noqa: E402
    PipelineOptions,
    _BeamArgumentParser,
)

from pipeline.options import EmbedOptions, JobOptions, TrainOptions, UserError  # noqa: E402

_JOBS = {"train": TrainOptions, "embed": EmbedOptions}
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
    for name, options_class in _JOBS.items():
        command = commands.add_parser(
            name,
            help=options_class.__doc__.splitlines()[0],
            description=options_class.__doc__,
            epilog=_BEAM_FLAGS_NOTE,
        )
        JobOptions._add_argparse_args(command)
        options_class._add_argparse_args(command)
    _add_similar_args(
        commands.add_parser(
            "similar",
            help="Nearest neighbours of an item in a committed embeddings table.",
            description=similar_doc(),
        )
    )
    return parser


def similar_doc() -> str:
    return (
        "Nearest neighbours of one item in a committed embeddings table: the query is an "
        "id or uri in the table, or a raw file, which is embedded with the table's model."
    )


def _add_similar_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--embeddings",
        required=True,
        help="Output directory of `embedbeam embed` (holds _SUCCESS).",
    )
    parser.add_argument(
        "--query", required=True, help="An id or uri in the table, or the path of a raw input file."
    )
    parser.add_argument("-k", type=int, default=10, help="How many neighbours to list.")
    parser.add_argument("--modality", help="Which modality partition to search (if several).")
    parser.add_argument(
        "--metric",
        choices=("euclidean", "cosine"),
        default="euclidean",
        help="Distance between embeddings (the encoder is trained for Euclidean).",
    )


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
    if parsed.command == "similar":
        return _run_similar(parser.parse_args(argv))
    unknown = _unknown_flags(beam_args)
    if unknown:
        parser.error(f"unknown flags: {' '.join(unknown)} (see embedbeam {parsed.command} --help)")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for package in ("pipeline", "transforms"):
        logging.getLogger(package).setLevel(logging.INFO)

    options = PipelineOptions(argv[1:])
    output = options.view_as(JobOptions).output
    try:
        if parsed.command == "train":
            from pipeline.train import train

            info = train(options)
            print(f"model written to {output} (version {info.model_version})")
            for key, value in info.metrics.items():
                print(f"  {key:<26} {value}")
        else:
            from pipeline.embed import embed
            from pipeline.summary import format_summary, summarize

            embed(options)
            print(f"embeddings written to {os.path.join(output, 'embeddings')}")
            print(format_summary(summarize(output)))
    except UserError as error:
        print(f"embedbeam {parsed.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


def _run_similar(args: argparse.Namespace) -> int:
    from pipeline.similar import format_neighbours, similar

    try:
        neighbours = similar(args.embeddings, args.query, args.k, args.modality, args.metric)
    except UserError as error:
        print(f"embedbeam similar: error: {error}", file=sys.stderr)
        return 2
    print(format_neighbours(neighbours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
