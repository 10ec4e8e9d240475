"""otlp2parquet: an OpenTelemetry Collector sidecar that writes OTLP data to Apache Iceberg tables."""

__version__ = "0.1.0"
