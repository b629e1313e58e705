"""The Grafana dashboard in tools/grafana/runnel-dashboard.json imports as is and reads only
metrics a node exports.

The file is a dashboard (schema 39) whose panels take their data source from a `datasource`
template variable, so it imports without an inputs step; every panel but rows and text has that
data source and at least one PromQL target. Every metric name in every query (panel targets and
template variables, `_bucket`, `_sum` and `_count` included, as Prometheus spells them) is a
series name on the `/metrics` of a running node after a topic, a produce and a consumer group's
commit: a renamed or misspelled metric fails here rather than as an empty panel.

Runnel only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer

from test_metrics import metrics_node, scrape
from util import QUIET, create_topic, unique, wait_until

DASHBOARD = Path(__file__).resolve().parents[2] / "tools" / "grafana" / "runnel-dashboard.json"

# PromQL words that look like names but are not metrics.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a label_values() variable query) reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings, label values included
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # template variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    # label_values(metric, label): the label is the second argument, not a metric.
    for m in re.finditer(r"label_values\([^,]*,\s*(\w+)\s*\)", re.sub(r"\{[^}]*\}", "", expr)):
        names.discard(m.group(1))
    return names


def exported_names(text: str) -> set[str]:
    """The series names of a Prometheus text scrape."""
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})? ", text, re.M)}


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and every query variable."""
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            out.append((f"variable {var['name']}", var["query"]["query"]))
    return out


def test_metric_names_are_found_in_promql():
    assert metric_names(
        'histogram_quantile(0.99, sum by (api, le) (rate(runnel_request_duration_seconds_bucket'
        '{job=~"$job",api=~"Produce|Fetch"}[$__rate_interval])))') == {"runnel_request_duration_seconds_bucket"}
    assert metric_names('scalar(max(runnel_raft_high_watermark{job=~"$job"})) - 1 - runnel_metadata_applied_offset') \
        == {"runnel_raft_high_watermark", "runnel_metadata_applied_offset"}
    assert metric_names('label_values(runnel_requests_total{instance=~"$instance"}, api)') == {"runnel_requests_total"}
    assert metric_names("sum(rate(runnel_requests_totl[5m])) / on (instance) group_left up") == {
        "runnel_requests_totl", "up"}


def test_dashboard_imports_as_is():
    dashboard = load()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    assert "__inputs" not in dashboard, "a datasource variable, not an inputs step"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    graphs = [p for p in dashboard["panels"] if p["type"] not in ("row", "text")]
    assert len(graphs) >= 30
    for panel in graphs:
        where = f"panel {panel['title']!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert panel["targets"], where
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, where
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"] == panel["datasource"], where
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] == "${datasource}", var["name"]


@pytest.mark.usefixtures("require_runnel")
def test_every_metric_the_dashboard_reads_is_exported(node_factory):
    node, port = metrics_node(node_factory)
    topic = unique("dashboard")
    create_topic(node.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", **QUIET})
    for i in range(100):
        p.produce(topic, value=b"x" * 100)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": node.bootstrap, "group.id": unique("dashboard"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False, **QUIET})
    c.subscribe([topic])
    wait_until(lambda: c.poll(1) is not None, 30, 0, "a record for the consumer")
    c.commit(asynchronous=False)
    c.close()

    used = {}
    for where, expr in queries(load()):
        for name in metric_names(expr):
            used.setdefault(name, where)
    assert len(used) >= 30
    assert all(name.startswith("runnel_") for name in used), sorted(used)
    text = wait_until(
        lambda: (t := scrape(port)) and "runnel_log_size_bytes{" in t and "runnel_consumer_group_lag{" in t and t,
        30, 0.2, "the log size and consumer lag gauges")
    exported = exported_names(text)
    missing = {name: where for name, where in used.items() if name not in exported}
    assert not missing, f"the dashboard reads metrics the node does not export: {missing}"
