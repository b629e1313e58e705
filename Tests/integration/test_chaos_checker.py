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


def with_eos(events, t, p, msg, vp="p"):
    out = events + [{"e": "client-eos", "vp": vp, "p": p, "fac": "DRAIN", "msg": msg, "t": t}]
    return sorted(out, key=lambda e: e["t"])


BUMP = ("Beginning partition drain in state Assigned for PID{Id:1000,Epoch:0} epoch bump for 3 partition(s) "
        "with in-flight requests: skipped sequence numbers")


def duplicate_of_unacked_write():
    # p1-5 sent at t=1 (acked at 1.1 by history(); the ack is dropped here: its first copy was
    # written but the client never heard so), then found at two offsets.
    events = history([("p1-5", 3, None), ("p1-6", 3, None)], [("p1-5", 3, 7), ("p1-6", 3, 8), ("p1-5", 3, 9)])
    return [e for e in events if not (e["e"] == "ack" and e["v"] == "p1-5")]


def test_a_value_at_two_offsets_is_duplicated():
    assert anomalies(duplicate_of_unacked_write()) == {"duplicated": 1}


def test_a_copy_re_sent_by_the_clients_epoch_bump_is_reported_apart_not_as_duplicated():
    events = with_eos(duplicate_of_unacked_write(), 1.5, 1, BUMP)
    c = Checker(events, [], 0.0)
    result = c.run()
    assert {k: len(v) for k, v in c.anomalies.items() if v} == {}
    assert result["client_resends"] == 1
    assert result["client_resend_examples"][0]["bump"]["reason"] == "skipped sequence numbers"


def test_an_epoch_bump_explains_no_duplicate_of_a_write_acknowledged_before_it_or_of_another_producer():
    # the bump began after p1-6 was acknowledged: librdkafka no longer held it to re-send
    events = history([("p1-5", 3, 7), ("p1-6", 3, 8)], [("p1-5", 3, 7), ("p1-6", 3, 8), ("p1-6", 3, 9)])
    assert anomalies(with_eos(events, 5.0, 1, BUMP)) == {"duplicated": 1}
    # another producer's bump, or one begun before the write was sent
    assert anomalies(with_eos(duplicate_of_unacked_write(), 1.5, 2, BUMP)) == {"duplicated": 1}
    assert anomalies(with_eos(duplicate_of_unacked_write(), 0.5, 1, BUMP)) == {"duplicated": 1}


# -- the transactional workload (tools/chaos --txn) ---------------------------------------------

def txn_history(txns, rc, ru=None, inputs=None, committed=None, ends=None, in_acks=()):
    """txns: [(name, outcome, [(partition, offset, input value)])] in the order they ran, outcome
    committed, aborted, unknown (a commit asked, no answer) or never (no commit asked); each copy's
    value is "<input value>@<name>". rc and ru: the output read read_committed and
    read_uncommitted, [(partition, offset, value)] (ru defaults to rc). inputs: the input topic's
    records (default: every record a transaction copied). committed: the group's final committed
    offsets (default: past every committed transaction's inputs). ends: (hw, lso) of the output."""
    events = [{"e": "workload-start", "t": 0.0}]
    t = 1.0

    def emit(e, **f):
        nonlocal t
        events.append({"e": e, "t": t, **f})
        t += 0.1

    emit("txn-init", m="c0", tid="chaos-txn-c0", inc=1)
    for name, outcome, copied in txns:
        emit("txn-begin", m="c0", txn=name, a=1)
        emit("txn-produce", m="c0", txn=name, inputs=[list(x) for x in copied])
        if outcome in ("committed", "unknown"):
            emit("txn-commit-start", m="c0", txn=name, offsets={})
        if outcome == "committed":
            emit("txn-commit", m="c0", txn=name)
        if outcome == "aborted":
            emit("txn-abort-start", m="c0", txn=name, why="chosen")
            emit("txn-abort", m="c0", txn=name)
    if inputs is None:
        inputs = sorted({x for _, _, copied in txns for x in copied})
    if committed is None:
        committed = {}
        for _, outcome, copied in txns:
            for p, o, _ in copied:
                if outcome == "committed":
                    committed[p] = max(committed.get(p, 0), o + 1)
    for v, p, o in in_acks:
        emit("in-ack", v=v, pt=p, o=o)
    hw = {}
    for p, o, _ in (ru if ru is not None else rc):
        hw[str(p)] = max(hw.get(str(p), 0), o + 1)
    hw, lso = ends or (hw, hw)
    emit("txn-final-ends", hw=hw, lso=lso)
    for what, recs in (("txn-in", inputs), ("txn-rc", rc), ("txn-ru", ru if ru is not None else rc)):
        for p, o, v in recs:
            emit(what, pt=p, o=o, v=v)
        emit("txn-read-done", what=what, complete=True, records=len(recs))
    emit("txn-group-committed", offsets={str(p): o for p, o in committed.items()})
    return events


