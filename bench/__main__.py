"""`python -m bench`: the benchmark harness (bench/run.py)."""

from bench.run import main

main()
