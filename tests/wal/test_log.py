"""The write-ahead log on real files: append, recover, replay, torn tails, trimming, group commit, disk full."""

from __future__ import annotations

import errno
import os
import pathlib
import threading

import pytest

from otlp2parquet.config import WalSettings
from otlp2parquet.errors import WalError
from otlp2parquet.wal import WriteAheadLog
from otlp2parquet.wal.codec import HEADER, SEGMENT_MAGIC


def _wal(path: pathlib.Path, **settings: object) -> WriteAheadLog:
    return WriteAheadLog(path, WalSettings(**settings))


def _fill(wal: WriteAheadLog, n: int, size: int = 100) -> list[bytes]:
    payloads = [bytes([i % 251]) * size for i in range(n)]
    for i, p in enumerate(payloads):
        lsn = wal.append(("traces", "logs", "metrics")[i % 3], p)
        wal.sync(lsn)
    return payloads


def test_records_survive_a_restart_in_order(tmp_path: pathlib.Path) -> None:
    wal = _wal(tmp_path)
    wal.open(next_lsn=wal.recover() + 1)
    payloads = _fill(wal, 10)
    wal.close()
    again = _wal(tmp_path)
    assert again.recover() == 10
    records = list(again.replay(after=0))
    assert [r.lsn for r in records] == list(range(1, 11))
    assert [r.payload for r in records] == payloads
    assert [r.signal for r in records[:3]] == ["traces", "logs", "metrics"]
    assert [r.lsn for r in again.replay(after=7)] == [8, 9, 10]


def test_a_torn_tail_is_cut_and_appending_continues_after_it(tmp_path: pathlib.Path) -> None:
    wal = _wal(tmp_path)
    wal.open(1)
    _fill(wal, 5)
    wal.close()
    (segment,) = wal.segments()
    size = segment.stat().st_size
    with segment.open("r+b") as f:  # a crash in the middle of the last record
        f.truncate(size - 30)
    again = _wal(tmp_path)
    assert again.recover() == 4
    assert segment.stat().st_size == size - 100 - HEADER.size
    again.open(5)
    again.sync(again.append("logs", b"after the crash"))
    again.close()
    final = _wal(tmp_path)
    final.recover()
    assert [(r.lsn, r.payload[:5]) for r in final.replay(0)][-2:] == [(4, bytes([3]) * 5), (5, b"after")]


def test_a_corrupted_record_ends_the_valid_log(tmp_path: pathlib.Path) -> None:
    wal = _wal(tmp_path)
    wal.open(1)
    _fill(wal, 3)
    wal.close()
    (segment,) = wal.segments()
    data = bytearray(segment.read_bytes())
    data[len(SEGMENT_MAGIC) + HEADER.size + 100 + HEADER.size + 50] ^= 0xFF  # a bit flip in record 2's payload
    segment.write_bytes(bytes(data))
    again = _wal(tmp_path)
    assert again.recover() == 1
    assert [r.lsn for r in again.replay(0)] == [1]


def test_a_foreign_file_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / f"{1:020d}.wal").write_bytes(b"not a wal segment")
    with pytest.raises(WalError, match="not a WAL segment"):
        _wal(tmp_path).recover()


def test_segments_roll_and_are_trimmed_only_when_committed(tmp_path: pathlib.Path) -> None:
    wal = _wal(tmp_path, segment_bytes=1000)
    wal.open(1)
    _fill(wal, 30)  # ~113 bytes a record: about 8 per segment
    segments = wal.segments()
    assert len(segments) >= 4
    firsts = [int(p.stem) for p in segments]
    assert wal.trim(committed_through=firsts[1]) == 1, "only segments wholly at or below the mark go"
    assert [int(p.stem) for p in wal.segments()] == firsts[1:]
    assert wal.trim(committed_through=30) == len(firsts) - 2, "never the segment being written"
    wal.close()
    again = _wal(tmp_path)
    assert again.recover() == 30, "the last segment remembers how far LSNs went"


def test_concurrent_appends_share_fsyncs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        nonlocal calls
        calls += 1
        real_fsync(fd)

    wal = _wal(tmp_path)
    wal.open(1)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    barrier = threading.Barrier(8)

    def writer() -> None:
        barrier.wait()
        for _ in range(50):
            wal.sync(wal.append("logs", b"x" * 2000))

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wal.close()
    assert wal.last_lsn == 400
    assert calls < 400, f"{calls} fsyncs for 400 acknowledged appends"
    again = _wal(tmp_path)
    assert again.recover() == 400 and len(list(again.replay(0))) == 400


def test_disk_full_raises_and_leaves_no_partial_record(tmp_path: pathlib.Path) -> None:
    wal = _wal(tmp_path)
    wal.open(1)
    _fill(wal, 2)
    real_write = wal._file.write  # type: ignore[union-attr]
    calls = {"n": 0}

    def short_then_enospc(data: memoryview) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(data[:10])  # a short write first...
        raise OSError(errno.ENOSPC, "No space left on device")  # ...then the disk is full

    wal._file.write = short_then_enospc  # type: ignore[method-assign,union-attr]
    with pytest.raises(WalError, match="No space left"):
        wal.append("logs", b"y" * 500)
    calls["n"] = 0  # fail a second time in a row: the cut must go back to the last good record, not forward
    with pytest.raises(WalError, match="No space left"):
        wal.append("logs", b"z" * 500)
    wal._file.write = real_write  # type: ignore[method-assign,union-attr]
    wal.sync(wal.append("logs", b"space again"))
    wal.close()
    again = _wal(tmp_path)
    assert again.recover() == 3
    assert [r.payload for r in again.replay(0)][-1] == b"space again"


def test_a_sync_whose_segment_is_rolled_meanwhile_still_syncs(tmp_path: pathlib.Path) -> None:
    # Another handler's append can fill the segment and roll it (closing its file) between the moment a sync
    # lets go of its lock and its fsync. The sync used to fsync the closed file and raise ValueError, and its
    # export was answered UNAVAILABLE though its record was buffered: committed twice after the retry.
    wal = _wal(tmp_path, segment_bytes=1000)
    wal.open(1)
    first = wal.append("logs", b"a" * 600)
    real_release, appended = wal._synced.release, []

    def release_then_roll() -> None:
        real_release()
        if not appended:  # once: a second 600-byte record does not fit in the segment, so it rolls
            roller = threading.Thread(target=lambda: appended.append(wal.append("logs", b"b" * 600)))
            roller.start()
            roller.join()

    wal._synced.release = release_then_roll  # type: ignore[method-assign]
    segments = len(wal.segments())
    wal.sync(first)
    assert appended == [2] and len(wal.segments()) == segments + 1, "the append rolled the segment"
    wal.sync(2)
    wal.close()
    again = _wal(tmp_path)
    assert again.recover() == 2
    assert [r.payload for r in again.replay(0)] == [b"a" * 600, b"b" * 600]
