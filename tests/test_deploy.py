"""deploy/, checked offline: nothing here can reach Dataflow, Flink, Spark or Docker.

The submit commands in the READMEs are parsed out and must be accepted by the
CLI; their Beam flags must build the embed and train graphs (nothing runs);
manifests and the Flex Template spec must parse and agree with the commands;
Dockerfiles must pass hadolint and start from this machine's Beam version.
"""

from __future__ import annotations

import json
import pathlib
import re
import shlex
import subprocess
import sys

import apache_beam as beam
import pytest
import yaml
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions
from dockerfile_parse import DockerfileParser

from embedbeam.pipeline.cli import command
from embedbeam.pipeline.jobs.embed import build_embed_pipeline
from embedbeam.pipeline.jobs.train import build_train_pipeline
from embedbeam.pipeline.model.model_dir import ModelInfo, write_model_info
from embedbeam.transforms.list_inputs import InputSource

DEPLOY = pathlib.Path(__file__).resolve().parent.parent / "deploy"
READMES = sorted(DEPLOY.rglob("README.md"))
SDK_IMAGE = f"apache/beam_python3.11_sdk:{beam.__version__}"
OUR_PATH_FLAGS = {"--model", "--input", "--manifest", "--output"}


def submit_commands() -> list[tuple[str, list[str]]]:
    """Every `embedbeam train|embed` command in deploy/ (READMEs and scripts), as argv."""
    commands = []
    for path in [*READMES, *DEPLOY.rglob("*.sh")]:
        text = re.sub(r"\\\n\s*", " ", path.read_text())  # join continued lines
        for line in text.splitlines():
            line = line.strip()
            if re.match(r"embedbeam (train|embed) ", line):
                argv = shlex.split(line)[1:]
                commands.append((f"{path.relative_to(DEPLOY)}: {' '.join(argv[:1])}", argv))
    return commands


def beam_flags(argv: list[str]) -> list[str]:
    """The command's Beam flags: everything but the subcommand and embedbeam's own paths."""
    flags, skip = [], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg in OUR_PATH_FLAGS or arg == "--modality":
            skip = True
        elif arg.split("=")[0] not in OUR_PATH_FLAGS:
            flags.append(arg)
    return flags


COMMANDS = submit_commands()
RUNNERS = sorted({flag for _, argv in COMMANDS for flag in argv if flag.startswith("--runner=")})


def test_the_readmes_name_a_command_for_every_remote_runner():
    assert {"deploy/dataflow", "deploy/flink", "deploy/spark", "deploy/dask"} <= {
        f"deploy/{readme.parent.name}" for readme in READMES
    }
    assert {
        "--runner=DataflowRunner",
        "--runner=FlinkRunner",
        "--runner=PortableRunner",
        "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
    } <= set(RUNNERS)
    for readme in READMES:
        if readme.parent.name in ("dataflow", "flink", "spark"):
            assert "not run here" in readme.read_text().lower()


@pytest.mark.parametrize("argv", [argv for _, argv in COMMANDS], ids=[name for name, _ in COMMANDS])
def test_every_submit_command_is_accepted_by_the_cli(argv):
    parsed, rest = command._parser().parse_known_args(argv)

    assert parsed.command in ("train", "embed")
    assert command._unknown_flags(rest) == []


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> pathlib.Path:
    """A model.json is all that building (not running) the embed graph reads."""
    directory = tmp_path_factory.mktemp("model")
    write_model_info(
        str(directory),
        ModelInfo(
            modality="image",
            embedding_dim=5,
            vocabulary_size=784,
            labels=["7"],
            featurizer={"grid": 28, "threshold": 0.2},
            num_clusters=1,
            metrics={},
            training={},
            model_version="0123456789abcdef",
        ),
    )
    return directory


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, seven_png) -> pathlib.Path:
    root = tmp_path_factory.mktemp("inputs")
    (root / "7").mkdir()
    (root / "7" / "a.png").write_bytes(seven_png)
    return root


def _graph_labels(pipeline: beam.Pipeline) -> set[str]:
    proto = pipeline.to_runner_api()
    return {transform.unique_name for transform in proto.components.transforms.values()}


@pytest.mark.parametrize(
    "argv",
    [argv for _, argv in COMMANDS if argv[0] == "embed"],
    ids=[name for name, argv in COMMANDS if argv[0] == "embed"],
)
def test_the_embed_graph_builds_under_each_commands_beam_flags(argv, model_dir, inputs, tmp_path):
    flags = beam_flags(argv)
    runner = next(f.split("=")[1] for f in flags if f.startswith("--runner="))
    options = PipelineOptions(
        [
            "--model",
            str(model_dir),
            "--input",
            f"{inputs}/**",
            "--output",
            str(tmp_path / "out"),
            *flags,
        ]
    )

    pipeline = build_embed_pipeline(options, _graph_only(options, runner))

    assert {"ListInputs", "EncodeEmbeddings[image]", "WriteEmbeddings/CommitRun"} <= _graph_labels(
        pipeline
    )


