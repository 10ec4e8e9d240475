"""What every signal shares: resource -> scope -> item nesting, and the resource/scope columns."""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from otlp2parquet.convert._arrays import attribute_value, attributes, explode, relist, to_int64
from otlp2parquet.convert._arrays import field as member
from otlp2parquet.schemas import arrow_schema
from otlp2parquet.schemas.tables import RESOURCE_ENTITY_REFS
from otlp2parquet.schemas.types import arrow_type


@dataclass
class ConversionResult:
    """One request converted: a record batch per table touched, and what was rejected and why."""

    batches: dict[str, pa.RecordBatch] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def merge(self, other: ConversionResult) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.reasons.update(other.reasons)
        self.warnings.extend(other.warnings)

    def note_repaired(self, strings: int) -> None:
        if strings:
            self.warnings.append(
                f"{strings} string fields had invalid UTF-8 and were stored with U+FFFD replacements")

    def message(self) -> str:
        """The human-readable text for OTLP `partial_success.error_message`."""
        parts = [f"{n} rejected: {reason}" for reason, n in self.reasons.most_common()]
        return "; ".join(parts + self.warnings)


@dataclass
class Nesting:
    """Items of one kind (spans, log records, metrics) with the resource and scope each belongs to."""

    resources: pa.Array  # Resource{Spans,Logs,Metrics} structs
    scopes: pa.Array  # Scope{Spans,Logs,Metrics} structs
    items: pa.Array
    item_scope: pa.Array  # int64 index into scopes, one per item
    item_resource: pa.Array  # int64 index into resources, one per item


def unnest(request: pa.StructArray, resources_name: str, scopes_name: str, items_name: str) -> Nesting:
    resources = member(request, resources_name).flatten()
    scopes, scope_resource = explode(member(resources, scopes_name))
    items, item_scope = explode(member(scopes, items_name))
    return Nesting(resources, scopes, items, item_scope, scope_resource.take(item_scope))


_ENTITY_REFS_TYPE = arrow_type(RESOURCE_ENTITY_REFS.type)
# The list and struct types and enum names both converters build (the reference one and the native one).
TRACES = arrow_schema("traces")
EVENTS_TYPE = TRACES.field("Events").type
LINKS_TYPE = TRACES.field("Links").type
SPAN_KINDS = ["Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"]
STATUS_CODES = ["Unset", "Ok", "Error"]
METRIC_TYPES = ("gauge", "sum", "histogram", "exponential_histogram", "summary")
METRICS = {kind: arrow_schema(f"metrics_{kind}") for kind in METRIC_TYPES}
EXEMPLARS_TYPE = METRICS["gauge"].field("Exemplars").type
QUANTILES_TYPE = METRICS["summary"].field("ValueAtQuantiles").type
LONG_LIST = METRICS["histogram"].field("BucketCounts").type
DOUBLE_LIST = METRICS["histogram"].field("ExplicitBounds").type


def _entity_refs(resource: pa.Array) -> pa.Array:
    refs = member(resource, "entity_refs")
    items = refs.flatten()
    element = _ENTITY_REFS_TYPE.value_type
    renamed = pa.StructArray.from_arrays(
        [member(items, "schema_url"), member(items, "type"),
         relist(member(items, "id_keys"), member(items, "id_keys").flatten(), element.field("IdKeys").type),
         relist(member(items, "description_keys"), member(items, "description_keys").flatten(),
                element.field("DescriptionKeys").type)],
        fields=list(element))
    return relist(refs, renamed, _ENTITY_REFS_TYPE)


@dataclass
class Levels:
    """Resource- and scope-level columns, computed once per resource/scope rather than once per item."""

    per_resource: dict[str, pa.Array]
    per_scope: dict[str, pa.Array]

    def repeat(self, item_resource: pa.Array, item_scope: pa.Array) -> dict[str, pa.Array]:
        return {**take_all(self.per_resource, item_resource), **take_all(self.per_scope, item_scope)}


def take_all(columns: dict[str, pa.Array], index: pa.Array) -> dict[str, pa.Array]:
    """Each column's rows at `index`, in one take over them all: a take per column costs tens of microseconds
    of call overhead, which for small requests outweighs the copying."""
    batch = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
    return dict(zip(columns, batch.take(index).columns, strict=True))


def levels(n: Nesting, scope_dropped_name: str) -> Levels:
    resource = member(n.resources, "resource")
    scope = member(n.scopes, "scope")
    resource_attrs = attributes(member(resource, "attributes"))
    return Levels(
        per_resource={
            "ResourceAttributes": resource_attrs,
            "ServiceName": attribute_value(resource_attrs, "service.name"),
            "ResourceSchemaUrl": member(n.resources, "schema_url"),
            "ResourceDroppedAttributesCount": to_int64(
                pc.fill_null(member(resource, "dropped_attributes_count"), 0)),
            "ResourceEntityRefs": _entity_refs(resource),
        },
        per_scope={
            "ScopeName": pc.fill_null(member(scope, "name"), ""),
            "ScopeVersion": pc.fill_null(member(scope, "version"), ""),
            "ScopeAttributes": attributes(member(scope, "attributes")),
            scope_dropped_name: to_int64(pc.fill_null(member(scope, "dropped_attributes_count"), 0)),
            "ScopeSchemaUrl": member(n.scopes, "schema_url"),
        },
    )


def resource_scope_columns(n: Nesting, scope_dropped_name: str) -> dict[str, pa.Array]:
    """Resource- and scope-level columns repeated for each item of `n`."""
    return levels(n, scope_dropped_name).repeat(n.item_resource, n.item_scope)


def build_batch(schema: pa.Schema, columns: dict[str, pa.Array], decoded: DecodedMemory) -> pa.RecordBatch:
    """Columns in the contract's order and types; a missing or mistyped column fails loudly here.

    Columns that still share memory with the decoded request are copied. pyarrow keeps all of an imported
    array's memory alive while any part of it is referenced, so one zero-copy column in the buffer would hold the
    whole decoded request (every field, every string) until the flush: up to twice what the buffer counts.
    """
    return pa.RecordBatch.from_arrays([decoded.detach(columns[f.name]) for f in schema], schema=schema)


class DecodedMemory:
    """Where a decoded request's buffers lie (children's included), to tell which columns still point into it."""

    def __init__(self, array: pa.Array) -> None:
        ranges = sorted((b.address, b.address + b.size) for b in array.buffers() if b is not None and b.size)
        self._starts = [start for start, _ in ranges]
        self._ends = [end for _, end in ranges]

    def holds(self, buffer: pa.Buffer) -> bool:
        i = bisect.bisect_right(self._starts, buffer.address) - 1
        return i >= 0 and buffer.address < self._ends[i]

    def detach(self, column: pa.Array) -> pa.Array:
        """`column`, copied if any of its buffers lies in the decoded request's memory."""
        if any(b is not None and b.size and self.holds(b) for b in column.buffers()):
            return pa.concat_arrays([column, column.slice(0, 0)])  # concatenating copies every buffer
        return column