def txn_checked(events):
    c = Checker(events, [], 0.0)
    result = c.run()
    return {k: len(v) for k, v in c.anomalies.items() if v}, result["txn"]


def test_a_clean_transactional_history_has_no_anomalies():
    events = txn_history(
        [("A", "committed", [(0, 0, "i0-0"), (0, 1, "i0-1")]),
         ("B", "aborted", [(0, 2, "i0-2")]),
         ("C", "committed", [(0, 2, "i0-2")])],
        rc=[(0, 0, "i0-0@A"), (0, 1, "i0-1@A"), (0, 5, "i0-2@C")],
        ru=[(0, 0, "i0-0@A"), (0, 1, "i0-1@A"), (0, 3, "i0-2@B"), (0, 5, "i0-2@C")])
    found, txn = txn_checked(events)
    assert found == {}
    assert (txn["committed"], txn["aborted"], txn["aborted_records_in_log"], txn["complete"]) == (2, 1, 1, True)


def test_no_transactional_workload_no_transactional_summary():
    c = Checker(history([("p0-1", 0, 0)], [("p0-1", 0, 0)]), [], 0.0)
    assert c.run()["txn"] is None


def test_planted_bug_an_aborted_record_read_committed_is_caught():
    # The planted bug: a read_committed read that returns a record of an aborted transaction
    # (tools/chaos --txn-read-uncommitted makes the harness's own final read do this for real).
    events = txn_history(
        [("A", "committed", [(0, 0, "i0-0")]), ("B", "aborted", [(0, 1, "i0-1")])],
        rc=[(0, 0, "i0-0@A"), (0, 1, "i0-1@B")], committed={0: 1})
    found, _ = txn_checked(events)
    assert found == {"aborted_read": 1}


def test_a_record_of_a_transaction_never_asked_to_commit_is_an_aborted_read():
    # the copier was killed before it asked for the commit: the coordinator must abort it
    events = txn_history([("A", "committed", [(0, 0, "i0-0")]), ("B", "never", [(0, 1, "i0-1")])],
                         rc=[(0, 0, "i0-0@A"), (0, 1, "i0-1@B")], committed={0: 1})
    assert txn_checked(events)[0] == {"aborted_read": 1}


def test_a_record_no_transaction_wrote_is_an_aborted_read():
    events = txn_history([("A", "committed", [(0, 0, "i0-0")])], rc=[(0, 0, "i0-0@A"), (0, 1, "i0-0@Z")])
    assert txn_checked(events)[0] == {"aborted_read": 1}


def test_an_input_record_copied_twice_is_duplicated():
    # a zombie copier's transaction committed beside its successor's
    events = txn_history([("A", "committed", [(0, 0, "i0-0")]), ("B", "committed", [(0, 0, "i0-0")])],
                         rc=[(0, 0, "i0-0@A"), (0, 1, "i0-0@B")])
    assert txn_checked(events)[0] == {"txn_duplicated": 1}


