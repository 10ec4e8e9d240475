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
    assert result["peak_rss_mib"] > 50 and result["bytes_per_item"] > 0 and result["commits_per_table_per_min"] > 0


@pytest.mark.integration
def test_load_harness_measures_the_rotel_ceiling_at_a_fixed_rate() -> None:
    result = run("traces", 100, seconds=1.0, settings=[], processes=1, threads=2, rate=2000, target="rotel")
    assert result["exit_code"] == 0
    assert result["codes"] == {"OK": result["accepted_items"] // 100}
    # Paced, not flat out: about 2,000 items a second were offered for one second.
    assert 1000 <= result["accepted_items"] <= 3000
