#!/usr/bin/env bash
# Submit `embedbeam embed` to a Spark 3 standalone cluster through Beam's portable Spark
# job server. Every Spark worker host runs the SDK worker pool of the custom container
# (deploy/container/Dockerfile) on port 50000, so Spark's tasks reach it at localhost.
#
#   SPARK_MASTER=spark://spark-master:7077 MODEL=gs://BUCKET/models/mnist \
#   INPUT='gs://BUCKET/digits/**' OUTPUT=gs://BUCKET/out deploy/spark/submit.sh
set -euo pipefail

: "${SPARK_MASTER:?spark://HOST:7077 of the cluster}"
: "${MODEL:?model directory written by embedbeam train}"
: "${INPUT:?glob of the inputs}"
: "${OUTPUT:?output directory}"
BEAM_VERSION=2.77.0
JOB_PORT=${JOB_PORT:-8099}

# 1. The Spark job server (translates the Beam pipeline into a Spark job). It needs Java;
#    Beam publishes it as a container image.
docker run --rm --detach --name embedbeam-spark-job-server --network host \
    "apache/beam_spark3_job_server:${BEAM_VERSION}" \
    --spark-master-url="${SPARK_MASTER}" --job-port="${JOB_PORT}"
trap 'docker stop embedbeam-spark-job-server >/dev/null' EXIT

# 2. The job itself: only Beam flags differ from a local run.
embedbeam embed --model "${MODEL}" --input "${INPUT}" --output "${OUTPUT}" \
    --runner=PortableRunner --job_endpoint="localhost:${JOB_PORT}" \
    --environment_type=EXTERNAL --environment_config=localhost:50000
