"""The namespace of every Beam metric embedbeam reports (Metrics.counter, .distribution)."""

METRICS_NAMESPACE = "embedbeam"
