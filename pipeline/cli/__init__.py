"""The command line: flags, help and dispatch to the jobs and queries."""

from embedbeam.pipeline.cli.main import main

__all__ = ["main"]
