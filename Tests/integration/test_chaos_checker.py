"""The chaos history checker (tools/chaoslib/checker.py) on small hand-made histories: no cluster,
so these run in a blink and pin the rules themselves."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from chaoslib.checker import Checker  # noqa: E402


def history(acks, final):
    """acks: (value, partition, offset or None); final: (value, partition, offset)."""
    events = [{"e": "workload-start", "t": 0.0}]
    t = 1.0
    for v, pt, o in acks:
        p, n = v[1:].split("-")
        events.append({"e": "send", "p": int(p), "n": int(n), "k": "k", "t": t})
        events.append({"e": "ack", "v": v, "pt": pt, "o": o, "t": t + 0.1})
        t += 1
    for v, pt, o in final:
        events.append({"e": "final", "v": v, "pt": pt, "o": o, "t": t})
    hw = {}
    for _, pt, o in final:
        hw[str(pt)] = max(hw.get(str(pt), 0), o + 1)
    events.append({"e": "final-done", "complete": True, "pos": hw, "hw": hw, "t": t + 1})
    return events


def anomalies(events):
    c = Checker(events, [], 0.0)
    c.run()
    return {k: len(v) for k, v in c.anomalies.items() if v}


def test_clean_history_has_no_anomalies():
    assert anomalies(history([("p0-1", 0, 0), ("p0-2", 0, 1)], [("p0-1", 0, 0), ("p0-2", 0, 1)])) == {}


def test_an_ack_without_an_offset_says_nothing_about_positions():
    # librdkafka delivers a retried batch it knows was written with no offset: two such acks on
    # one partition are not "one offset, two values", and the records' real offsets are fine.
    events = history([("p1-5", 3, None), ("p1-6", 3, None)], [("p1-5", 3, 7), ("p1-6", 3, 8)])
    assert anomalies(events) == {}


def test_an_ack_without_an_offset_is_still_checked_for_loss():
    events = history([("p1-5", 3, None), ("p1-6", 3, None)], [("p1-5", 3, 7)])
    assert anomalies(events) == {"lost": 1}


def test_an_ack_at_another_offset_than_the_record_is_inconsistent():
    events = history([("p0-1", 0, 0), ("p0-2", 0, 2)], [("p0-1", 0, 0), ("p0-2", 0, 1)])
    assert anomalies(events) == {"inconsistent_offsets": 1}


def test_one_offset_with_two_values_is_inconsistent():
    events = history([("p0-1", 0, 0), ("p0-2", 0, 0)], [("p0-1", 0, 0), ("p0-2", 0, 1)])
    assert "inconsistent_offsets" in anomalies(events)
