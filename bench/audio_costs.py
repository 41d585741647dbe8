"""`python -m bench.audio_costs`: where an audio clip's featurizing time goes, per stage.

Each measurement runs in a fresh process (so first-import costs are seen as a
featurizing child sees them): a process's start-up (the interpreter, embedbeam's
featurizers, then the audio modality's warm-up: librosa's imports), then per clip,
over the same clips, wall and CPU milliseconds of

- decoding as librosa.load does it (16 kHz mono, soxr_hq), and as
  transforms/sparse/audio.py does (soundfile + soxr, the same samples);
- resampling alone with soxr's other qualities (not used: other samples, other
  features; how much resampling costs);
- the grid (transforms/sparse/audio.py `grid_features`);
- the whole `featurize_audio`,

each with numpy's BLAS on its default thread pool and on one thread (what a
featurizing child gets). Runs interleave; medians of `--repeats`.

    python -m bench.audio_costs --input 'WORK/spoken-5400/*/*.wav' [--clips 500] [--repeats 3]

Writes bench/results/<name>.json; bench/README.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench import RESULTS_DIR, record

STAGES = ("start-up", "librosa.load", "soundfile + soxr_hq", "soxr_mq", "soxr_qq", "grid",
          "featurize_audio")  # fmt: skip


def _child(stage: str, pattern: str, clips: int) -> dict:
    """One stage's cost per clip, measured in this fresh process."""
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    import glob
    import io
    import warnings

    from embedbeam.transforms.sparse.audio import (
        SAMPLE_RATE,
        _decode,
        featurize_audio,
        grid_features,
        warm_up_audio,
    )

    warm_up_audio()
    if stage == "start-up":
        return {
            "wall_s": time.perf_counter() - started_wall,
            "cpu_s": time.process_time() - started_cpu,
        }
    import librosa
    import soundfile
    import soxr

    datas = [open(path, "rb").read() for path in sorted(glob.glob(pattern))[:clips]]
    if stage == "librosa.load":
        warnings.simplefilter("ignore")

        def work(data):
            return librosa.load(io.BytesIO(data), sr=SAMPLE_RATE, mono=True, duration=10.0)

    elif stage == "soundfile + soxr_hq":

        def work(data):
            return list(_decode(data, 10.0, 24))

    elif stage.startswith("soxr_"):
        decoded = [soundfile.read(io.BytesIO(data), dtype="float32") for data in datas]
        datas = decoded

        def work(decoded):
            return soxr.resample(decoded[0], decoded[1], SAMPLE_RATE, quality=stage)

    elif stage == "grid":
        datas = [next(_decode(data, 10.0, 24)) for data in datas]

        def work(samples):
            return grid_features(samples, 32, 24, -60.0)

    else:
        work = featurize_audio
    wall, cpu = time.perf_counter(), time.process_time()
    for data in datas:
        work(data)
    return {
        "ms_per_clip": (time.perf_counter() - wall) * 1e3 / len(datas),
        "cpu_ms_per_clip": (time.process_time() - cpu) * 1e3 / len(datas),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="A glob of audio clips.")
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="audio_costs")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.input, args.clips)))
        return
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeats):
        for stage in STAGES:
            for blas in ("default", "1"):
                env = dict(os.environ)
                if blas == "1":
                    env["OPENBLAS_NUM_THREADS"] = "1"
                command = [sys.executable, "-m", "bench.audio_costs", "--child", stage]
                command += ["--input", args.input, "--clips", str(args.clips)]
                out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
                measured = json.loads(out.stdout.strip().splitlines()[-1])
                runs.setdefault(f"{stage}, BLAS threads {blas}", []).append(measured)
                print(stage, blas, measured, file=sys.stderr)
    medians = {
        key: {name: round(statistics.median(r[name] for r in rs), 3) for name in rs[0]}
        for key, rs in runs.items()
    }
    results = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        "clips": args.clips,
        "medians": medians,
        "raw": runs,
    }
    record(args.name, results, RESULTS_DIR)


if __name__ == "__main__":
    main()
