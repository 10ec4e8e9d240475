"""Deterministic OTLP workloads shaped like real Collector traffic.

The same seed always gives the same bytes, so benchmark runs are comparable and tests can rely on the
shapes (several resources and scopes, 10-20 attributes per span, events, links, every metric type).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

BASE_TIME_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
SERVICES = ["checkout", "cart", "frontend", "payment", "shipping", "email", "ad", "recommendation"]
HTTP_ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/api/ads", "/healthz", "/"]
LOG_WORDS = (
    "request handled user cart item added payment failed retrying connection reset upstream timeout "
    "cache miss order placed shipping quote computed currency converted"
).split()


def _kv(key: str, value: object) -> common_pb2.KeyValue:
    kv = common_pb2.KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)
    return kv


def _resource(rng: random.Random, service: str) -> resource_pb2.Resource:
    attrs = {
        "service.name": service,
        "service.version": f"1.{rng.randrange(20)}.{rng.randrange(10)}",
        "service.namespace": "shop",
        "deployment.environment.name": "production",
        "host.name": f"node-{rng.randrange(50):02d}",
        "k8s.namespace.name": "shop",
        "k8s.pod.name": f"{service}-{rng.randrange(16**6):06x}",
        "k8s.node.name": f"node-{rng.randrange(50):02d}",
        "telemetry.sdk.language": rng.choice(["go", "java", "python", "nodejs"]),
        "telemetry.sdk.name": "opentelemetry",
    }
    return resource_pb2.Resource(attributes=[_kv(k, v) for k, v in attrs.items()])


def _span_attributes(rng: random.Random) -> list[common_pb2.KeyValue]:
    attrs: dict[str, object] = {
        "http.request.method": rng.choice(["GET", "POST", "PUT"]),
        "http.route": rng.choice(HTTP_ROUTES),
        "http.response.status_code": rng.choice([200, 200, 200, 201, 404, 500]),
        "url.scheme": "https",
        "server.address": "shop.example.com",
        "server.port": 443,
        "network.protocol.version": "1.1",
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)",
        "client.address": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "app.user.id": f"user-{rng.randrange(100_000)}",
    }
    for i in range(rng.randrange(0, 11)):
        attrs[f"app.attr.{i}"] = rng.choice(
            [rng.random() * 100, rng.randrange(1000), f"value-{rng.randrange(500)}", rng.random() < 0.5]
        )
    return [_kv(k, v) for k, v in attrs.items()]


def traces_request(rng: random.Random, spans: int) -> trace_service_pb2.ExportTraceServiceRequest:
    """A request with `spans` spans spread over a few resources and scopes."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    resources = max(1, min(4, spans // 100))
    per_resource = [spans // resources + (1 if i < spans % resources else 0) for i in range(resources)]
    for r, count in enumerate(per_resource):
        rs = req.resource_spans.add(resource=_resource(rng, SERVICES[r % len(SERVICES)]))
        rs.schema_url = "https://opentelemetry.io/schemas/1.26.0"
        scopes = [rs.scope_spans.add() for _ in range(2)]
        scopes[0].scope.name, scopes[0].scope.version = "io.opentelemetry.http", "2.1.0"
        scopes[1].scope.name, scopes[1].scope.version = "app.tracer", "0.3.1"
        trace_id = rng.randbytes(16)
        parent = b""
        for i in range(count):
            if i % 8 == 0:
                trace_id, parent = rng.randbytes(16), b""
            start = BASE_TIME_NS + rng.randrange(3_600_000_000_000)
            span = scopes[i % 2].spans.add(
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                parent_span_id=parent,
                name=f"{rng.choice(['GET', 'POST'])} {rng.choice(HTTP_ROUTES)}",
                kind=rng.choice([1, 2, 3]),
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randrange(50_000, 900_000_000),
                attributes=_span_attributes(rng),
                flags=0x101,
            )
            parent = span.span_id
            if rng.random() < 0.1:
                span.status.code = trace_pb2.Status.STATUS_CODE_ERROR
                span.status.message = "upstream timeout"
            for e in range(rng.choice([0, 0, 1, 2])):
                span.events.add(
                    time_unix_nano=start + 1000 * (e + 1),
                    name=rng.choice(["exception", "cache.miss", "retry"]),
                    attributes=[_kv("exception.type", "TimeoutError"), _kv("attempt", e)],
                )
            if rng.random() < 0.2:
                span.links.add(trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                               attributes=[_kv("link.kind", "follows_from")])
    return req


def logs_request(rng: random.Random, records: int) -> logs_service_pb2.ExportLogsServiceRequest:
    """A request with `records` log records, bodies of varied length, some tied to traces."""
    req = logs_service_pb2.ExportLogsServiceRequest()
    resources = max(1, min(4, records // 100))
    for r in range(resources):
        rl = req.resource_logs.add(resource=_resource(rng, SERVICES[r % len(SERVICES)]))
        sl = rl.scope_logs.add()
        sl.scope.name = "app.logger"
        count = records // resources + (1 if r < records % resources else 0)
        for _ in range(count):
            ts = BASE_TIME_NS + rng.randrange(3_600_000_000_000)
            severity = rng.choice([9, 9, 9, 13, 17, 5])
            body = " ".join(rng.choice(LOG_WORDS) for _ in range(rng.choice([3, 8, 15, 40])))
            rec = sl.log_records.add(
                time_unix_nano=ts,
                observed_time_unix_nano=ts + 1_000_000,
                severity_number=severity,
                severity_text={5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR"}[severity],
                attributes=[_kv("code.function", rng.choice(["handle", "pay", "ship"])),
                            _kv("thread.id", rng.randrange(64)),
                            _kv("log.iostream", "stdout")],
            )
            rec.body.string_value = body
            if rng.random() < 0.5:
                rec.trace_id, rec.span_id, rec.flags = rng.randbytes(16), rng.randbytes(8), 1
    return req


def _points_attrs(rng: random.Random) -> list[common_pb2.KeyValue]:
    return [_kv("http.route", rng.choice(HTTP_ROUTES)), _kv("http.request.method", rng.choice(["GET", "POST"])),
            _kv("http.response.status_code", rng.choice([200, 404, 500]))]


def metrics_request(rng: random.Random, points: int) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """A request with `points` data points over all five metric types (at least one of each)."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add(resource=_resource(rng, rng.choice(SERVICES)))
    sm = rm.scope_metrics.add()
    sm.scope.name = "app.meter"
    # Gauge first: the first `points % 5` types get one point more, so that 8,192 points are 8,192.
    wanted = [max(1, points // 5 + (k < points % 5)) for k in range(5)]
    t = BASE_TIME_NS + rng.randrange(3_600_000_000_000)
    gauge = sm.metrics.add(name="process.memory.usage", unit="By", description="RSS")
    total = sm.metrics.add(name="http.server.requests", unit="{request}")
    total.sum.aggregation_temporality, total.sum.is_monotonic = 2, True
    hist = sm.metrics.add(name="http.server.request.duration", unit="s")
    hist.histogram.aggregation_temporality = 2
    exph = sm.metrics.add(name="rpc.server.duration", unit="ms")
    exph.exponential_histogram.aggregation_temporality = 1
    summ = sm.metrics.add(name="jvm.gc.pause", unit="ms")
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    for i in range(wanted[0]):  # the gauge has the most points
        ts = t + i * 1_000_000
        gauge.gauge.data_points.add(time_unix_nano=ts, as_int=rng.randrange(10**9), attributes=_points_attrs(rng))
        if i < wanted[1]:
            total.sum.data_points.add(start_time_unix_nano=t - 60_000_000_000, time_unix_nano=ts,
                                      as_double=rng.random() * 1e4, attributes=_points_attrs(rng))
        if i < wanted[2]:
            counts = [rng.randrange(100) for _ in range(len(bounds) + 1)]
            hp = hist.histogram.data_points.add(
                start_time_unix_nano=t - 60_000_000_000, time_unix_nano=ts, count=sum(counts),
                sum=rng.random() * 100, bucket_counts=counts, explicit_bounds=bounds, min=0.001, max=9.5,
                attributes=_points_attrs(rng))
            if i % 10 == 0:
                hp.exemplars.add(time_unix_nano=ts, as_double=0.2, trace_id=rng.randbytes(16),
                                 span_id=rng.randbytes(8))
        if i < wanted[3]:
            ep = exph.exponential_histogram.data_points.add(
                start_time_unix_nano=ts - 10_000_000_000, time_unix_nano=ts, count=40, sum=123.5, scale=3,
                zero_count=2, zero_threshold=1e-9, attributes=_points_attrs(rng))
            ep.positive.offset, ep.negative.offset = 4, 1
            ep.positive.bucket_counts.extend([rng.randrange(10) for _ in range(8)])
        if i < wanted[4]:
            sp = summ.summary.data_points.add(time_unix_nano=ts, count=10, sum=55.0, attributes=_points_attrs(rng))
            for q in (0.0, 0.5, 0.99, 1.0):
                sp.quantile_values.add(quantile=q, value=q * 100)
    return req


def requests(signal: str, items: int, count: int, seed: int = 42) -> Iterator[bytes]:
    """`count` serialized requests of `items` items each for `signal` (traces, logs or metrics)."""
    rng = random.Random(seed)
    make = {"traces": traces_request, "logs": logs_request, "metrics": metrics_request}[signal]
    for _ in range(count):
        yield make(rng, items).SerializeToString()