def test_an_input_value_written_twice_and_copied_once_each_is_no_duplicate():
    # Seed 3712: the input feed's idempotent producer re-sent i0-1 across an epoch bump
    # (librdkafka #4953), so the input topic holds it at offsets 1 and 2; transactions A and B
    # each copied one of them. Two input records, one copy each.
    events = txn_history([("A", "committed", [(0, 0, "i0-0"), (0, 1, "i0-1")]),
                          ("B", "committed", [(0, 2, "i0-1"), (0, 3, "i0-2")])],
                         rc=[(0, 0, "i0-0@A"), (0, 1, "i0-1@A"), (0, 3, "i0-1@B"), (0, 4, "i0-2@B")])
    assert txn_checked(events)[0] == {}


def test_one_input_position_copied_twice_is_duplicated_even_when_its_value_repeats():
    # The input holds i0-1 twice (offsets 1 and 2), but A and B both copied offset 1.
    events = txn_history([("A", "committed", [(0, 0, "i0-0"), (0, 1, "i0-1")]),
                          ("B", "committed", [(0, 1, "i0-1")])],
                         rc=[(0, 0, "i0-0@A"), (0, 1, "i0-1@A"), (0, 3, "i0-1@B")],
                         inputs=[(0, 0, "i0-0"), (0, 1, "i0-1"), (0, 2, "i0-1")])
    assert txn_checked(events)[0] == {"txn_duplicated": 1}


def test_a_transaction_with_two_copies_of_one_input_record_is_duplicated():
    events = txn_history([("A", "committed", [(0, 0, "i0-0")])], rc=[(0, 0, "i0-0@A"), (0, 1, "i0-0@A")])
    assert txn_checked(events)[0] == {"txn_duplicated": 1}


def test_a_committed_transactions_missing_record_is_lost():
    events = txn_history([("A", "committed", [(0, 0, "i0-0"), (0, 1, "i0-1")])], rc=[(0, 0, "i0-0@A")],
                         ru=[(0, 0, "i0-0@A"), (0, 1, "i0-1@A")])
    assert txn_checked(events)[0] == {"txn_lost": 1}


def test_an_input_record_below_the_committed_offset_without_a_copy_is_lost():
    events = txn_history([("A", "committed", [(0, 0, "i0-0")]), ("B", "committed", [(0, 2, "i0-2")])],
                         rc=[(0, 0, "i0-0@A"), (0, 1, "i0-2@B")],
                         inputs=[(0, 0, "i0-0"), (0, 1, "i0-1"), (0, 2, "i0-2")])
    assert txn_checked(events)[0] == {"txn_lost": 1}


def test_copies_past_the_committed_offset_mean_the_offsets_were_lost():
    events = txn_history([("A", "committed", [(0, 0, "i0-0"), (0, 1, "i0-1"), (0, 2, "i0-2")])],
                         rc=[(0, 0, "i0-0@A"), (0, 1, "i0-1@A"), (0, 2, "i0-2@A")], committed={0: 1})
    assert txn_checked(events)[0] == {"txn_lost": 1}


def test_a_transaction_of_unknown_outcome_is_all_or_nothing():
    # (the group's committed offset moves with the transaction: it committed, or it did not)
    copied = [(0, 0, "i0-0"), (0, 1, "i0-1")]
    both = [(0, 0, "i0-0@A"), (0, 1, "i0-1@A")]
    for rc, committed, want in (([], {}, {}), (both, {0: 2}, {}), ([(0, 0, "i0-0@A")], {0: 2}, {"txn_lost": 1})):
        events = txn_history([("A", "unknown", copied)], rc=rc, ru=both, committed=committed)
        assert txn_checked(events)[0] == want, rc


