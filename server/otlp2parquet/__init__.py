"""otlp2parquet: an OpenTelemetry Collector sidecar that writes OTLP data to Apache Iceberg tables."""

from otlp2parquet import memory

memory.configure()  # before anything imports pyarrow

__version__ = "0.1.0"
