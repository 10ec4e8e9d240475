"""The buffer: flush triggers (rows, bytes, age), the memory budget and high-water mark, all-or-nothing offers."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest

from otlp2parquet.buffer import Buffer, arrow_bytes
from otlp2parquet.config import BufferSettings
from otlp2parquet.errors import BufferFullError, RequestTooLargeError


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


def test_a_flush_stops_at_max_bytes_and_leaves_the_rest_due_with_the_watermark_below_it() -> None:
    # A flush thread busy committing comes back to several flushes' worth; one flush of all of it needs as much
    # again for its sorted copy.
    buf = make(Clock(), max_bytes=400, memory_budget_bytes=10_000)
    lsns = [buf.offer({"traces": batch(30)}) for _ in range(5)]  # 240 bytes each
    first = buf.take("traces")
    assert first is not None and (first.rows, first.bytes, first.lsns) == (60, 480, lsns[:2])
    assert first.watermark == lsns[2] - 1, "rows at the LSNs left behind are neither in this flush nor committed"
    assert buf.committed_through() == lsns[0] - 1
    buf.written(first)
    second = buf.take("traces")
    assert second is not None and second.lsns == lsns[2:4] and second.reason == "bytes"
    buf.written(second)
    assert buf.take("traces") is None, "the last 240 bytes are below every limit"
    last = buf.take("traces", force=True)
    assert last is not None and last.lsns == lsns[4:] and last.watermark == buf.last_lsn
    buf.written(last)
    assert buf.used_bytes == 0 and buf.stats() == {"traces": (0, 0)}


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


def test_batches_larger_than_the_whole_budget_are_refused_for_good_even_when_empty() -> None:
    buf = make(Clock(), memory_budget_bytes=1000)
    with pytest.raises(RequestTooLargeError) as refused:
        buf.offer({"logs": batch(100), "traces": batch(30)})  # 1,040 bytes
    assert "1040 bytes" in str(refused.value) and "(1000 bytes, buffer.memory_budget_bytes)" in str(refused.value)
    assert buf.used_bytes == 0 and buf.stats() == {}
    assert buf.too_large({"logs": batch(125)}) is None, "the whole budget, exactly, can be had"
    buf.offer({"logs": batch(125)})


def test_a_replayed_record_larger_than_the_budget_waits_for_an_empty_buffer_then_enters() -> None:
    """A WAL record written under a larger budget must still replay, alone, rather than block start-up."""
    buf = make(Clock(), memory_budget_bytes=1000)
    buf.offer({"logs": batch(10)}, lsn=1)
    entered = threading.Event()
    replay = threading.Thread(target=lambda: (buf.offer({"logs": batch(200)}, lsn=2, block=True), entered.set()))
    replay.start()
    assert not entered.wait(0.3), "it waits while anything else is held"
    drained = buf.take("logs")
    assert drained is not None and drained.reason == "pressure", "waiting asked for a flush"
    buf.written(drained)
    assert entered.wait(5)
    replay.join()
    assert buf.stats() == {"logs": (200, 1600)}


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


def _numbered(start: int, rows: int = 3) -> pa.RecordBatch:
    return pa.record_batch({"x": pa.array(range(start, start + rows), pa.int64())})


def test_compact_merges_a_run_of_batches_keeping_rows_order_and_first_lsn() -> None:
    buffer = make(Clock(), max_rows=1000)
    for i in range(5):
        buffer.offer({"logs": _numbered(10 * i)})
    assert not buffer.compact("logs", min_batches=6)
    assert buffer.compact("logs", min_batches=5)
    drained = buffer.take("logs", force=True)
    assert drained is not None
    assert len(drained.batches) == 1 and drained.lsns == [1]
    assert drained.rows == 15 and buffer.used_bytes == drained.bytes == arrow_bytes(drained.batches[0])
    assert drained.batches[0].column("x").to_pylist() == [v for i in range(5) for v in range(10 * i, 10 * i + 3)]


def test_compact_merges_no_more_than_a_run_however_many_batches_piled_up() -> None:
    # While the flush thread commits, hundreds of small batches can arrive: merging them all at once copied up to
    # the high-water mark, and the merged batch became one flush of all of it.
    def runs(max_bytes: int, min_batches: int) -> tuple[list[int], list[int], list[int]]:
        buffer = make(Clock(), max_rows=1000, max_bytes=max_bytes, memory_budget_bytes=10_000)
        lsns = [buffer.offer({"logs": _numbered(10 * i)}) for i in range(12)]  # 24 bytes each
        assert buffer.compact("logs", min_batches=min_batches)
        drained = buffer.take("logs", force=True)
        assert drained is not None
        return [b.num_rows for b in drained.batches], drained.lsns, lsns

    rows, lsns, offered = runs(max_bytes=10_000, min_batches=3)
    assert rows == [9] + [3] * 9 and lsns[:2] == [offered[0], offered[3]], "min_batches of them, not all twelve"
    rows, _, _ = runs(max_bytes=50, min_batches=5)
    assert rows == [9], "a run (and then the flush) stops at the batch that brings it to max_bytes"


def test_a_returned_flush_is_never_merged_with_rows_offered_after_it_was_taken() -> None:
    buffer = make(Clock(), max_rows=1000)
    for i in range(3):
        buffer.offer({"logs": _numbered(i)})
    assert buffer.compact("logs", min_batches=3)
    first = buffer.take("logs", force=True)
    assert first is not None and first.watermark == 3
    for i in range(3):
        buffer.offer({"logs": _numbered(100 + i)})
    buffer.requeue(first, retry_in_s=0)
    assert buffer.compact("logs", min_batches=3)
    assert not buffer.compact("logs", min_batches=2)  # the returned run and the new run stay apart
    again = buffer.take("logs", force=True)
    assert again is not None and again.lsns == [1, 4]
    # What a writer whose first attempt did land keeps: exactly the rows offered after that flush was taken.
    kept = [b for b, lsn in zip(again.batches, again.lsns, strict=True) if lsn > first.watermark]
    assert [v for b in kept for v in b.column("x").to_pylist()] == [100, 101, 102, 101, 102, 103, 102, 103, 104]
    assert buffer.committed_through() == 0


def test_pressure_ends_once_written_flushes_bring_the_buffer_below_half_its_high_water_mark() -> None:
    buf = make(Clock(), memory_budget_bytes=1000, high_water_fraction=0.5)  # high water 500, low 250
    buf.offer({"logs": batch(40), "traces": batch(30)})  # 560 bytes
    with pytest.raises(BufferFullError):
        buf.admit()
    logs = buf.take("logs")
    assert logs is not None and logs.reason == "pressure"
    buf.written(logs)  # 240 bytes of traces left: below 250, so they wait for their own limits again
    buf.offer({"logs": batch(1)})
    assert buf.take("logs") is None
    assert buf.take("traces") is None


def test_batches_that_cannot_be_merged_stay_as_they_are_and_are_not_tried_again() -> None:
    buffer = make(Clock(), max_rows=1000)
    buffer.offer({"logs": batch(2)})
    buffer.offer({"logs": pa.record_batch({"y": pa.array(["a", "b"])})})
    assert not buffer.compact("logs", min_batches=2)
    with buffer.changed:
        assert not buffer.compactable("logs", min_batches=2)  # the flush thread does not spin on it
    drained = buffer.take("logs", force=True)
    assert drained is not None and len(drained.batches) == 2 and drained.rows == 4


def test_a_hold_refuses_every_export_with_its_reason_until_lifted_and_flushes_what_is_held() -> None:
    buffer = make(Clock(), retry_after_s=1.5)
    buffer.offer({"logs": batch(10)})
    with buffer.changed:
        assert buffer.take("logs") is None, "below every limit"
    buffer.hold("process memory above its limit")
    with buffer.changed:
        drained = buffer.take("logs")
    assert drained is not None and drained.reason == "pressure"
    assert not buffer.accepting()
    with pytest.raises(BufferFullError) as refused:
        buffer.admit()
    assert str(refused.value) == "process memory above its limit"
    assert refused.value.retry_after_s == 1.5
    buffer.hold(None)
    assert buffer.accepting()
    buffer.admit()