def test_copies_out_of_their_input_order_are_reordered():
    events = txn_history([("A", "committed", [(0, 0, "i0-0"), (0, 1, "i0-1")])],
                         rc=[(0, 0, "i0-1@A"), (0, 1, "i0-0@A")])
    assert txn_checked(events)[0] == {"txn_order": 1}


def test_a_transaction_before_one_that_committed_before_it_began_is_reordered():
    # B began after A committed, so its records must follow A's in the partition
    events = txn_history([("A", "committed", [(0, 1, "i0-1")]), ("B", "committed", [(0, 0, "i0-0")])],
                         rc=[(0, 0, "i0-0@B"), (0, 1, "i0-1@A")])
    assert txn_checked(events)[0] == {"txn_order": 1}


def test_a_last_stable_offset_behind_the_high_watermark_is_a_hanging_transaction():
    events = txn_history([("A", "committed", [(0, 0, "i0-0")]), ("B", "never", [(0, 1, "i0-1")])],
                         rc=[(0, 0, "i0-0@A")], ru=[(0, 0, "i0-0@A"), (0, 1, "i0-1@B")],
                         ends=({"0": 2}, {"0": 1}))
    assert txn_checked(events)[0] == {"txn_hanging": 1}


def test_the_two_output_reads_disagreeing_on_a_position_is_inconsistent():
    events = txn_history([("A", "committed", [(0, 0, "i0-0")]), ("B", "aborted", [(0, 1, "i0-1")])],
                         rc=[(0, 0, "i0-0@A")], ru=[(0, 0, "i0-1@B")])
    assert txn_checked(events)[0] == {"inconsistent_offsets": 1}


def test_an_acknowledged_input_write_missing_from_the_input_is_lost():
    events = txn_history([("A", "committed", [(0, 0, "i0-0")])], rc=[(0, 0, "i0-0@A")],
                         in_acks=[("i0-0", 0, 0), ("i0-1", 0, 1)])
    assert txn_checked(events)[0] == {"txn_lost": 1}


def unavailability(ack_times, faults):
    """acks on partition 0 at `ack_times`; faults: (kind, started_at, healed_at)."""
    events = [{"e": "workload-start", "t": 0.0}]
    events += [{"e": "ack", "v": f"p0-{n}", "pt": 0, "o": n, "t": t} for n, t in enumerate(ack_times)]
    c = Checker(events, [{"kind": k, "started_at": s, "healed_at": h} for k, s, h in faults], 0.0)
    return [(g["kind"], g["longest_gap_ms"]) for g in c.unavailability()["faults"]]


def test_a_gap_counts_for_the_fault_it_began_under_only():
    # kill strikes at 10 s: acks stop from 9.9 s until 18 s, through a pause that starts at 15 s
    # and stalls nothing of its own (acks every 0.1 s from 18 s on).
    acks = [x / 10 for x in range(0, 100)] + [18 + x / 10 for x in range(0, 100)]
    assert unavailability(acks, [("kill", 10, 12), ("pause", 15, 17)]) == [("kill", 8100), ("pause", 100)]


def test_a_gap_begun_just_before_a_fault_is_that_faults():
    # the last ack lands 0.5 s before the fault (its writes were in flight when it struck).
    acks = [x / 10 for x in range(0, 46)] + [9 + x / 10 for x in range(0, 100)]
    assert unavailability(acks, [("kill", 5, 7)]) == [("kill", 4500)]


