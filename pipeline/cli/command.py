"""The `embedbeam` command: Beam jobs (`train`, `embed`, `tune-dim`) and queries of a table.

For the jobs, our flags are parsed here for help and validation; everything
else on the command line must be a Beam pipeline flag (--runner,
--direct_num_workers, ...) and passes through to the runner. Beam is imported
only once a job is about to run, and TensorFlow only by the code that needs it,
so `--help` and the queries of a table start quickly (bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable

from embedbeam.pipeline.cli import console, failures, flags
from embedbeam.pipeline.errors import UserError
from embedbeam.pipeline.runners import with_runners_resolved


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embedbeam",
        description="Sparse features -> embeddings -> Parquet, as Apache Beam batch jobs.",
        epilog=flags.BEAM_FLAGS_NOTE,
    )
    flags.add_verbose_arg(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, job in flags.JOBS.items():
        command = commands.add_parser(
            name,
            help=job.description.splitlines()[0],
            description=job.description,
            epilog=flags.BEAM_FLAGS_NOTE,
        )
        for add_arguments in job.add_arguments:
            add_arguments(command)
        flags.add_verbose_arg(command, default=argparse.SUPPRESS)
    for name, query in _QUERIES.items():
        command = commands.add_parser(
            name, help=query.description.split(": ")[0], description=query.description
        )
        query.add_arguments(command)
        flags.add_verbose_arg(command, default=argparse.SUPPRESS)
    return parser


def _run_similar(args: argparse.Namespace) -> str:
    from embedbeam.pipeline.queries.similar import format_neighbours, similar

    return format_neighbours(
        similar(args.embeddings, args.query, args.k, args.modality, args.metric, args.index)
    )


def _run_projector(args: argparse.Namespace) -> str:
    from embedbeam.pipeline.queries.projector import write_projector

    written = write_projector(args.embeddings, args.logdir, args.modality, args.max_rows)
    return (
        f"projector files for {', '.join(written)} written to {args.logdir}; "
        f"view them with: tensorboard --logdir {args.logdir}"
    )


def _run_report(args: argparse.Namespace) -> str:
    from embedbeam.pipeline.queries.report import write_report

    write_report(args.embeddings, args.output)
    return f"report written to {args.output}"


@dataclasses.dataclass(frozen=True)
class _Query:
    """A command that reads a committed table (no Beam job): its flags and what it does."""

    description: str
    add_arguments: flags.AddArguments
    run: Callable[[argparse.Namespace], str]


_QUERIES = {
    "similar": _Query(
        "Nearest neighbours of an item in a committed embeddings table: the query is an id or "
        "uri in the table, or a raw file, which is embedded with the table's model.",
        flags.add_similar_args,
        _run_similar,
    ),
    "projector": _Query(
        "TensorBoard projector files of a committed table: vectors, metadata (label, "
        "cluster_id, id, uri) and, for images, a sprite sheet, one embedding per modality.",
        flags.add_projector_args,
        _run_projector,
    ),
    "report": _Query(
        "One HTML page about a committed table: counts per modality and cluster, dead-letter "
        "reasons, a 3-D scatter coloured by label, 5-NN accuracy, purity, image neighbours.",
        flags.add_report_args,
        _run_report,
    ),
}


def _unknown_flags(args: list[str]) -> list[str]:
    """Flags that are neither ours nor Beam's: most likely typos."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

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


def _pipeline_args(argv: list[str], command: str) -> list[str]:
    """The command line as Beam's PipelineOptions takes it: without the command's name
    and without --verbose (ours, and allowed before or after the name)."""
    args = [arg for arg in argv if arg != "--verbose"]
    args.remove(command)
    return with_runners_resolved(args)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    parsed, beam_args = parser.parse_known_args(argv)
    console.configure(parsed.verbose)
    if parsed.command in _QUERIES:
        return _run_query(parsed.command, parser.parse_args(argv))
    unknown = _unknown_flags(beam_args)
    if unknown:
        parser.error(f"unknown flags: {' '.join(unknown)} (see embedbeam {parsed.command} --help)")
    return _run_job(parsed.command, _pipeline_args(argv, parsed.command))


def _run_job(command: str, args: list[str]) -> int:
    from apache_beam.options.pipeline_options import PipelineOptions

    from embedbeam.pipeline.jobs.options import JobOptions

    options = PipelineOptions(args)
    output = options.view_as(JobOptions).output
    try:
        if command == "train":
            from embedbeam.pipeline.jobs.train import train

            info = train(options)
            print(f"model written to {output} (version {info.model_version})")
            for key, value in info.metrics.items():
                print(f"  {key:<26} {value}")
        elif command == "tune-dim":
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
        failures.print_error(command, str(error))
        return 2
    except Exception as error:  # noqa: BLE001 - one line if known, else re-raised
        return failures.report(command, error, output)
    return 0


def _run_query(command: str, args: argparse.Namespace) -> int:
    try:
        print(_QUERIES[command].run(args))
    except UserError as error:
        failures.print_error(command, str(error))
        return 2
    except Exception as error:  # noqa: BLE001 - one line if known, else re-raised
        return failures.report(command, error, getattr(args, "output", None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
