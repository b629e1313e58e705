"""The history checker, in the spirit of Jepsen's Kafka workload.

Input: every client's events (workload.py) and the harness's own (faults, node kills and starts).
Offsets of the topic are contiguous (no compaction, no transactions), which every rule below
leans on.

  lost                  a write acknowledged (acks=all) whose value the final read, from the
                        beginning of its partition to the end offset, never returned
  duplicated            a value found at two positions (partition, offset) by any read
  reordered             in the final read of a partition, a producer's values out of the order it
                        sent them (an idempotent producer keeps order within a partition)
  inconsistent_offsets  one position read (or acknowledged) with two different values, or an
                        acknowledged value found at another position than its acknowledgement said
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

Unavailability: for each fault, the longest time between two successive acknowledgements (any
partition) among those overlapping the fault or the 10 s after it healed; per fault kind the
median and the maximum over its faults.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

ANOMALY_KINDS = ["lost", "duplicated", "reordered", "inconsistent_offsets", "consumer", "group", "metadata"]
RECOVERY_GRACE_S = 10.0
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
        for e in self.by_type["ack"]:
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

        # duplicated
        for v, pos in where.items():
            if len(pos) > 1:
                t = min(t for p in pos for _, t in at[p][v])
                self.add("duplicated", f"{v} at {len(pos)} positions: {sorted(pos)}", t,
                         [{"position": list(p), "seen_by": sorted({s for s, _ in at[p][v]})} for p in sorted(pos)])

        # inconsistent offsets
        for pos, vals in at.items():
            if len(vals) > 1:
                t = min(t for obs in vals.values() for _, t in obs)
                self.add("inconsistent_offsets", f"{pos[0]}:{pos[1]} read as {len(vals)} values: {sorted(vals)[:4]}", t,
                         [{"value": v, "seen_by": sorted({s for s, _ in obs})} for v, obs in vals.items()])
        for v, evs in acks.items():
            a = evs[0]
            fv = final_values.get(v)
            if fv is not None and fv != (a["pt"], a["o"]) and len(where[v]) == 1:
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

        return {
            "acked": len(acks),
            "sent": len(sends),
            "failed": len(self.by_type["fail"]),
            "final_read": len(final),
            "final_complete": final_complete,
            "anomalies": {k: len(v) for k, v in self.anomalies.items()},
            "examples": {k: v[:MAX_EXAMPLES] for k, v in self.anomalies.items() if v},
            "unavailability": self.unavailability(),
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
        cfg_seen: dict[tuple[int, str], tuple[float, int]] = {}
        for e in self.by_type["cfg-read"]:
            if not e.get("ok"):
                continue
            for name, v in e["values"].items():
                key = (e["b"], name)
                prev = cfg_seen.get(key)
                if prev and v < prev[1]:
                    self.add("metadata", f"broker {e['b']} shows {name} retention.ms={v} after {prev[1]}", e["t"],
                             [{"broker": e["b"], "topic": name, "before": prev[1], "now": v, "before_t": self.rel(prev[0])}])
                cfg_seen[key] = (e["t"], max(v, prev[1]) if prev else v)

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
        expect_config: dict[str, int] = {}
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
                expect_config.pop(name, None)
                if ok:
                    maybe.discard(name)
                else:
                    maybe.add(name)
            elif op["op"] == "partitions" and ok and name in expect_present:
                expect_present[name] = max(expect_present[name], op["arg"])
            elif op["op"] == "config" and ok:
                expect_config[name] = max(expect_config.get(name, 0), op["arg"])
        deleted_ok = set(deletes_acked)
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
            cfg = final_cfg.get(b, {}).get("values", {})
            for name, v in expect_config.items():
                if name in topics and name in cfg and cfg[name] < v:
                    self.add("metadata", f"after healing broker {b} shows {name} retention.ms={cfg[name]}, not {v}",
                             e["t"], [{"broker": b, "topic": name, "value": cfg[name], "acknowledged": v}])

    # -- unavailability ---------------------------------------------------------------------

    def ack_times(self) -> list[float]:
        return sorted(e["t"] - self.t0 for e in self.by_type["ack"])

    def unavailability(self) -> dict:
        acks = self.ack_times()
        gaps = list(zip(acks, acks[1:]))
        per_part: dict[int, list[float]] = defaultdict(list)
        for e in self.by_type["ack"]:
            per_part[e["pt"]].append(e["t"] - self.t0)
        out = []
        for i, f in enumerate(self.faults):
            s = f.get("started_at")
            h = f.get("healed_at")
            if s is None or h is None:
                continue
            nxt = min([g["started_at"] for g in self.faults[i + 1:] if g.get("started_at")] + [h + RECOVERY_GRACE_S])
            end = min(h + RECOVERY_GRACE_S, nxt)
            longest = 0.0
            at = None
            for a, b in gaps:
                if b > s and a < end and b - a > longest:
                    longest, at = b - a, a
            parts = {}
            for p, ts in per_part.items():
                ts.sort()
                best = 0.0
                prev = None
                for x in ts:
                    if prev is not None and x > s and prev < end:
                        best = max(best, x - prev)
                    prev = x
                parts[p] = round(best * 1000)
            # A fault's unavailability is the longest time one partition went without an
            # acknowledged write (a stalled partition hides behind the others' writes otherwise);
            # any_write_gap_ms is the longest time without an acknowledged write anywhere.
            worst = max(parts.values(), default=round(longest * 1000))
            out.append({"kind": f.get("label") or f["kind"], "desc": f.get("desc", ""), "start": s, "healed": h,
                        "longest_gap_ms": worst, "any_write_gap_ms": round(longest * 1000), "gap_start": at,
                        "per_partition_ms": parts})
        return {"faults": out, "by_kind": summarize_gaps(out)}


def summarize_gaps(fault_gaps: list[dict]) -> dict:
    by: dict[str, list[int]] = defaultdict(list)
    for g in fault_gaps:
        by[g["kind"]].append(g["longest_gap_ms"])
    return {k: {"median": statistics.median(v), "max": max(v), "n": len(v)} for k, v in sorted(by.items())}