def test_a_paused_broker_splits_its_gap_into_partitions_it_led_and_ones_it_followed():
    # b5 is paused from 5 s to 15 s: partition 1, which it led, gets no ack until 16 s; partition
    # 0, which b4 led and b5 followed, stalls only until 8 s (b5 left the ISR).
    events = [{"e": "workload-start", "t": 0.0},
              {"e": "leaders", "t": 1.0, "parts": {"0": {"leader": 4, "isr": [4, 5, 6]}, "1": {"leader": 5, "isr": [5, 4, 6]}}},
              {"e": "leaders", "t": 9.0, "parts": {"0": {"leader": 4, "isr": [4, 6]}, "1": {"leader": 6, "isr": [6, 4]}}}]
    times = {0: [x / 10 for x in range(0, 50)] + [8 + x / 10 for x in range(0, 150)],
             1: [x / 10 for x in range(0, 50)] + [16 + x / 10 for x in range(0, 70)]}
    n = 0
    for pt, ts in times.items():
        for t in ts:
            events.append({"e": "ack", "v": f"p0-{n}", "pt": pt, "o": n, "t": t})
            n += 1
    events.sort(key=lambda e: e["t"])
    c = Checker(events, [{"kind": "pause-follower", "started_at": 5.0, "healed_at": 15.0, "targets": ["b5"]}], 0.0)
    gap = c.unavailability()["faults"][0]
    assert (gap["longest_gap_ms"], gap["led_gap_ms"], gap["followed_gap_ms"]) == (11100, 11100, 3100)
    by_kind = c.unavailability()["by_kind"]["pause-follower"]
    assert by_kind["followed"] == {"median": 3100, "max": 3100, "n": 1}
    # Healed at 15 s: partition 0 was taking writes again already, partition 1 from 16 s.
    assert gap["after_heal_ms"] == 1000 and by_kind["after_heal"] == {"median": 1000, "max": 1000, "n": 1}


def test_recheck_redoes_a_runs_checks_from_its_history(tmp_path):
    # A run dir as tools/chaos leaves it (run.json, history/*.jsonl), from before run.json kept
    # its clock's zero: `--recheck` finds it from the harness's fault-start and checks again.
    import importlib.machinery
    import importlib.util
    import json
    loader = importlib.machinery.SourceFileLoader("chaos_tool", str(Path(__file__).resolve().parents[2] / "tools" / "chaos"))
    spec = importlib.util.spec_from_loader("chaos_tool", loader)
    tool = importlib.util.module_from_spec(spec)
    loader.exec_module(tool)
    run = tmp_path / "run1-seed7"
    (run / "history").mkdir(parents=True)
    zero = 100.0
    (run / "history" / "harness.jsonl").write_text("\n".join(json.dumps(e) for e in [
        {"e": "leaders", "t": zero + 1, "parts": {"0": {"leader": 4, "isr": [4, 5]}, "1": {"leader": 5, "isr": [5, 4]}}},
        {"e": "fault-start", "t": zero + 5, "kind": "pause", "targets": ["b5"]}]) + "\n")
    acks = [(0, t / 10) for t in range(0, 50)] + [(0, 8 + t / 10) for t in range(0, 100)]
    acks += [(1, t / 10) for t in range(0, 50)] + [(1, 12 + t / 10) for t in range(0, 60)]
    (run / "history" / "producers.jsonl").write_text("\n".join(
        json.dumps({"e": "ack", "v": f"p0-{n}", "pt": pt, "o": n, "t": zero + t}) for n, (pt, t) in enumerate(acks)) + "\n")
    (run / "run.json").write_text(json.dumps({"seed": 7, "faults": [
        {"kind": "pause", "label": "pause", "started_at": 5.0, "healed_at": 10.0, "targets": ["b5"]}]}))
    [r] = tool.recheck([run])
    [gap] = r["unavailability"]["faults"]
    assert (gap["led_gap_ms"], gap["followed_gap_ms"]) == (7100, 3100)
    assert tool.summarize([r])["unavailability_ms"]["pause"]["followed"] == {"median": 3100, "max": 3100, "faults": 1}
    assert tool.summarize([r])["unavailability_ms"]["pause"]["after_heal"] == {"median": 2000, "max": 2000, "faults": 1}