def _graph_only(options: PipelineOptions, runner: str) -> beam.Pipeline:
    """A pipeline object for `runner` that is never run.

    DataflowRunner's options are validated against Google Cloud when the
    Pipeline is constructed (the temp bucket is looked up), which needs
    credentials and network; its graph is built on a DirectRunner pipeline
    carrying the same options instead.
    """
    if runner == "DataflowRunner":
        google = options.view_as(GoogleCloudOptions)
        assert google.project and google.region and google.temp_location.startswith("gs://")
        return beam.Pipeline(runner="DirectRunner", options=options)
    pipeline = beam.Pipeline(options=options)
    assert type(pipeline.runner).__name__ == runner.rsplit(".", 1)[-1]
    return pipeline


@pytest.mark.parametrize(
    "argv",
    [argv for _, argv in COMMANDS if argv[0] == "train"],
    ids=[name for name, argv in COMMANDS if argv[0] == "train"],
)
def test_the_train_graph_builds_under_each_commands_beam_flags(argv, inputs, tmp_path):
    flags = beam_flags(argv)
    runner = next(f.split("=")[1] for f in flags if f.startswith("--runner="))
    options = PipelineOptions([*flags, "--input", f"{inputs}/*/*.png"])

    pipeline = build_train_pipeline(
        options,
        InputSource(pattern=f"{inputs}/*/*.png"),
        str(tmp_path / "model"),
        str(tmp_path / "work"),
        _graph_only(options, runner),
    )

    assert "AnalyzeAndTransform[Train]" in {
        label.split("/")[0] for label in _graph_labels(pipeline)
    }


def test_the_flink_manifest_runs_a_worker_pool_beside_every_taskmanager():
    deployment = yaml.safe_load((DEPLOY / "flink" / "flink-deployment.yaml").read_text())
    containers = deployment["spec"]["taskManager"]["podTemplate"]["spec"]["containers"]
    sidecar = next(c for c in containers if c["name"] == "beam-worker-pool")
    flink_commands = [argv for name, argv in COMMANDS if name.startswith("flink/")]

    assert deployment["kind"] == "FlinkDeployment"
    assert sidecar["args"] == ["--worker_pool"]
    port = sidecar["ports"][0]["containerPort"]
    assert flink_commands and all(
        f"--environment_config=localhost:{port}" in argv for argv in flink_commands
    )
    version = deployment["spec"]["flinkVersion"].removeprefix("v").replace("_", ".")
    assert all(f"--flink_version={version}" in argv for argv in flink_commands)
    assert (
        version
        in PipelineOptions([])
        .view_as(beam.options.pipeline_options.FlinkRunnerOptions)
        .PUBLISHED_FLINK_VERSIONS
    )


def test_the_flex_template_parameters_are_embed_flags():
    spec = json.loads((DEPLOY / "dataflow" / "metadata.json").read_text())
    embed_flags = {
        option
        for action in command._parser()._subparsers._group_actions[0].choices["embed"]._actions
        for option in action.option_strings
    }

    assert spec["name"] and spec["parameters"]
    for parameter in spec["parameters"]:
        assert f"--{parameter['name']}" in embed_flags
        for regex in parameter.get("regexes", []):
            re.compile(regex)
    required = {p["name"] for p in spec["parameters"] if not p.get("isOptional")}
    assert required == {"model", "output"}


@pytest.mark.parametrize("dockerfile", sorted(DEPLOY.rglob("Dockerfile")), ids=str)
def test_dockerfiles_lint_clean_and_build_on_this_beam_version(dockerfile):
    hadolint = pathlib.Path(sys.executable).parent / "hadolint"
    lint = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True)
    parsed = DockerfileParser(str(dockerfile))

    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert parsed.baseimage == SDK_IMAGE  # the final stage: the Beam that submits must match
    assert any(
        instruction["instruction"] == "RUN"
        and "pip install" in instruction["value"]
        and instruction["value"].rstrip().split("&&")[0].strip().endswith(".")
        for instruction in parsed.structure
    )
    copied = " ".join(i["value"] for i in parsed.structure if i["instruction"] == "COPY")
    for needed in ("setup.py", "pipeline", "transforms"):
        assert needed in copied


def test_the_spark_recipe_is_valid_bash():
    script = DEPLOY / "spark" / "submit.sh"

    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert f"apache/beam_spark3_job_server:{beam.__version__}" in script.read_text().replace(
        "${BEAM_VERSION}", beam.__version__
    )
