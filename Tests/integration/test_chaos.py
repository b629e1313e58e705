"""tools/chaos, the fault-injection harness (issue 17), on a short fixed set of seeds.

Each test runs the harness as a user would (`tools/chaos --json FILE ...`, as root: it makes
network namespaces, nftables rules and tmpfs mounts, and removes them all) against RUNNEL_BIN:
3 controllers and 3 brokers as hosts of their own, real confluent-kafka clients, and a nemesis
drawn from the seed.

- Three fixed seeds whose schedules hold partitions (halves, a bridge, one way), the active
  controller and partition leaders cut off, kill -9, SIGSTOP, a clock jump, a full disk and mixes
  of these must end with no anomaly at all: every acknowledged write read back once, in order, at
  the offset it was acknowledged with; consumers and the group never skip or go back; metadata
  never goes back; no node crashes.
- A checker is trusted once it has caught a planted bug: with unclean.leader.election.enable=true,
  a follower cut from its leader until it leaves the ISR and then the leader cut off and the
  other follower killed, the stale follower takes over and the harness must report lost writes.
- With RUNNEL_TEST_BROKEN_RULES=ackBeforeHighWatermark a broker acknowledges acks=all writes
  before the high watermark covers them: a leader cut from every other node while its clients
  still reach it must then lose acknowledged writes, and the harness must say so.

- With --txn, exactly-once copiers (transactions, read_committed, send_offsets_to_transaction)
  killed, stopped and started again with the same transactional.id while a leader is killed and
  another cut off: no record of an aborted transaction read read_committed, no input record copied
  twice or lost below the group's committed offset, no transaction left hanging. Its planted
  bug, a final read_committed read done read_uncommitted, must report aborted reads.

The faults are held 5-8 s with 3-5 s between them, so each 30 s run sees three; a run takes about
a minute with a debug build (55 s with a release build, --txn included).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nodes import REPO, runnel_bin
from util import is_runnel

pytestmark = pytest.mark.skipif(not is_runnel(), reason="the harness starts Runnel nodes itself")

CHAOS = REPO / "tools" / "chaos"
FIXED_SEEDS = [int(s) for s in os.environ.get("RUNNEL_CHAOS_SEEDS", "49,16,44").split(",")]
# The kinds are named (in this order) so that a kind added to the harness later does not change
# what these seeds draw: 49 = isolate-controller, clock, partition+disk; 16 = bridge, pause,
# one-way; 44 = kill, leader-controllers.
KINDS = "partition,isolate-controller,leader-controllers,isolate-leader,one-way,bridge,kill,pause,clock,disk,stale-follower,mix"
FAST = ["--nemesis", KINDS, "--seconds", "30", "--hold", "5,8", "--gap", "3,5", "--warmup", "4", "--rate", "500", "--quiet"]


def needs_root_and_tools():
    if os.geteuid() != 0:
        pytest.skip("tools/chaos needs root (network namespaces, nftables, tmpfs)")
    missing = [t for t in ("ip", "nft") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"tools/chaos needs {' and '.join(missing)} (tools/test installs iproute2 and nftables)")


def chaos(tmp_path: Path, *args: str, timeout: float = 900) -> tuple[dict, str]:
    needs_root_and_tools()
    out = tmp_path / "summary.json"
    p = subprocess.run([sys.executable, str(CHAOS), "--bin", str(runnel_bin()), "--out", str(tmp_path / "runs"),
                        "--json", str(out), *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    text = p.stdout + p.stderr
    assert out.exists(), f"tools/chaos wrote no summary (exit {p.returncode}):\n{text[-6000:]}"
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "chaos-" not in leftover, f"tools/chaos left namespaces behind:\n{leftover}"
    return json.loads(out.read_text()), text


def test_fixed_seeds_have_no_anomalies(tmp_path):
    runs = []
    for seed in FIXED_SEEDS:
        summary, text = chaos(tmp_path, "--runs", "1", "--seed", str(seed), *FAST)
        print(text)
        runs.append((seed, summary, text))
    for seed, summary, text in runs:
        assert summary["runs"] == 1 and summary["acked"] > 1000, f"seed {seed}: too little got through:\n{text[-4000:]}"
        assert not summary["errors"], f"seed {seed}: the run broke off: {summary['errors']}\n{text[-4000:]}"
        assert not summary["crashes"], f"seed {seed}: a node crashed:\n{text[-4000:]}"
        bad = {k: v for k, v in summary["anomalies"].items() if v}
        assert not bad, f"seed {seed}: anomalies {bad}; see {summary['reports']}\n{text[-4000:]}"
        assert not summary["failed_seeds"], f"seed {seed} failed:\n{text[-4000:]}"


# 25 = kill, isolate-leader; its copiers are killed twice and stopped once.
TXN_SEED = int(os.environ.get("RUNNEL_CHAOS_TXN_SEED", "25"))


def test_transactional_workload_has_no_anomalies(tmp_path):
    summary, text = chaos(tmp_path, "--runs", "1", "--seed", str(TXN_SEED), *FAST, "--txn")
    print(text)
    txn = summary["txn"]
    assert txn and txn["committed"] > 20 and txn["read_committed"] > 1000, f"too little got copied:\n{text[-4000:]}"
    assert txn["aborted"] > 0, f"no transaction was aborted (a tenth are, on purpose):\n{text[-4000:]}"
    assert not summary["errors"] and not summary["crashes"], f"the run broke off or a node crashed:\n{text[-4000:]}"
    bad = {k: v for k, v in summary["anomalies"].items() if v}
    assert not bad, f"anomalies {bad}; see {summary['reports']}\n{text[-4000:]}"


def test_aborted_reads_are_caught(tmp_path):
    summary, text = chaos(tmp_path, "--runs", "1", "--seed", "7", "--nemesis", "kill", "--seconds", "15",
                          "--warmup", "4", "--rate", "200", "--members", "0", "--no-metadata", "--quiet",
                          "--txn-read-uncommitted")
    print(text)
    assert summary["txn"]["aborted_records_in_log"] > 0, f"no aborted record in the log to read:\n{text[-4000:]}"
    assert summary["anomalies"]["aborted_read"] > 0, f"reading aborted records was not reported:\n{text[-4000:]}"


def test_unclean_leader_election_loses_acknowledged_writes(tmp_path):
    texts = []
    for seed in (11, 12, 13):       # one run has always been enough; three at most
        summary, text = chaos(tmp_path / str(seed), "--runs", "1", "--seed", str(seed), "--nemesis", "stale-follower",
                              "--unclean", "--seconds", "22", "--warmup", "4", "--rate", "500", "--members", "0",
                              "--no-metadata", "--quiet")
        print(text)
        texts.append(text)
        if summary["anomalies"]["lost"] > 0:
            return
    pytest.fail("unclean leader election lost no acknowledged write in 3 runs:\n" + "\n".join(t[-2000:] for t in texts))


def test_ack_before_high_watermark_is_caught(tmp_path):
    summary, text = chaos(tmp_path, "--runs", "1", "--seed", "5", "--nemesis", "isolate-leader",
                          "--broken", "ackBeforeHighWatermark", "--seconds", "18", "--warmup", "4", "--hold", "8,8",
                          "--rate", "500", "--members", "0", "--no-metadata", "--quiet")
    print(text)
    assert summary["anomalies"]["lost"] > 0, f"acks before the high watermark lost nothing:\n{text[-4000:]}"
