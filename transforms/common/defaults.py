"""Defaults of stage settings the command line shows, for stages whose module imports
Beam: kept here so that `embedbeam --help` does not have to import it."""

# Most embeddings per modality `--recluster`'s k-means is fitted on (transforms/recluster.py).
DEFAULT_SAMPLE_SIZE = 20_000