def metadata_history(create_ok: bool | None):
    """A create of t (acknowledged, failed, or never answered: None), a delete of t asked before it
    returned and acknowledged, and every broker showing t after healing."""
    events = [{"e": "workload-start", "t": 0.0},
              {"e": "md-op", "id": 1, "op": "create", "topic": "t", "arg": 2, "t": 1.0},
              {"e": "md-op", "id": 2, "op": "delete", "topic": "t", "arg": None, "t": 2.0},
              {"e": "md-done", "id": 2, "op": "delete", "topic": "t", "ok": True, "t": 3.0}]
    if create_ok is not None:
        events.append({"e": "md-done", "id": 1, "op": "create", "topic": "t", "ok": create_ok, "t": 3.5})
    events.append({"e": "md-settle", "t": 4.0})
    events += [{"e": "md-read", "b": b, "t0": 5.0, "ok": True, "topics": {"t": 2}, "final": True, "t": 5.0} for b in (4, 5)]
    return events


def test_a_topic_after_its_acknowledged_delete_is_an_anomaly_unless_a_create_of_it_had_no_known_outcome():
    assert anomalies(metadata_history(create_ok=True)) == {"metadata": 2}
    assert anomalies(metadata_history(create_ok=False)) == {}
    assert anomalies(metadata_history(create_ok=None)) == {}


def config_history(overlap: bool, reads: list[int], final: int | None):
    """Topic t created with retention.ms 100, then set to 200 and to 300: one after the other, or
    (overlap) with the write of 200 still unanswered when 300 is asked. Broker 4 shows `reads` in
    turn, then `final` after healing (None: its final config read failed)."""
    events = [{"e": "workload-start", "t": 0.0},
              {"e": "md-op", "id": 1, "op": "create", "topic": "t", "arg": 2, "retention": 100, "t": 1.0},
              {"e": "md-done", "id": 1, "op": "create", "topic": "t", "ok": True, "t": 1.5},
              {"e": "md-op", "id": 2, "op": "config", "topic": "t", "arg": 200, "t": 2.0},
              {"e": "md-done", "id": 2, "op": "config", "topic": "t", "ok": True, "t": 3.6 if overlap else 2.5},
              {"e": "md-op", "id": 3, "op": "config", "topic": "t", "arg": 300, "t": 3.0},
              {"e": "md-done", "id": 3, "op": "config", "topic": "t", "ok": True, "t": 3.5}]
    for n, v in enumerate(reads):
        events.append({"e": "cfg-read", "b": 4, "t0": 4.0 + n / 10, "ok": True, "values": {"t": v}, "final": False,
                       "t": 4.0 + n / 10})
    events.append({"e": "md-settle", "t": 6.0})
    events.append({"e": "md-read", "b": 4, "t0": 7.0, "ok": True, "topics": {"t": 2}, "final": True, "t": 7.0})
    if final is not None:
        events.append({"e": "cfg-read", "b": 4, "t0": 7.1, "ok": True, "values": {"t": final}, "final": True, "t": 7.1})
    events.sort(key=lambda e: e["t"])
    return events


def test_a_config_shown_after_one_written_later_is_going_back_unless_the_writes_overlapped():
    assert anomalies(config_history(overlap=False, reads=[100, 200, 300], final=300)) == {}
    assert anomalies(config_history(overlap=False, reads=[300, 200], final=300)) == {"metadata": 1}
    # The writes of 200 and 300 overlapped: they may have taken effect in either order.
    assert anomalies(config_history(overlap=True, reads=[300, 200], final=200)) == {}


def test_the_final_config_must_be_the_last_acknowledged_write_or_one_that_overlapped_it():
    assert anomalies(config_history(overlap=False, reads=[], final=200)) == {"metadata": 1}
    assert anomalies(config_history(overlap=True, reads=[], final=200)) == {}
    assert anomalies(config_history(overlap=False, reads=[], final=604_800_000)) == {"metadata": 1}, "no write set it"
    assert anomalies(config_history(overlap=False, reads=[], final=None)) == {"metadata": 1}, "no config read at all"
