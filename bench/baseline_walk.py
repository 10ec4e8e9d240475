"""The design alternative we measured against: parse with protobuf (upb) and walk every field in Python.

Only the traces table and only enough of it to be a fair lower bound on the cost of that approach; it is not
used by the server.
"""

from __future__ import annotations

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


def _text(value: object) -> str:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    if kind is None:
        return ""
    v = getattr(value, kind)
    if kind == "bool_value":
        return "true" if v else "false"
    return str(v)


def walk_traces(data: bytes) -> pa.Table:
    req = ExportTraceServiceRequest.FromString(data)
    cols: dict[str, list] = {k: [] for k in ("Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName",
                                             "ServiceName", "ResourceAttributes", "SpanAttributes", "Duration",
                                             "Events")}
    for rs in req.resource_spans:
        res = [(kv.key, _text(kv.value)) for kv in rs.resource.attributes]
        service = dict(res).get("service.name", "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                cols["Timestamp"].append(s.start_time_unix_nano // 1000)
                cols["TraceId"].append(s.trace_id.hex())
                cols["SpanId"].append(s.span_id.hex())
                cols["ParentSpanId"].append(s.parent_span_id.hex())
                cols["SpanName"].append(s.name)
                cols["ServiceName"].append(service)
                cols["ResourceAttributes"].append(res)
                cols["SpanAttributes"].append([(kv.key, _text(kv.value)) for kv in s.attributes])
                cols["Duration"].append(s.end_time_unix_nano - s.start_time_unix_nano)
                cols["Events"].append([
                    {"Name": e.name, "Attributes": [(kv.key, _text(kv.value)) for kv in e.attributes]}
                    for e in s.events])
    return pa.table({k: pa.array(v) for k, v in cols.items()})
