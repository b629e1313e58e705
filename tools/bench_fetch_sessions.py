"""tools/bench fetch-sessions: what incremental fetch sessions (KIP-227) save the broker, same run.

Starts one node (runnel format + runnel server in a temp dir, as the integration tests do),
creates a topic of P partitions (default 1,000) with one record in each, and drives it with a
raw-socket consumer (kwire, Fetch v12) that is caught up on every partition, so every fetch is
idle: the cost measured is that of asking, which is what sessions are for.

  full         N fetch rounds (default 2,000) naming all P partitions with session id 0 and epoch
               -1 (sessionless, what every fetch was before sessions); each answer names all P
  incremental  one full fetch with epoch 0 opens a session, then N incremental fetches naming
               no partition (nothing moved); each answer names none

Both use max_wait_ms=0 (answered at once) and one request in flight. The phases alternate for
--rounds rounds (default 3) so both see the same machine; for each it prints the broker's CPU
seconds per 1,000 fetch rounds (all its threads, from /proc), the client-side round trip and the
answer's size, and the ratio of the medians. Figures are printed, never checked.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from confluent_kafka import Producer  # noqa: E402

import kwire  # noqa: E402
import nodes  # noqa: E402
from benchlib import BenchError, cpu_seconds, create_topic  # noqa: E402


def fill(bootstrap: str, topic: str, partitions: int) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5, "log_level": 3})
    for i in range(partitions):
        p.produce(topic, value=b"x", partition=i)
    if p.flush(60):
        raise BenchError("records left unacknowledged after 60 s")


def phase(conn: kwire.Conn, pid: int, topic: str, partitions: int, rounds: int, incremental: bool) -> dict:
    parts = {topic: [kwire.FetchPart(p, 1) for p in range(partitions)]}
    if incremental:
        opened = conn.fetch(1, parts, session_id=0, session_epoch=0)
        if opened.error_code or not opened.session_id:
            raise BenchError(f"no session opened (error {opened.error_code})")
        session_id = opened.session_id
    else:
        full = kwire.fetch_request(1, parts, session_id=0, session_epoch=-1)
    answer_bytes = 0
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    for i in range(rounds):
        if incremental:
            conn.send(kwire.fetch_request(2, {}, session_id=session_id, session_epoch=i + 1))
        else:
            conn.send(full)
        payload = conn.recv_frame()
        if payload is None:
            raise BenchError("the broker closed the connection")
        answer_bytes = len(payload)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    if incremental:
        last = kwire.parse_fetch(payload)
        if last.error_code or last.session_id != session_id:
            raise BenchError(f"the session broke: error {last.error_code}, id {last.session_id}")
        # Close it, so the next round starts clean.
        conn.fetch(3, {}, session_id=session_id, session_epoch=-1)
    return {"cpu_per_1000": cpu / rounds * 1000, "rtt_ms": wall / rounds * 1000, "answer_bytes": answer_bytes}


def main(binary: Path, partitions: int, rounds_per_phase: int, rounds: int) -> int:
    with tempfile.TemporaryDirectory(prefix="runnel-bench-sessions-") as tmp:
        node = nodes.RunnelNode(Path(tmp) / "node", {}, binary=binary)
        print(f"tools/bench fetch-sessions: {node.binary}, {partitions} partitions, "
              f"{rounds_per_phase} fetch rounds per phase, {rounds} rounds", flush=True)
        try:
            node.start(60)
            topic = "bench-sessions"
            create_topic(node.bootstrap, topic, partitions, 120)
            fill(node.bootstrap, topic, partitions)
            results: dict[str, list[dict]] = {"full": [], "incremental": []}
            with kwire.Conn.to(node.bootstrap, timeout=30) as conn:
                # Warm up both paths (first reads of each partition, JIT-free but page-cache warm).
                phase(conn, node.pid, topic, partitions, 50, False)
                phase(conn, node.pid, topic, partitions, 50, True)
                for r in range(rounds):
                    for kind in ("full", "incremental"):
                        res = phase(conn, node.pid, topic, partitions, rounds_per_phase, kind == "incremental")
                        results[kind].append(res)
                        print(f"  round {r + 1} {kind:<11}: broker {res['cpu_per_1000']:.3f} CPU-s per 1,000 fetch "
                              f"rounds, round trip {res['rtt_ms']:.3f} ms, answer {res['answer_bytes']} B",
                              flush=True)
            if not node.is_alive():
                raise BenchError(f"the node exited during the run; log tail:\n{node.log_tail()}")
        except (BenchError, nodes.NodeError) as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return 1
        finally:
            node.close()
    med = {k: {f: statistics.median(x[f] for x in v) for f in v[0]} for k, v in results.items()}
    full, inc = med["full"], med["incremental"]
    print(f"\n{'':<12} {'CPU-s/1000 rounds':>18} {'round trip ms':>14} {'answer B':>9}")
    for kind in ("full", "incremental"):
        m = med[kind]
        print(f"{kind:<12} {m['cpu_per_1000']:>18.3f} {m['rtt_ms']:>14.3f} {m['answer_bytes']:>9.0f}")
    ratio = full["cpu_per_1000"] / inc["cpu_per_1000"] if inc["cpu_per_1000"] > 0 else float("inf")
    print(f"\nbroker CPU per fetch round, full / incremental: {ratio:.1f}x (medians of {rounds} rounds)")
    return 0
