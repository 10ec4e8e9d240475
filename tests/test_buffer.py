"""The buffer: flush triggers (rows, bytes, age), the memory budget and high-water mark, all-or-nothing offers."""

from __future__ import annotations

import pyarrow as pa
import pytest

from otlp2parquet.buffer import Buffer
from otlp2parquet.config import BufferSettings
from otlp2parquet.errors import BufferFullError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def batch(rows: int) -> pa.RecordBatch:
    return pa.record_batch({"x": pa.array(range(rows), pa.int64())})  # 8 bytes a row


def make(clock: Clock, **limits: float) -> Buffer:
    return Buffer(BufferSettings(**{"max_rows": 100, "max_bytes": 10_000, "max_age_s": 30,
                                    "memory_budget_bytes": 100_000, **limits}), clock)


def test_nothing_is_due_below_every_limit() -> None:
    buf = make(Clock())
    buf.offer({"logs": batch(10)})
    assert buf.take("logs") is None
    assert buf.stats() == {"logs": (10, 80)}


def test_rows_limit_triggers_a_flush_of_everything_buffered() -> None:
    buf = make(Clock())
    buf.offer({"logs": batch(60)})
    buf.offer({"logs": batch(40)})
    drained = buf.take("logs")
    assert drained is not None and (drained.rows, drained.reason, len(drained.batches)) == (100, "rows", 2)
    assert buf.stats() == {"logs": (0, 0)}


def test_bytes_limit_triggers_a_flush() -> None:
    buf = make(Clock(), max_bytes=400)
    buf.offer({"traces": batch(50)})
    drained = buf.take("traces")
    assert drained is not None and drained.reason == "bytes"


def test_age_limit_counts_from_the_oldest_row() -> None:
    clock = Clock()
    buf = make(clock)
    buf.offer({"logs": batch(1)})
    clock.now += 20
    buf.offer({"logs": batch(1)})
    assert buf.next_deadline("logs") == pytest.approx(10)
    clock.now += 10
    drained = buf.take("logs")
    assert drained is not None and (drained.reason, drained.rows) == ("age", 2)
    assert buf.next_deadline("logs") is None


def test_bytes_count_until_written_and_high_water_refuses() -> None:
    buf = make(Clock(), memory_budget_bytes=1000, high_water_fraction=0.5, max_rows=1)
    buf.offer({"logs": batch(70)})  # 560 bytes: above the 500-byte high-water mark
    assert not buf.accepting()
    with pytest.raises(BufferFullError) as refused:
        buf.offer({"logs": batch(1)})
    assert refused.value.retry_after_s == 2.0
    drained = buf.take("logs")
    assert drained is not None
    assert not buf.accepting(), "data being written still counts against the budget"
    buf.written(drained)
    assert buf.accepting() and buf.used_bytes == 0
    assert buf.committed_through() == 0, "written is not committed: the WAL keeps LSN 1"
    buf.committed("logs")
    assert buf.committed_through() == 1
    buf.offer({"logs": batch(1)})


def test_admit_refuses_above_high_water_and_starts_a_pressure_flush() -> None:
    buf = make(Clock(), memory_budget_bytes=1000, high_water_fraction=0.5)
    buf.admit()
    buf.offer({"logs": batch(70)})
    with pytest.raises(BufferFullError):
        buf.admit()
    drained = buf.take("logs")
    assert drained is not None and drained.reason == "pressure"


def test_an_offer_that_does_not_fit_changes_nothing() -> None:
    buf = make(Clock(), memory_budget_bytes=1000, high_water_fraction=1.0)
    buf.offer({"logs": batch(100)})
    with pytest.raises(BufferFullError):
        buf.offer({"logs": batch(10), "traces": batch(20)})  # 80 + 160 bytes would pass 1000
    assert buf.stats() == {"logs": (100, 800)}
    assert buf.used_bytes == 800


def test_pressure_makes_every_table_due() -> None:
    buf = make(Clock(), memory_budget_bytes=1000, high_water_fraction=0.5)
    buf.offer({"logs": batch(40), "traces": batch(30)})
    with pytest.raises(BufferFullError):
        buf.offer({"logs": batch(1)})
    reasons = {t: d.reason for t in ("logs", "traces") if (d := buf.take(t)) is not None}
    assert reasons == {"logs": "pressure", "traces": "pressure"}


def test_force_takes_whatever_is_left() -> None:
    buf = make(Clock())
    buf.offer({"logs": batch(3)})
    drained = buf.take("logs", force=True)
    assert drained is not None and (drained.rows, drained.reason) == (3, "shutdown")
