"""`tools/bench partitions` in miniature: a 3-controller, 3-broker cluster with 3 topics of 4
partitions goes through every phase of the bench (creation with the propagation watcher, the
footprint, kill -9 of the broker leading most, its restart), and every figure the report prints
is there and plausible. The figures themselves are not judged: benchmarks print, they do not
fail tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import bench_partitions  # noqa: E402
from nodes import runnel_bin  # noqa: E402
from util import is_runnel  # noqa: E402

pytestmark = pytest.mark.skipif(not is_runnel(), reason="starts Runnel processes of its own")


def test_bench_partitions_runs_every_phase(tmp_path, capsys):
    r = bench_partitions.bench_in(tmp_path, runnel_bin(), topics=3, per_topic=4, session_timeout_ms=3000,
                                  poll_ms=5, settle_timeout_s=120)
    # Every topic is offered to the idle watcher after the first; none may time out.
    assert r["propagationSamples"] >= 1 and r["propagationTimeouts"] == 0
    assert 0 <= r["propagationMedianMs"] <= r["propagationP99Ms"]
    assert sorted(r["brokers"]) == [4, 5, 6]
    for b in r["brokers"].values():
        assert b["replicas"] == 12, "RF 3 on 3 brokers: every broker hosts every partition"
        assert b["fds"] > 0 and b["rssBytes"] > 0
    assert sum(b["leaders"] for b in r["brokers"].values()) == 12
    assert r["victimLeaders"] == max(b["leaders"] for b in r["brokers"].values())
    assert r["leadershipMoveS"] > 0
    assert r["restartReadyS"] <= r["restartUnfencedS"]
    assert r["restartIsrFullS"] is not None
    bench_partitions.print_report(r)
    out = capsys.readouterr().out
    assert "propagation to all brokers, p99" in out
    assert f"leaderships off killed broker {r['victim']}" in out
