"""The history checker, in the spirit of Jepsen's Kafka workload.

Input: every client's events (workload.py) and the harness's own (faults, node kills and starts).
Offsets of the main topic are contiguous (no compaction, no transactions), which every rule
below leans on; the transactional workload has topics of its own.

  lost                  a write acknowledged (acks=all) whose value the final read, from the
                        beginning of its partition to the end offset, never returned
  duplicated            a value found at two positions (partition, offset) by any read, unless
                        the client itself re-sent it: its producer began an epoch bump (or a
                        producer id reset) after sending it and before any acknowledgement of it.
                        librdkafka then re-sends every unacknowledged write under the new epoch,
                        and no broker can tell such a copy from a new write (idempotence holds
                        within one epoch; librdkafka #4953, seen on Kafka alike). Those are
                        reported apart as client re-sends, with the bump's reason, from the
                        producers' librdkafka idempotence log (debug=eos)
  reordered             in the final read of a partition, a producer's values out of the order it
                        sent them (an idempotent producer keeps order within a partition)
  inconsistent_offsets  one position read (or acknowledged) with two different values, or an
                        acknowledged value found at another position than its acknowledgement said
                        (an acknowledgement without an offset, which librdkafka gives a retried
                        batch it knows was written, says nothing about positions)
  consumer              the reader assigned every partition skipped an offset or went back
  group                 a group member's polls of a partition within one assignment skipped or went
                        back; a member's first poll after an assignment started past every commit
                        attempted so far (records nobody consumed were skipped) or before a commit
                        already acknowledged (the group lost a commit); a commit acknowledged with a
                        lower offset than one acknowledged before it started; the group's final
                        committed offset behind an acknowledged commit
  metadata              a broker that showed a topic and then did not (no delete asked), showed
                        fewer partitions than before, a config value older than one it had shown,
                        a deleted topic again, or that did not agree with the acknowledged
                        operations once everything healed

The transactional workload (--txn): exactly-once copiers copy an input topic's partition p to
the output's partition p, each copy's value "<input value>@<transaction>" unique to the
transaction that wrote it. A transaction is committed (commit_transaction returned), aborted
(abort_transaction returned), never committed (no commit was asked: the copier was killed or
failed before) or unknown (a commit was asked and its answer never came). From the final reads
of the input, of the output read_committed and read_uncommitted, and of the copiers' group's
committed offsets:

  aborted_read          read_committed returned a record of an aborted transaction, of one never
                        asked to commit, or of no transaction the copiers began
  txn_duplicated        read_committed returned two records copied from one input record (one
                        position of the input: a value the feed's producer wrote twice, re-sent
                        across an epoch bump, is two input records, each copied once)
  txn_lost              a record of a committed transaction missing from read_committed (or of an
                        unknown one whose other records are there); an input record below the
                        group's final committed offset with no copy in read_committed; a copy of
                        an input record at or past that offset (the offsets its transaction
                        committed were lost); an acknowledged input write missing from the input
  txn_order             in an output partition read_committed, copies not in their input records'
                        order, or a transaction's records before those of one that committed
                        before it began
  txn_hanging           once every copier stopped and transaction.timeout.ms passed, the
                        output's last stable offset still behind its high watermark: a
                        transaction nobody ended

Unavailability: for each fault, the longest time between two successive acknowledgements (any
partition) among those overlapping the fault or the 10 s after it healed; per fault kind the
median and the maximum over its faults. A fault aimed at brokers (pause, kill, ...) also splits
that gap into the partitions a target led when it struck ("led") and the others ("followed"): a
paused follower should hold writes up only until it leaves the ISR, a paused leader until the
clients give up on their requests in flight to it (request.timeout.ms). "after_heal" is the time
from a fault's heal until every partition had an acknowledged write again: how soon writes come
back after a fault nothing can write through (random halves leaving one broker with the
controllers' majority, below min.insync.replicas=2).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path

TXN_ANOMALY_KINDS = ["aborted_read", "txn_duplicated", "txn_lost", "txn_order", "txn_hanging"]
ANOMALY_KINDS = ["lost", "duplicated", "reordered", "inconsistent_offsets", "consumer", "group", "metadata",
                 *TXN_ANOMALY_KINDS]
RECOVERY_GRACE_S = 10.0
# A gap that began this soon before a fault started is that fault's: its writes were in flight.
GAP_SLACK_S = 1.0
MAX_EXAMPLES = 20


def load(paths: list[Path]) -> list[dict]:
    events = []
    for p in paths:
        try:
            with open(p) as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue      # a line cut short by a kill -9
                    ev["src"] = p.stem
                    events.append(ev)
        except FileNotFoundError:
            pass
    events.sort(key=lambda e: e["t"])
    return events


class Checker:
    def __init__(self, events: list[dict], faults: list[dict], t0: float):
        self.events = events
        self.faults = faults           # Fault.to_json() dicts (times relative to t0)
        self.t0 = t0
        self.anomalies: dict[str, list[dict]] = {k: [] for k in ANOMALY_KINDS}
        # Duplicates the client made by re-sending across an epoch bump (not counted as anomalies).
        self.client_resends: list[dict] = []
        self.by_type: dict[str, list[dict]] = defaultdict(list)
        for e in events:
            self.by_type[e["e"]].append(e)

    # -- helpers ----------------------------------------------------------------------------

    def rel(self, t: float) -> float:
        return round(t - self.t0, 3)

    def faults_near(self, t: float, before: float = 15, after: float = 5) -> list[str]:
        r = t - self.t0
        out = []
        for f in self.faults:
            s = f.get("started_at")
            if s is None:
                continue
            e = f.get("healed_at") or s
            if s <= r + after and e >= r - before:
                out.append(f"{f.get('label') or f['kind']} [{s:.1f}s-{e:.1f}s] {f.get('desc', '')}")
        return out

    def client_bump_resending(self, v: str, send: dict | None, acked_t: float | None) -> dict | None:
        """The epoch bump (or producer id reset) of v's producer that re-sent v, if there was one:
        begun after v was sent and before any acknowledgement of it. librdkafka re-sends every
        write it holds unacknowledged under the new epoch's sequence numbers, and a broker cannot
        tell such a write from a new one (idempotence holds within one producer epoch), so a
        copy already written before the bump stays and the re-sent one is added: librdkafka
        #4953, which Kafka's brokers show the same way."""
        if send is None:
            return None
        prefix = v[: len(v) - len(v.lstrip("abcdefghijklmnopqrstuvwxyz"))]
        for e in self.by_type["client-eos"]:
            if e.get("p") != send["p"] or e.get("vp", "p") != prefix or e["t"] < send["t"]:
                continue
            if acked_t is not None and e["t"] > acked_t:
                break
            msg = e.get("msg", "")
            if e.get("fac") == "DRAIN" and msg.startswith("Beginning partition drain") and ("epoch bump" in msg or " reset " in msg):
                return {"t": self.rel(e["t"]), "reason": msg.partition("in-flight requests: ")[2] or msg}
        return None

    def add(self, kind: str, what: str, t: float, records: list) -> None:
        self.anomalies[kind].append({"what": what, "t": self.rel(t), "records": records, "faults": self.faults_near(t)})

    # -- the checks -------------------------------------------------------------------------

    def run(self) -> dict:
        sends = {}
        for e in self.by_type["send"]:
            sends[f"p{e['p']}-{e['n']}"] = e
        acks: dict[str, list[dict]] = defaultdict(list)
        for e in self.by_type["ack"]:
            acks[e["v"]].append(e)
        final = self.by_type["final"]
        final_done = (self.by_type["final-done"] or [None])[-1]
        final_complete = bool(final_done and final_done.get("complete"))

        # every observation of a position: (partition, offset) -> {value: [(source, t)]}
        at: dict[tuple[int, int], dict[str, list]] = defaultdict(lambda: defaultdict(list))
        where: dict[str, set] = defaultdict(set)
        # An idempotent producer may learn that a retried batch was written without learning
        # where (librdkafka reports such a delivery with no offset, as when a later batch of the
        # same producer was acknowledged first): such an ack counts for lost and duplicated
        # writes, not for offsets.
        for e in self.by_type["ack"]:
            if e["o"] is not None:
                at[(e["pt"], e["o"])][e["v"]].append(("ack", e["t"]))
        for src, evs in (("read", self.by_type["read"]), ("poll", self.by_type["poll"]), ("final", final)):
            for e in evs:
                at[(e["pt"], e["o"])][e["v"]].append((src if src != "poll" else f"poll {e['m']}", e["t"]))
                where[e["v"]].add((e["pt"], e["o"]))

        final_values = {}
        for e in final:
            final_values.setdefault(e["v"], (e["pt"], e["o"]))

        # lost
        if final_complete:
            for v, evs in acks.items():
                if v not in final_values:
                    a = evs[0]
                    s = sends.get(v)
                    there = list(at.get((a["pt"], a["o"]), {}).keys())
                    self.add("lost", f"{v} acknowledged at {a['pt']}:{a['o']} is not in the final read", a["t"], [
                        {"send_t": self.rel(s["t"]) if s else None, "ack_t": self.rel(a["t"]), "partition": a["pt"],
                         "offset": a["o"], "final_at_that_offset": [x for x in there if x != v][:3],
                         "final_end_offset": (final_done or {}).get("hw", {}).get(str(a["pt"]))}])

        # duplicated (or re-sent by the client across an epoch bump)
        first_ack = {v: min(a["t"] for a in evs) for v, evs in acks.items()}
        for v, pos in where.items():
            if len(pos) > 1:
                t = min(t for p in pos for _, t in at[p][v])
                records = [{"position": list(p), "seen_by": sorted({s for s, _ in at[p][v]})} for p in sorted(pos)]
                bump = self.client_bump_resending(v, sends.get(v), first_ack.get(v))
                if bump is not None:
                    self.client_resends.append({"what": f"{v} at {len(pos)} positions: {sorted(pos)}", "t": self.rel(t),
                                                "records": records, "bump": bump, "faults": self.faults_near(t)})
                else:
                    self.add("duplicated", f"{v} at {len(pos)} positions: {sorted(pos)}", t, records)

        # inconsistent offsets
        for pos, vals in at.items():
            if len(vals) > 1:
                t = min(t for obs in vals.values() for _, t in obs)
                self.add("inconsistent_offsets", f"{pos[0]}:{pos[1]} read as {len(vals)} values: {sorted(vals)[:4]}", t,
                         [{"value": v, "seen_by": sorted({s for s, _ in obs})} for v, obs in vals.items()])
        for v, evs in acks.items():
            a = evs[0]
            fv = final_values.get(v)
            if fv is not None and a["o"] is not None and fv != (a["pt"], a["o"]) and len(where[v]) == 1:
                self.add("inconsistent_offsets", f"{v} acknowledged at {a['pt']}:{a['o']} but found at {fv[0]}:{fv[1]}",
                         a["t"], [{"ack": [a["pt"], a["o"]], "final": list(fv)}])

        # reordered (final read, per partition, per producer)
        dup_values = {v for v, pos in where.items() if len(pos) > 1}
        per_part: dict[int, list] = defaultdict(list)
        for e in final:
            per_part[e["pt"]].append(e)
        for p, evs in per_part.items():
            evs.sort(key=lambda e: e["o"])
            last: dict[str, tuple[int, int]] = {}
            for e in evs:
                v = e["v"]
                if v in dup_values or "-" not in v:
                    continue
                prod, _, n = v.partition("-")
                try:
                    n = int(n)
                except ValueError:
                    continue
                prev = last.get(prod)
                if prev is not None and n < prev[0]:
                    self.add("reordered", f"{v} at {p}:{e['o']} after {prod}-{prev[0]} at {p}:{prev[1]}", e["t"],
                             [{"partition": p, "earlier_offset": prev[1], "earlier_value": f"{prod}-{prev[0]}",
                               "offset": e["o"], "value": v}])
                if prev is None or n > prev[0]:
                    last[prod] = (n, e["o"])

        self.check_reader()
        self.check_group()
        self.check_metadata()
        txn = self.check_txn()
        if txn is not None:
            final_complete = final_complete and txn["complete"]

        return {
            "acked": len(acks),
            "sent": len(sends),
            "failed": len(self.by_type["fail"]),
            "final_read": len(final),
            "final_complete": final_complete,
            "anomalies": {k: len(v) for k, v in self.anomalies.items()},
            "client_resends": len(self.client_resends),
            "client_resend_examples": self.client_resends[:MAX_EXAMPLES],
            "examples": {k: v[:MAX_EXAMPLES] for k, v in self.anomalies.items() if v},
            "unavailability": self.unavailability(),
            "txn": txn,
        }

    def check_reader(self) -> None:
        last: dict[tuple[str, int], dict] = {}
        for e in self.by_type["read"]:
            key = (e["src"], e["pt"])
            prev = last.get(key)
            if prev is None:
                if e["o"] != 0:
                    self.add("consumer", f"reader's first record of partition {e['pt']} is at offset {e['o']}, not 0", e["t"],
                             [{"partition": e["pt"], "offset": e["o"], "value": e["v"]}])
            elif e["o"] != prev["o"] + 1:
                what = "skipped" if e["o"] > prev["o"] + 1 else "went back"
                self.add("consumer", f"reader {what} in partition {e['pt']}: {prev['o']} then {e['o']}", e["t"],
                         [{"partition": e["pt"], "previous": [prev["o"], prev["v"], self.rel(prev["t"])],
                           "next": [e["o"], e["v"], self.rel(e["t"])]}])
            last[key] = e

    def check_group(self) -> None:
        attempted: dict[int, list[tuple[float, int]]] = defaultdict(list)   # partition -> (t, offset)
        acked: dict[int, list[tuple[float, float, int, str]]] = defaultdict(list)   # (start, ack, offset, member)
        starts: dict[tuple[str, int], float] = {}
        for e in self.by_type["commit-start"]:
            starts[(e["m"], e["a"])] = e["t"]
            for p, o in e["offsets"].items():
                attempted[int(p)].append((e["t"], o))
        last_start: dict[str, float] = {}
        for e in sorted(self.by_type["commit-start"] + self.by_type["commit"], key=lambda e: e["t"]):
            if e["e"] == "commit-start":
                last_start[e["m"]] = e["t"]
            else:
                for p, o in e["offsets"].items():
                    acked[int(p)].append((last_start.get(e["m"], e["t"]), e["t"], o, e["m"]))
        assign_t: dict[tuple[str, int], float] = {}
        for e in self.by_type["assign"]:
            assign_t[(e["m"], e["a"])] = e["t"]

        # polls within an assignment
        last: dict[tuple[str, int, int], dict] = {}
        for e in self.by_type["poll"]:
            key = (e["m"], e["a"], e["pt"])
            prev = last.get(key)
            p = e["pt"]
            if prev is None:
                at_assign = assign_t.get((e["m"], e["a"]), e["t"])
                tried = [o for t, o in attempted[p] if t <= e["t"]]
                ceiling = max(tried, default=0)
                if e["o"] > ceiling:
                    self.add("group", f"{e['m']} started partition {p} at {e['o']}, past every commit attempted ({ceiling})",
                             e["t"], [{"member": e["m"], "assignment": e["a"], "partition": p, "first_offset": e["o"],
                                       "highest_attempted_commit": ceiling}])
                floor = max((o for _, ack_t, o, _ in acked[p] if ack_t <= at_assign), default=0)
                if e["o"] < floor:
                    self.add("group", f"{e['m']} started partition {p} at {e['o']}, before the acknowledged commit {floor}",
                             e["t"], [{"member": e["m"], "assignment": e["a"], "partition": p, "first_offset": e["o"],
                                       "acknowledged_commit": floor, "assigned_t": self.rel(at_assign)}])
            elif e["o"] != prev["o"] + 1:
                what = "skipped" if e["o"] > prev["o"] + 1 else "went back"
                self.add("group", f"{e['m']} {what} in partition {p} within assignment {e['a']}: {prev['o']} then {e['o']}",
                         e["t"], [{"member": e["m"], "assignment": e["a"], "partition": p,
                                   "previous": [prev["o"], prev["v"]], "next": [e["o"], e["v"]]}])
            last[key] = e

        # commits going back
        for p, cs in acked.items():
            cs.sort(key=lambda c: c[1])
            for i, (start, ack, o, m) in enumerate(cs):
                before = [c for c in cs[:i] if c[1] < start]
                if before:
                    top = max(before, key=lambda c: c[2])
                    if o < top[2]:
                        self.add("group", f"commit of partition {p} at {o} by {m} after {top[2]} by {top[3]} was acknowledged",
                                 ack, [{"partition": p, "offset": o, "member": m, "earlier": top[2], "earlier_member": top[3]}])
        final = (self.by_type["group-committed"] or [None])[-1]
        if final is not None:
            for p, cs in acked.items():
                top = max(c[2] for c in cs)
                got = final["offsets"].get(str(p), final["offsets"].get(p))
                if got is None or got < top:
                    self.add("group", f"final committed offset of partition {p} is {got}, behind the acknowledged {top}",
                             final["t"], [{"partition": p, "final_committed": got, "acknowledged": top}])

    def check_metadata(self) -> None:
        ops = {e["id"]: e for e in self.by_type["md-op"]}
        done = {e["id"]: e for e in self.by_type["md-done"]}
        deletes_invoked: dict[str, float] = {}
        deletes_acked: dict[str, float] = {}
        for i, op in ops.items():
            if op["op"] == "delete":
                deletes_invoked.setdefault(op["topic"], op["t"])
                d = done.get(i)
                if d and d["ok"]:
                    deletes_acked.setdefault(op["topic"], d["t"])
        seen: dict[tuple[int, str], tuple[float, int]] = {}        # (broker, topic) -> (t, partitions)
        gone_after_delete: set[tuple[int, str]] = set()
        for e in self.by_type["md-read"]:
            if not e.get("ok"):
                continue
            b, topics = e["b"], e["topics"]
            for name, n in topics.items():
                key = (b, name)
                if key in gone_after_delete:
                    self.add("metadata", f"broker {b} shows {name} again after it was deleted and gone", e["t"],
                             [{"broker": b, "topic": name, "delete_acked_t": self.rel(deletes_acked[name])}])
                    gone_after_delete.discard(key)
                prev = seen.get(key)
                if prev and n < prev[1] and deletes_invoked.get(name, float("inf")) > e["t"]:
                    self.add("metadata", f"broker {b} shows {name} with {n} partitions after {prev[1]}", e["t"],
                             [{"broker": b, "topic": name, "before": prev[1], "now": n, "before_t": self.rel(prev[0])}])
                seen[key] = (e["t"], n)
            for (bb, name), (t_seen, _) in list(seen.items()):
                if bb != b or name in topics:
                    continue
                if deletes_invoked.get(name, float("inf")) > e["t"]:
                    self.add("metadata", f"broker {b} showed {name} and then did not, with no delete asked", e["t"],
                             [{"broker": b, "topic": name, "last_seen_t": self.rel(t_seen)}])
                elif name in deletes_acked and e["t0"] > deletes_acked[name]:
                    gone_after_delete.add((b, name))
                del seen[(bb, name)]
        writes = self.config_writes(ops, done)
        shown: dict[tuple[int, str], tuple[float, int]] = {}     # (broker, topic) -> (t, value) last shown
        for e in self.by_type["cfg-read"]:
            if not e.get("ok"):
                continue
            for name, v in e["values"].items():
                key = (e["b"], name)
                prev = shown.get(key)
                if prev and prev[1] != v and self.config_precedes(writes.get(name, {}), v, prev[1]):
                    self.add("metadata", f"broker {e['b']} shows {name} retention.ms={v} after {prev[1]}, "
                             f"which was written after {v} was acknowledged", e["t"],
                             [{"broker": e["b"], "topic": name, "before": prev[1], "now": v, "before_t": self.rel(prev[0])}])
                shown[key] = (e["t"], v)

        # convergence: each broker's last (final) view against the acknowledged operations
        finals: dict[int, dict] = {}
        final_cfg: dict[int, dict] = {}
        for e in self.by_type["md-read"]:
            if e.get("final") and e.get("ok"):
                finals[e["b"]] = e
        for e in self.by_type["cfg-read"]:
            if e.get("final") and e.get("ok"):
                final_cfg[e["b"]] = e
        if not self.by_type["md-op"] or not self.by_type["md-settle"]:
            return       # no metadata workload, or it never reached its end (the run broke off)
        if not finals:
            self.add("metadata", "no broker answered the metadata reads after healing", self.events[-1]["t"], [])
            return
        expect_present: dict[str, int] = {}      # topic -> minimum partitions
        maybe: set[str] = set()
        for i in sorted(ops):
            op, d = ops[i], done.get(i)
            ok = bool(d and d["ok"])
            name = op["topic"]
            if op["op"] == "create":
                if ok:
                    expect_present[name] = op["arg"]
                else:
                    maybe.add(name)
            elif op["op"] == "delete":
                expect_present.pop(name, None)
                if ok:
                    maybe.discard(name)
                else:
                    maybe.add(name)
            elif op["op"] == "partitions" and ok and name in expect_present:
                expect_present[name] = max(expect_present[name], op["arg"])
        # A create whose outcome is unknown (it failed, or never returned) may take effect at any
        # time after it was asked, even after a delete of the name that was acknowledged.
        uncertain_creates = {op["topic"] for i, op in ops.items() if op["op"] == "create" and not (done.get(i) or {}).get("ok")}
        deleted_ok = set(deletes_acked) - uncertain_creates
        for b, e in finals.items():
            topics = e["topics"]
            for name, n in expect_present.items():
                if name in maybe:
                    continue
                if name not in topics:
                    self.add("metadata", f"after healing broker {b} does not show {name}, created and never deleted", e["t"],
                             [{"broker": b, "topic": name}])
                elif topics[name] < n:
                    self.add("metadata", f"after healing broker {b} shows {name} with {topics[name]} partitions, not {n}",
                             e["t"], [{"broker": b, "topic": name, "partitions": topics[name], "acknowledged": n}])
            for name in deleted_ok:
                if name in topics:
                    self.add("metadata", f"after healing broker {b} still shows {name}, whose delete was acknowledged",
                             e["t"], [{"broker": b, "topic": name}])
            # Histories from before creates recorded their retention.ms cannot tell a stray value.
            recorded_creates = {op["topic"] for op in ops.values() if op["op"] == "create" and "retention" in op}
            present = [name for name in topics if name in writes]
            if present and b not in final_cfg:
                self.add("metadata", f"broker {b} answered no config read after healing", e["t"], [{"broker": b}])
                continue
            cfg = final_cfg.get(b, {}).get("values", {})
            for name in present:
                v = cfg.get(name)
                newer = [w for w, _ in writes[name].items() if v is not None and w != v
                         and self.config_precedes(writes[name], v, w) and writes[name][w][1] is not None]
                if v is None and name in deletes_invoked:
                    continue    # a delete may have raced the final reads
                if v is None or (v not in writes[name] and name in recorded_creates):
                    self.add("metadata", f"after healing broker {b} shows {name} retention.ms={v}, which no write set",
                             e["t"], [{"broker": b, "topic": name, "value": v}])
                elif newer:
                    self.add("metadata", f"after healing broker {b} shows {name} retention.ms={v}, overwritten by "
                             f"the acknowledged {max(newer)}", e["t"],
                             [{"broker": b, "topic": name, "value": v, "acknowledged": max(newer)}])

    @staticmethod
    def config_writes(ops: dict, done: dict) -> dict[str, dict[int, tuple[float, float | None]]]:
        """Per topic, each retention.ms value written to it (by its create or a config change;
        values are unique per topic) with the time the write was asked and the time it was
        acknowledged (None when it failed or never returned: it may still take effect)."""
        out: dict[str, dict[int, tuple[float, float | None]]] = defaultdict(dict)
        for i, op in ops.items():
            value = op.get("retention") if op["op"] == "create" else op["arg"] if op["op"] == "config" else None
            if value is None:
                continue
            d = done.get(i)
            out[op["topic"]][value] = (op["t"], d["t"] if d and d["ok"] else None)
        return out

    @staticmethod
    def config_precedes(writes: dict[int, tuple[float, float | None]], a: int, b: int) -> bool:
        """Whether the write of value `a` certainly took effect before that of `b`: `a` was
        acknowledged before `b` was asked. Writes that overlap may take effect in either order."""
        if a not in writes or b not in writes:
            return False
        acked = writes[a][1]
        return acked is not None and acked < writes[b][0]

    # -- the transactional workload -----------------------------------------------------------

    def check_txn(self) -> dict | None:
        """The transactional workload's checks (see the module's doc); None if it did not run."""
        bt = self.by_type
        if not (bt["txn-begin"] or bt["txn-read-done"] or bt["txn-init"] or bt["in-send"]):
            return None
        # Each transaction's outcome, from its copier's events in order.
        txns: dict[str, dict] = {}
        for e in self.events:
            k = e["e"]
            if k == "txn-begin":
                txns[e["txn"]] = {"txn": e["txn"], "m": e["m"], "begin": e["t"], "inputs": list(e.get("inputs", [])),
                                  "state": "never", "end": None}
            elif k == "txn-produce" and e["txn"] in txns:
                txns[e["txn"]]["inputs"] += e["inputs"]
            elif k in ("txn-commit-start", "txn-commit", "txn-abort") and e["txn"] in txns:
                t = txns[e["txn"]]
                if k == "txn-commit-start" and t["state"] == "never":
                    t["state"] = "unknown"
                elif k == "txn-commit":
                    t["state"], t["end"] = "committed", e["t"]
                elif k == "txn-abort":
                    t["state"], t["end"] = "aborted", e["t"]
        outcome = defaultdict(int)
        for t in txns.values():
            outcome[t["state"]] += 1

        done = {e["what"]: e for e in bt["txn-read-done"]}
        complete = {w: bool(done.get(w, {}).get("complete")) for w in ("txn-in", "txn-rc", "txn-ru")}
        rc = sorted(bt["txn-rc"], key=lambda e: (e["pt"], e["o"]))
        ru_at = {(e["pt"], e["o"]): e["v"] for e in bt["txn-ru"]}
        inputs_at = {(e["pt"], e["o"]): e["v"] for e in bt["txn-in"]}
        input_pos = {v: pos for pos, v in inputs_at.items()}
        committed_ev = (bt["txn-group-committed"] or [None])[-1]
        committed = {int(p): o for p, o in committed_ev["offsets"].items()} if committed_ev else None

        def split(v: str) -> tuple[str, str]:
            src, _, txn = v.rpartition("@")
            return src, txn

        # aborted_read: every read_committed record belongs to a transaction that may have committed
        bad: set[tuple[int, int]] = set()
        for e in rc:
            src, txn = split(e["v"])
            t = txns.get(txn)
            rec = {"partition": e["pt"], "offset": e["o"], "value": e["v"]}
            if t is None:
                why = "no transaction the copiers began"
            elif t["state"] == "aborted":
                why = f"transaction {txn}, aborted at {self.rel(t['end'])}s"
            elif t["state"] == "never":
                why = f"transaction {txn}, never asked to commit"
            elif src not in {v for _, _, v in t["inputs"]}:
                why = f"transaction {txn}, which copied no input record {src}"
            else:
                continue
            bad.add((e["pt"], e["o"]))
            if t is not None:
                rec.update({"copier": t["m"], "begin_t": self.rel(t["begin"]), "outcome": t["state"]})
            self.add("aborted_read", f"read_committed returned {e['v']} at {e['pt']}:{e['o']}: {why}", e["t"], [rec])

        # Each copy's input position: the one its transaction read the value at. The input topic
        # may hold a value twice (an idempotent producer's re-send across an epoch bump,
        # librdkafka #4953); each of those positions is its own input record, copied once.
        source: dict[tuple[int, int], tuple] = {}
        taken: dict[tuple[str, str], int] = defaultdict(int)
        for e in rc:
            src, txn = split(e["v"])
            at = [(p, o) for p, o, v in txns[txn]["inputs"] if v == src] if txn in txns else []
            i = taken[(src, txn)]
            taken[(src, txn)] += 1
            # A transaction with more copies of a value than it read is a duplicate of its last one.
            source[(e["pt"], e["o"])] = at[min(i, len(at) - 1)] if at else input_pos.get(src, src)

        # txn_duplicated: one input record copied twice into read_committed
        copies: dict[tuple, list[dict]] = defaultdict(list)
        for e in rc:
            if (e["pt"], e["o"]) not in bad:
                copies[source[(e["pt"], e["o"])]].append(e)
        for pos, es in copies.items():
            if len(es) > 1:
                bad.update((e["pt"], e["o"]) for e in es[1:])
                src = split(es[0]["v"])[0]
                where = f" at {pos[0]}:{pos[1]}" if isinstance(pos, tuple) else ""
                self.add("txn_duplicated", f"input record {src}{where} copied {len(es)} times into read_committed: "
                         f"{[(e['pt'], e['o'], e['v']) for e in es][:4]}", es[1]["t"],
                         [{"partition": e["pt"], "offset": e["o"], "value": e["v"],
                           "outcome": txns.get(split(e["v"])[1], {}).get("state")} for e in es])

        # txn_lost
        rc_values = {e["v"] for e in rc}
        reported: set[str] = set()
        if complete["txn-rc"]:
            for t in txns.values():
                if t["state"] not in ("committed", "unknown"):
                    continue
                outs = [(p, o, f"{v}@{t['txn']}") for p, o, v in t["inputs"]]
                missing = [x for x in outs if x[2] not in rc_values]
                if not missing or (t["state"] == "unknown" and len(missing) == len(outs)):
                    continue
                reported.update(v.rpartition("@")[0] for _, _, v in missing)
                what = "committed" if t["state"] == "committed" else "of unknown outcome, partly visible,"
                self.add("txn_lost", f"transaction {t['txn']} {what}: {len(missing)} of its {len(outs)} records "
                         f"missing from read_committed", t["end"] or t["begin"],
                         [{"transaction": t["txn"], "copier": t["m"], "outcome": t["state"],
                           "missing": [list(x) for x in missing[:10]]}])
        if committed is not None and complete["txn-rc"] and complete["txn-in"]:
            copied = {split(e["v"])[0] for e in rc}
            for (p, o), v in sorted(inputs_at.items()):
                if o < committed.get(p, 0) and v not in copied and v not in reported:
                    reported.add(v)
                    self.add("txn_lost", f"input record {v} at {p}:{o}, below the group's committed offset "
                             f"{committed.get(p)}, has no copy in read_committed", committed_ev["t"],
                             [{"partition": p, "offset": o, "value": v, "committed": committed.get(p)}])
            beyond: dict[int, list] = defaultdict(list)
            for e in rc:
                pos = source[(e["pt"], e["o"])]
                if (e["pt"], e["o"]) not in bad and isinstance(pos, tuple) and pos[1] >= committed.get(pos[0], 0):
                    beyond[pos[0]].append((pos[1], e["v"]))
            for p, xs in sorted(beyond.items()):
                self.add("txn_lost", f"read_committed holds copies of input {p} up to offset {max(xs)[0]}, but the "
                         f"group's committed offset is {committed.get(p)}: the offsets committed with them were lost",
                         committed_ev["t"], [{"input_partition": p, "committed": committed.get(p),
                                              "copies_past_it": len(xs), "examples": sorted(xs)[:5]}])
        if complete["txn-in"]:
            for e in bt["in-ack"]:
                if e["v"] not in input_pos:
                    self.add("txn_lost", f"input write {e['v']} acknowledged at {e['pt']}:{e['o']} is not in the "
                             f"input topic", e["t"], [{"value": e["v"], "partition": e["pt"], "offset": e["o"]}])

        # txn_order: per output partition, copies in their input order, and transactions in commit order
        pairs: dict[tuple, dict] = {}
        per_part: dict[int, list[dict]] = defaultdict(list)
        for e in rc:
            if (e["pt"], e["o"]) not in bad:
                per_part[e["pt"]].append(e)
        for p, es in per_part.items():
            last = None
            for e in es:
                src, txn = split(e["v"])
                pos = source[(e["pt"], e["o"])]
                if not isinstance(pos, tuple):
                    continue
                if pos[0] != p:
                    pairs.setdefault((p, txn, txn), {"what": f"{e['v']} (input {pos[0]}:{pos[1]}) in output partition {p}",
                                                     "t": e["t"], "records": [{"offset": e["o"], "value": e["v"]}]})
                    continue
                if last is not None and pos[1] <= last[0]:
                    key = (p, *sorted((last[2], txn)))
                    pairs.setdefault(key, {"what": f"output {p}: {e['v']} (input offset {pos[1]}) at {e['o']} after "
                                                   f"{last[1]} (input offset {last[0]}) at {last[3]}", "t": e["t"],
                                           "records": [{"offset": last[3], "value": last[1]}, {"offset": e["o"], "value": e["v"]}]})
                if last is None or pos[1] > last[0]:
                    last = (pos[1], e["v"], txn, e["o"])
            spans: dict[str, list[int]] = {}
            for e in es:
                txn = split(e["v"])[1]
                if txns.get(txn, {}).get("state") == "committed":
                    s_ = spans.setdefault(txn, [e["o"], e["o"]])
                    s_[0], s_[1] = min(s_[0], e["o"]), max(s_[1], e["o"])
            by_commit = sorted(spans, key=lambda x: txns[x]["end"])
            by_begin = sorted(spans, key=lambda x: txns[x]["begin"])
            i, top = 0, None          # top: the committed-before transaction with the highest offset so far
            for b in by_begin:
                while i < len(by_commit) and txns[by_commit[i]]["end"] < txns[b]["begin"]:
                    a = by_commit[i]
                    if top is None or spans[a][1] > spans[top][1]:
                        top = a
                    i += 1
                if top is not None and spans[top][1] > spans[b][0]:
                    key = (p, *sorted((top, b)))
                    pairs.setdefault(key, {"what": f"output {p}: transaction {b}, begun after {top} committed, has a "
                                                   f"record at {spans[b][0]} before {top}'s at {spans[top][1]}",
                                           "t": txns[b]["begin"], "records": [{"transaction": top, "offsets": spans[top]},
                                                                              {"transaction": b, "offsets": spans[b]}]})
        for v in pairs.values():
            self.add("txn_order", v["what"], v["t"], v["records"])

        # inconsistent offsets between the two output reads; a transaction nobody ended
        for e in rc:
            u = ru_at.get((e["pt"], e["o"]))
            if u is not None and u != e["v"]:
                self.add("inconsistent_offsets", f"output {e['pt']}:{e['o']} read as {e['v']} read_committed and "
                         f"{u} read_uncommitted", e["t"], [{"read_committed": e["v"], "read_uncommitted": u}])
        ends = (bt["txn-final-ends"] or [None])[-1]
        if ends is not None:
            for p, hw in sorted(ends["hw"].items()):
                lso = ends["lso"].get(p)
                if lso is not None and lso < hw:
                    self.add("txn_hanging", f"output partition {p}: last stable offset {lso} behind the high watermark "
                             f"{hw} after every copier stopped", ends["t"], [{"partition": int(p), "lso": lso, "hw": hw}])

        aborted_in_log = sum(1 for v in ru_at.values() if txns.get(split(v)[1], {}).get("state") in ("aborted", "never"))
        return {
            "input_acked": len(bt["in-ack"]),
            "input_read": len(inputs_at),
            # values the input topic holds more than once: the feed's re-sends across an epoch bump
            "input_values_twice": sum(1 for n in Counter(inputs_at.values()).values() if n > 1),
            "copier_starts": len(bt["txn-init"]),
            "stuck_calls": [f"{e['m']} {e['what']} {e['seconds']} s" for e in bt["txn-stuck"]],
            "transactions": len(txns),
            "committed": outcome["committed"],
            "aborted": outcome["aborted"],
            "unknown": outcome["unknown"],
            "never_committed": outcome["never"],
            "read_committed": len(rc),
            "read_uncommitted": len(ru_at),
            "aborted_records_in_log": aborted_in_log,
            "group_committed": sum(committed.values()) if committed else None,
            "complete": all(complete.values()) and committed is not None and ends is not None,
        }

    # -- unavailability ---------------------------------------------------------------------

    def ack_times(self) -> list[float]:
        return sorted(e["t"] - self.t0 for e in self.by_type["ack"])

    def unavailability(self) -> dict:
        """Per fault, the longest time a partition (and the whole topic) went without an
        acknowledged write. Each gap counts for one fault only: the last one started by the time the
        gap began (plus GAP_SLACK_S, for writes in flight when it struck) whose window the gap
        overlaps, else the first one it overlaps. A fault's window runs from its start to its heal
        plus RECOVERY_GRACE_S, cut at the next fault's start."""
        timed = [(i, f["started_at"], f["healed_at"]) for i, f in enumerate(self.faults)
                 if f.get("started_at") is not None and f.get("healed_at") is not None]
        timed.sort(key=lambda x: x[1])
        windows = []
        for k, (i, s, h) in enumerate(timed):
            end = h + RECOVERY_GRACE_S
            if k + 1 < len(timed):
                end = min(end, timed[k + 1][1])
            windows.append((i, s, end))

        def owner(a: float, b: float) -> int | None:
            overlapping = [(i, s) for i, s, end in windows if b > s and a < end]
            if not overlapping:
                return None
            started = [i for i, s in overlapping if s <= a + GAP_SLACK_S]
            return started[-1] if started else overlapping[0][0]

        def longest_gaps(times: list[float]) -> dict[int, tuple[float, float]]:
            """Fault index to (longest gap it owns, the gap's start)."""
            best: dict[int, tuple[float, float]] = {}
            for a, b in zip(times, times[1:]):
                i = owner(a, b)
                if i is not None and b - a > best.get(i, (0.0, 0.0))[0]:
                    best[i] = (b - a, a)
            return best

        overall = longest_gaps(self.ack_times())
        per_part: dict[int, list[float]] = defaultdict(list)
        for e in self.by_type["ack"]:
            per_part[e["pt"]].append(e["t"] - self.t0)
        part_gaps = {p: longest_gaps(sorted(ts)) for p, ts in per_part.items()}
        out = []
        for i, s, _ in windows:
            f = self.faults[i]
            longest, at = overall.get(i, (0.0, None))
            parts = {p: round(g.get(i, (0.0, 0.0))[0] * 1000) for p, g in part_gaps.items()}
            # A fault's unavailability is the longest time one partition went without an
            # acknowledged write (a stalled partition hides behind the others' writes otherwise);
            # any_write_gap_ms is the longest time without an acknowledged write anywhere.
            worst = max(parts.values(), default=round(longest * 1000))
            gap = {"kind": f.get("label") or f["kind"], "desc": f.get("desc", ""), "start": s,
                   "healed": f["healed_at"], "longest_gap_ms": worst, "any_write_gap_ms": round(longest * 1000),
                   "gap_start": at, "per_partition_ms": parts}
            # Recovery: from the heal until every partition had an acknowledged write again (a
            # fault no system can write through, such as a majority side with one broker left
            # of min.insync.replicas=2, shows here how soon writes came back once it ended).
            firsts = [next((t for t in ts if t >= f["healed_at"]), None) for ts in per_part.values()]
            if firsts and all(t is not None for t in firsts):
                gap["after_heal_ms"] = round((max(firsts) - f["healed_at"]) * 1000)
            brokers = {int(t[1:]) for t in f.get("targets", []) if t.startswith("b") and t[1:].isdigit()}
            if brokers and parts:
                leaders = self.leaders_at(s)
                led = [ms for p, ms in parts.items() if leaders.get(p) in brokers]
                followed = [ms for p, ms in parts.items() if leaders.get(p) not in brokers]
                gap["led_gap_ms"] = max(led) if led else None
                gap["followed_gap_ms"] = max(followed) if followed else None
            out.append(gap)
        return {"faults": out, "by_kind": summarize_gaps(out)}

    def leaders_at(self, t: float) -> dict[int, int]:
        """Partition to leader id, as the harness last saw them at or before `t` (relative)."""
        found: dict[int, int] = {}
        for e in self.by_type["leaders"]:
            if e["t"] - self.t0 > t:
                break
            found = {int(p): v["leader"] for p, v in e["parts"].items()}
        return found


# The splits of a fault's unavailability: the partitions its target led, the others, and the
# time from its heal until every partition took a write again.
GAP_PARTS = ("led", "followed", "after_heal")


def gap_part(g: dict, part: str) -> int | None:
    """A fault's figure for one of GAP_PARTS, in ms (None when it has none)."""
    return g.get(f"{part}_ms" if part == "after_heal" else f"{part}_gap_ms")


def summarize_gaps(fault_gaps: list[dict]) -> dict:
    """Per fault kind: the median and maximum of the longest gaps, and of the led and followed
    partitions' gaps where faults were aimed at brokers."""
    by: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for g in fault_gaps:
        by[g["kind"]][""].append(g["longest_gap_ms"])
        for part in GAP_PARTS:
            if gap_part(g, part) is not None:
                by[g["kind"]][part].append(gap_part(g, part))
    out = {}
    for kind, lists in sorted(by.items()):
        v = lists[""]
        out[kind] = {"median": statistics.median(v), "max": max(v), "n": len(v)}
        for part in GAP_PARTS:
            if lists.get(part):
                out[kind][part] = {"median": statistics.median(lists[part]), "max": max(lists[part]), "n": len(lists[part])}
    return out
