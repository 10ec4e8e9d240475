"""OTLP request bytes -> Arrow record batches, one per table. Pure functions, no I/O.

Each converter decodes the request once, natively (in our own C where the request is plainly well-formed,
otherwise via ptars), flattens it column-wise, rejects records that break the OTLP rules
(counted with reasons, for `partial_success`) and raises `ConversionError` for bytes that are not an OTLP
message at all.
`join` makes one request of several, so that a busy receiver converts them in one call: per-call costs are half
or more of converting a 1,000-item logs or metrics request.
"""

from otlp2parquet.convert._common import ConversionResult
from otlp2parquet.convert._decode import join
from otlp2parquet.convert._fast import enable as enable_native
from otlp2parquet.convert.logs import convert_logs
from otlp2parquet.convert.metrics import convert_metrics
from otlp2parquet.convert.traces import convert_traces

CONVERTERS = {"traces": convert_traces, "logs": convert_logs, "metrics": convert_metrics}

__all__ = ["CONVERTERS", "ConversionResult", "convert_logs", "convert_metrics", "convert_traces", "enable_native",
           "join"]
