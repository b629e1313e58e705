"""tools/bench metadata-scale: the metadata plane at a million partitions, in one process.

Runs `runnel bench metadata-scale`, an in-process load generator over the real code paths:
  replay    an image of N partitions (default 10,000 topics x 100 partitions, RF 3 over 30
            registered brokers) built by replaying RegisterBroker, Topic and Partition records
            through MetadataDelta, one delta per commit: what a standby controller or broker does
  write     the image written by SQLiteSnapshotStorage (the snapshot writer of the Raft driver):
            SQLite, temp file + fsync + rename, content checksum
  load      the file read back and verified into an image by the same storage (start-up and
            FetchSnapshot path); it must equal the replayed image
  failover  what a standby does with that image on becoming the active controller
            (MetadataQuorum: reset to the committed image, fold in the new epoch's commit,
            broker sessions, the first session check, every broker's first heartbeat); the Raft
            election itself does not depend on the image and is measured by `tools/bench quorum`
  fence     one broker's session expires: fencing it and moving its leaderships (records made
            and replayed)
  memory    VmRSS of the process after replay and after load (freed heap trimmed), per partition

Each figure is printed with its target (issue 21); benchmarks print, they never fail.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

from benchlib import report_line


def run_one(runnel: Path, topics: int, per_topic: int, rf: int, brokers: int, per_commit: int) -> dict:
    cmd = [str(runnel), "bench", "metadata-scale", "--json", "--topics", str(topics),
           "--partitions-per-topic", str(per_topic), "--replication-factor", str(rf),
           "--brokers", str(brokers), "--records-per-commit", str(per_commit)]
    started = time.monotonic()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report = json.loads(out.stdout)
    report["wallSeconds"] = time.monotonic() - started
    return report


def print_report(r: dict) -> None:
    n = r["partitions"]
    print(f"metadata scale: {n:,} partitions ({r['topics']:,} topics, RF {r['replicationFactor']}, "
          f"{r['brokers']} brokers), {r['records']:,} records, {r.get('buildConfiguration', 'unknown')} build")

    line = functools.partial(report_line, width=34)

    line("replay (standby/broker path)", f"{r['replayMs']:,.0f} ms",
         f"{r['replayRecordsPerSecond']:,.0f} records/s")
    line("snapshot write", f"{r['snapshotWriteMs']:,.0f} ms",
         f"target < 5,000 ms   file {r['snapshotBytes'] / 1e6:,.1f} MB ({r['snapshotBytes'] / n:,.0f} B/partition)")
    line("snapshot load", f"{r['snapshotLoadMs']:,.0f} ms", "target < 5,000 ms")
    line("controller failover (image work)", f"{r['failoverMs']:,.1f} ms",
         f"target < 1,000 ms   reset {r['failoverResetMs']:.1f}, sessions {r['failoverSessionsMs']:.1f}, "
         f"first heartbeats of {r['brokers']} brokers {r['failoverHeartbeatsMs']:.1f}")
    line("fence one broker", f"{r['fenceBrokerMs']:,.1f} ms", f"{r['leadersMoved']:,} leaderships moved")
    line("memory, loaded image", f"{r['loadedImageBytesPerPartition']:,.0f} B/partition", "goal < 2,048")
    line("memory, replayed image", f"{r['replayedImageBytesPerPartition']:,.0f} B/partition",
         f"VmRSS {r['rssBaselineBytes'] / 2**20:,.0f} -> {r['rssAfterReplayBytes'] / 2**20:,.0f} -> "
         f"{r['rssAfterLoadBytes'] / 2**20:,.0f} MiB")
    line("loaded image equals replayed", str(r["verified"]).lower())
    line("whole run", f"{r['wallSeconds']:,.1f} s")


def main(runnel: Path, sizes: list[int], per_topic: int, rf: int, brokers: int, per_commit: int,
         as_json: bool) -> int:
    if not runnel.exists():
        print(f"tools/bench metadata-scale: {runnel} does not exist; build it with "
              "`swift build -c release --product runnel`", file=sys.stderr)
        return 1
    reports = []
    for n in sizes:
        topics = max(1, n // per_topic)
        r = run_one(runnel, topics, per_topic, rf, brokers, per_commit)
        # The binary says how it was compiled (`#if DEBUG`), whatever its path.
        # (A binary older than the field says nothing: "unknown".)
        configuration = r.get("buildConfiguration", "unknown")
        if configuration != "release":
            print(f"tools/bench metadata-scale: {runnel} is not a release build ({configuration}); "
                  "figures are not comparable with a release build's", file=sys.stderr)
        print_report(r)
        reports.append(r)
    if as_json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    return 0 if all(r["verified"] for r in reports) else 1
