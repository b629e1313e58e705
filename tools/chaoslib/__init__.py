"""chaoslib: the parts of tools/chaos, a Jepsen-style fault-injection harness for Runnel.

  hosts.py     network namespaces (one per node, one for the clients, one for the harness's own
               queries) on a bridge, nftables cuts, tmpfs data dirs; cleanup and the stale sweep
  wire.py      Metadata and DescribeConfigs over a raw socket, so a read asks exactly one broker
  cluster.py   the nodes: server.properties, format, start/kill -9/SIGSTOP/restart inside their
               namespaces, libfaketime for clock jumps, who leads what
  workload.py  the client processes (run inside the clients' namespace): idempotent producers,
               a reader of every partition, consumer-group members, the metadata workload, the
               final read, and with --txn exactly-once copiers and their final read; each
               writes its history as JSON lines
  nemesis.py   the fault schedule, drawn from a seed, and how each fault starts and heals
  checker.py   the history checker (lost, duplicated, reordered, inconsistent offsets, consumer,
               group and metadata anomalies, aborted reads and the transactional workload's
               duplicated, lost and reordered copies, unavailability per fault kind)
  report.py    the self-contained HTML report of a run (inline SVG timeline)
  runner.py    one run from start to cleanup, and the summary of several
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_INTEGRATION = str(REPO / "Tests" / "integration")
if _INTEGRATION not in sys.path:
    sys.path.insert(0, _INTEGRATION)   # kwire.py: the Kafka frame helpers
