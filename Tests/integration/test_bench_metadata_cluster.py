"""`tools/bench metadata-scale --cluster` in miniature: 3 controller processes, 3 broker stand-ins
registered and kept alive through BrokerRegistration and BrokerHeartbeat, 20 topics of 10
partitions created straight on the controllers, snapshots every few KB, both failovers with the
old leader caught up again, a real broker catching up, and a stand-in fenced; every figure the
report prints is there and plausible. The figures themselves are not judged: benchmarks print,
they do not fail tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))

import bench_metadata_cluster  # noqa: E402
from nodes import runnel_bin  # noqa: E402
from util import is_runnel  # noqa: E402

pytestmark = pytest.mark.skipif(not is_runnel(), reason="starts Runnel processes of its own")


def test_bench_metadata_cluster_runs_every_phase(tmp_path, capsys):
    r = bench_metadata_cluster.bench_in(tmp_path, runnel_bin(), topics=20, per_topic=10, per_request=5, standins=3,
                                        sample=5, session_timeout_ms=3000, snapshot_bytes=3000)
    assert r["createPartitionsPerS"] > 0
    assert [c["id"] for c in r["controllers"]] == [1, 2, 3]
    for c in r["controllers"]:
        assert c["rssBytes"] > 0 and c["logBytes"] > 0
        assert c["snapshotFile"] is not None, "a snapshot every 3,000 bytes of records"
    # Every controller logs the snapshots it writes, with the image's size.
    for writes in r["snapshotWrites"].values():
        assert writes and all(w["ms"] >= 0 for w in writes)
        assert max(w["partitions"] for w in writes) > 0
    for how in ("stop", "kill9"):
        old, new = r[f"failover_{how}_leaders"]
        assert new is not None and old != new, f"{how}: the leader moved"
        assert r[f"standby_after_{how}_s"] is not None, f"{how}: the old leader caught up again"
        # It started again from its newest snapshot.
        assert r[f"standby_after_{how}_loads"], f"{how}: the restarted controller loaded a snapshot"
    assert r["brokerAnswersS"] <= r["brokerUnfencedS"]
    assert r["fenceSampleLed"] > 0 and r["fenceMovedS"] is not None
    bench_metadata_cluster.print_report(r)
    out = capsys.readouterr().out
    assert "leaderships off a silent stand-in" in out
    assert "failover, leader killed -9" in out
