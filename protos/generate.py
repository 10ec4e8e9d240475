"""Write protos/otlp.protoset: the OTLP collector services and their dependencies as a FileDescriptorSet.

grpcurl can use it instead of reflection (`grpcurl -protoset protos/otlp.protoset ...`). It is generated from
the descriptors of the installed opentelemetry-proto package, so it matches what the server decodes:

    .venv/bin/python protos/generate.py
"""

from __future__ import annotations

import pathlib

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

OUTPUT = pathlib.Path(__file__).with_name("otlp.protoset")
ROOTS = [trace_service_pb2.DESCRIPTOR, logs_service_pb2.DESCRIPTOR, metrics_service_pb2.DESCRIPTOR,
         health_pb2.DESCRIPTOR]


def protoset() -> bytes:
    ordered: list[FileDescriptor] = []

    def visit(fd: FileDescriptor) -> None:
        if fd in ordered:
            return
        for dep in fd.dependencies:
            visit(dep)
        ordered.append(fd)

    for root in ROOTS:
        visit(root)
    out = descriptor_pb2.FileDescriptorSet()
    for fd in ordered:
        fd.CopyToProto(out.file.add())
    return out.SerializeToString(deterministic=True)


if __name__ == "__main__":
    OUTPUT.write_bytes(protoset())
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size} bytes)")
