"""The HTML report of one run: one self-contained file (inline SVG and CSS, no scripts, nothing
fetched), with a timeline of acknowledged writes per second and their latency (send to
acknowledgement: median and maximum per half second), the fault windows shaded and labelled,
node kills/starts/pauses and group-member crashes marked, then the faults with the longest write
gap each caused, the anomalies with their records, node crashes with their log tails, and where
the node logs are."""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from pathlib import Path

BUCKET_S = 0.5
W, LEFT, RIGHT = 1100, 60, 20
COLORS = {"network": "#f4a261", "process": "#e76f51", "clock": "#9b5de5", "disk": "#8d6e63", "mix": "#2a9d8f"}
NETWORK = {"partition", "isolate-controller", "leader-controllers", "isolate-leader", "one-way", "bridge", "stale-follower"}


def color(kind: str) -> str:
    if "+" in kind:
        return COLORS["mix"]
    if kind in NETWORK:
        return COLORS["network"]
    if kind in ("kill", "pause", "pause-follower", "pause-controller"):
        return COLORS["process"]
    return COLORS.get(kind, "#999")


def series(events: list[dict], t0: float):
    sends = {}
    for e in events:
        if e["e"] == "send":
            sends[f"p{e['p']}-{e['n']}"] = e["t"]
    count = defaultdict(int)
    lat = defaultdict(list)
    end = 0.0
    for e in events:
        end = max(end, e["t"] - t0)
        if e["e"] == "ack":
            b = int((e["t"] - t0) // BUCKET_S)
            count[b] += 1
            s = sends.get(e["v"])
            if s is not None:
                lat[b].append((e["t"] - s) * 1000)
    return count, lat, end


def svg_timeline(result: dict, events: list[dict], t0: float) -> str:
    count, lat, end = series(events, t0)
    end = max(end, 1.0)
    plot_w = W - LEFT - RIGHT
    x = lambda t: LEFT + plot_w * max(0.0, t) / end  # noqa: E731
    h1_top, h1 = 30, 160      # throughput panel
    h2_top, h2 = 220, 160     # latency panel
    strip = 400               # node events
    height = 440
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="11">']
    # fault windows
    for f in result.get("faults", []):
        s, hl = f.get("started_at"), f.get("healed_at")
        if s is None:
            continue
        hl = hl if hl is not None else end
        kind = "+".join(p["kind"] for p in f.get("parts", [])) or f["kind"]
        c = color(kind)
        out.append(f'<rect x="{x(s):.1f}" y="{h1_top}" width="{max(1.0, x(hl) - x(s)):.1f}" height="{strip - h1_top + 20}" '
                   f'fill="{c}" fill-opacity="0.22"><title>{html.escape(kind + ": " + f.get("desc", ""))}</title></rect>')
        out.append(f'<text x="{x(s) + 2:.1f}" y="{h1_top - 6}" fill="{c}">{html.escape(kind)}</text>')
    # throughput
    rates = [count.get(b, 0) / BUCKET_S for b in range(int(end / BUCKET_S) + 1)]
    # Catch-up bursts after a stall run to many times the offered rate: the axis stops at three
    # times the offered rate and taller bursts are drawn clipped (marked with a dot).
    offered = float(result.get("options", {}).get("rate") or 0)
    peak = max(rates + [1.0])
    top = min(peak, 3 * offered) if offered else peak
    pts = " ".join(f"{x(b * BUCKET_S + BUCKET_S / 2):.1f},{h1_top + h1 - h1 * min(r, top) / top:.1f}" for b, r in enumerate(rates))
    out.append(f'<polyline points="{pts}" fill="none" stroke="#264653" stroke-width="1.3"/>')
    for b, r in enumerate(rates):
        if r > top:
            out.append(f'<circle cx="{x(b * BUCKET_S + BUCKET_S / 2):.1f}" cy="{h1_top}" r="2.5" fill="#264653">'
                       f'<title>{r:.0f}/s (clipped)</title></circle>')
    out.append(f'<text x="{LEFT + 4}" y="{h1_top + 12}" fill="#264653">acknowledged writes/s per half second'
               f' (offered {offered:.0f}/s; peak {peak:.0f}/s)</text>')
    out.append(f'<line x1="{LEFT}" y1="{h1_top + h1}" x2="{W - RIGHT}" y2="{h1_top + h1}" stroke="#999"/>')
    out.append(f'<text x="{LEFT - 4}" y="{h1_top + 8}" text-anchor="end">{top:.0f}</text>')
    out.append(f'<text x="{LEFT - 4}" y="{h1_top + h1}" text-anchor="end">0</text>')
    # latency (log scale, 1 ms .. max)
    lmax = max([max(v) for v in lat.values()] + [10.0])
    lo, hi = 0.0, math.log10(max(lmax, 10.0))
    y2 = lambda ms: h2_top + h2 - h2 * (math.log10(max(ms, 1.0)) - lo) / (hi - lo or 1)  # noqa: E731
    for name, fn, col in (("max", max, "#e63946"), ("median", lambda v: sorted(v)[len(v) // 2], "#1d3557")):
        # one polyline per run of buckets with acknowledgements: no line across a stall
        runs, cur, prev = [], [], None
        for b, v in sorted(lat.items()):
            if not v:
                continue
            if prev is not None and b != prev + 1:
                runs.append(cur)
                cur = []
            cur.append(f"{x(b * BUCKET_S + BUCKET_S / 2):.1f},{y2(fn(v)):.1f}")
            prev = b
        runs.append(cur)
        for r in runs:
            if len(r) == 1:
                cx, cy = r[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{col}"/>')
            elif r:
                out.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{col}" stroke-width="1.1"/>')
    out.append(f'<text x="{LEFT}" y="{h2_top + 12}"><tspan fill="#1d3557">median</tspan> and '
               f'<tspan fill="#e63946">max</tspan> send-to-ack latency (ms, log scale)</text>')
    for ms in (1, 10, 100, 1000, 10000, 100000):
        if ms <= lmax * 1.01:
            out.append(f'<text x="{LEFT - 4}" y="{y2(ms) + 4:.1f}" text-anchor="end">{ms}</text>')
            out.append(f'<line x1="{LEFT}" y1="{y2(ms):.1f}" x2="{W - RIGHT}" y2="{y2(ms):.1f}" stroke="#eee"/>')
    # node events
    marks = {"node-kill": ("#d00000", "kill -9"), "node-start": ("#2b9348", "start"), "node-pause": ("#6a040f", "SIGSTOP"),
             "node-resume": ("#55a630", "SIGCONT"), "node-exit": ("#000", "exit"), "member-crash": ("#7209b7", "member kill -9"),
             "member-leave": ("#b5179e", "member leaves")}
    for e in events:
        if e.get("src") == "harness" and e["e"] in marks:
            col, what = marks[e["e"]]
            t = e["t"] - t0
            who = e.get("node") or e.get("name") or ""
            out.append(f'<line x1="{x(t):.1f}" y1="{strip}" x2="{x(t):.1f}" y2="{strip + 14}" stroke="{col}" stroke-width="2">'
                       f'<title>{html.escape(f"{t:.1f}s {what} {who}")}</title></line>')
    out.append(f'<text x="{LEFT - 4}" y="{strip + 11}" text-anchor="end">nodes</text>')
    # time axis
    step = 5 if end <= 80 else 10 if end <= 200 else 30
    t = 0
    while t <= end:
        out.append(f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="middle">{t}s</text>')
        out.append(f'<line x1="{x(t):.1f}" y1="{h1_top + h1}" x2="{x(t):.1f}" y2="{h1_top + h1 + 4}" stroke="#999"/>')
        t += step
    out.append("</svg>")
    return "\n".join(out)


def txn_html(txn: dict | None) -> str:
    if not txn:
        return ""
    incomplete = "" if txn["complete"] else ' <span class="bad">(final reads incomplete)</span>'
    stuck = (" Copier calls stuck far past their timeout (the copier exited and started again): "
             + html.escape(", ".join(txn["stuck_calls"])) + ".") if txn.get("stuck_calls") else ""
    return (f"<p>Transactional workload: {txn['input_acked']:,} input writes acknowledged, {txn['input_read']:,} input "
            f"records; {txn['transactions']:,} transactions by {txn['copier_starts']} copier starts: "
            f"{txn['committed']:,} committed, {txn['aborted']:,} aborted, {txn['unknown']} of unknown outcome, "
            f"{txn['never_committed']} never asked to commit; output {txn['read_committed']:,} records read_committed, "
            f"{txn['read_uncommitted']:,} read_uncommitted ({txn['aborted_records_in_log']:,} of aborted transactions); "
            f"the group committed {txn['group_committed']} input offsets in all{incomplete}.{stuck}</p>")


def write(path: Path, result: dict, events: list[dict], t0: float) -> Path:
    esc = html.escape
    anomalies = result.get("anomalies", {})
    total = sum(anomalies.values())
    status = "FAILED" if not result.get("ok") else "ok"
    rows = []
    for g in result.get("unavailability", {}).get("faults", []):
        rows.append(f"<tr><td>{g['start']:.1f}-{g['healed']:.1f}s</td><td>{esc(g['kind'])}</td><td>{esc(g['desc'])}</td>"
                    f"<td>{g['longest_gap_ms']:,} ms</td><td>{esc(json.dumps(g['per_partition_ms']))}</td></tr>")
    by_kind = result.get("unavailability", {}).get("by_kind", {})
    kind_rows = "".join(f"<tr><td>{esc(k)}</td><td>{v['n']}</td><td>{v['median']:,.0f} ms</td><td>{v['max']:,} ms</td></tr>"
                        for k, v in by_kind.items())
    anomaly_html = []
    for kind, examples in result.get("examples", {}).items():
        anomaly_html.append(f"<h3>{esc(kind)}: {anomalies.get(kind, 0)}</h3>")
        for ex in examples:
            anomaly_html.append(f"<details><summary>{ex['t']:.1f}s {esc(ex['what'])}</summary>"
                                f"<pre>{esc(json.dumps({'records': ex['records'], 'faults around': ex['faults']}, indent=1))}</pre></details>")
    resends = result.get("client_resend_examples", [])
    if resends:
        anomaly_html.append(f"<h3>client re-sends across an epoch bump (not broker anomalies): {result.get('client_resends', 0)}</h3>")
        for ex in resends:
            anomaly_html.append(f"<details><summary>{ex['t']:.1f}s {esc(ex['what'])}</summary>"
                                f"<pre>{esc(json.dumps({'bump': ex['bump'], 'records': ex['records'], 'faults around': ex['faults']}, indent=1))}</pre></details>")
    crash_html = "".join(f"<h3>{esc(c['node'])} exited with {c['rc']} at {c['t']}s</h3><pre>{esc(c.get('log_tail', ''))}</pre>"
                         for c in result.get("crashes", []))
    notes = "".join(f"<li>{esc(n)}</li>" for n in result.get("notes", []))
    if result.get("error"):
        notes += f"<li>run error: {esc(result['error'])}</li>"
    opts = result.get("options", {})
    doc = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>chaos run seed {result.get('seed')}: {status}</title>
<style>
body {{ font-family: sans-serif; margin: 20px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }} td, th {{ border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: left; }}
pre {{ background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }}
.bad {{ color: #b00020; font-weight: bold; }} .good {{ color: #2b9348; font-weight: bold; }}
</style></head><body>
<h1>Runnel chaos run, seed {result.get('seed')}: <span class="{'bad' if status == 'FAILED' else 'good'}">{status}</span></h1>
<p>{esc(str(opts.get('seconds')))} s of faults ({esc(', '.join(opts.get('kinds', [])))}); {opts.get('rate')} writes/s by
{opts.get('producers')} idempotent acks=all producers over {opts.get('partitions')} partitions;
{opts.get('controllers')} controllers + {opts.get('brokers')} brokers{'; unclean.leader.election.enable=true' if opts.get('unclean') else ''}
{('; RUNNEL_TEST_BROKEN_RULES=' + esc(','.join(opts.get('broken')))) if opts.get('broken') else ''}.
Replay: <code>tools/chaos --runs 1 --seed {result.get('seed')} --seconds {opts.get('seconds')}</code> with the same options.</p>
<p>acknowledged {result.get('acked', 0):,} of {result.get('sent', 0):,} sent ({result.get('failed', 0):,} failed deliveries);
final read {result.get('final_read', 0):,} records{'' if result.get('final_complete') else ' <span class="bad">(incomplete)</span>'};
healthy {result.get('healthy_after_s')} s after healing. Anomalies: {total}
({', '.join(f'{k} {v}' for k, v in anomalies.items())}).</p>
{txn_html(result.get('txn'))}
{svg_timeline(result, events, t0)}
<h2>Faults and the longest write gap each caused</h2>
<table><tr><th>window</th><th>kind</th><th>what</th><th>longest gap between acks</th><th>per partition (ms)</th></tr>{''.join(rows)}</table>
<table><tr><th>kind</th><th>faults</th><th>median gap</th><th>max gap</th></tr>{kind_rows}</table>
<h2>Anomalies</h2>{''.join(anomaly_html) or '<p>none</p>'}
{('<h2>Node crashes</h2>' + crash_html) if crash_html else ''}
{('<h2>Notes</h2><ul>' + notes + '</ul>') if notes else ''}
<h2>Files</h2><p>node logs and configs: <code>{esc(result.get('nodes_dir', ''))}</code>; histories (JSON lines):
<code>{esc(str(Path(result.get('dir', '')) / 'history'))}</code>; the whole result: <code>run.json</code>.</p>
</body></html>
"""
    path.write_text(doc)
    return path
