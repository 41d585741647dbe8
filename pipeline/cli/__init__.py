"""The command line: flags, help and dispatch to the jobs and queries."""

from embedbeam.pipeline.cli.command import main

__all__ = ["main"]
