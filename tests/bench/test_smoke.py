"""The benchmark harnesses still run (no timing is asserted: numbers belong in bench/RESULTS.md)."""

from __future__ import annotations

import pytest

from bench.convert_bench import rate
from bench.load import run
from bench.workload import requests
from otlp2parquet.convert import convert_logs


def test_conversion_benchmark_measures_a_rate() -> None:
    best, median = rate(convert_logs, list(requests("logs", 100, 2)), 100, seconds=0.05)
    assert best >= median > 0


@pytest.mark.integration
def test_load_harness_commits_every_acknowledged_item() -> None:
    result = run("logs", 200, seconds=1.0, settings=["buffer.max_age_s=0.5"], processes=1, threads=2)
    assert result["exit_code"] == 0
    assert result["codes"].get("OK", 0) > 0
    assert result["committed_rows"] == result["accepted_items"]
