"""Flex Template entry point: `embedbeam embed` with the template's parameters as flags."""

import sys

from embedbeam.pipeline.cli.command import main

if __name__ == "__main__":
    sys.exit(main(["embed", *sys.argv[1:]]))
