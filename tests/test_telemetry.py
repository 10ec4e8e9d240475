"""Telemetry parts that need no server: garbage-collection pauses."""

from __future__ import annotations

import gc

from otlp2parquet.telemetry import Telemetry


def test_collections_are_timed_until_watching_stops() -> None:
    telemetry = Telemetry()

    def full_collections() -> float:
        return telemetry.registry.get_sample_value("otlp2parquet_gc_pause_seconds_count", {"generation": "2"}) or 0.0

    stop = telemetry.watch_collections()
    try:
        gc.collect(2)
        gc.collect(2)
        watched = full_collections()
        assert watched >= 2, "each collection observed (an automatic one may add to them)"
    finally:
        stop()
    gc.collect(2)
    assert full_collections() == watched, "no longer watched"
