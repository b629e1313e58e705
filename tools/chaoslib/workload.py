"""The client processes of a chaos run. tools/chaos starts each one inside the clients' network
namespace (`ip netns exec chaos-clients python -m chaoslib.workload MODE --conf JSON`), so every
byte they send crosses the bridge and every cut between the clients and a node applies to them.

Each process writes its history as JSON lines to its own file: one object per event with `t`
(CLOCK_MONOTONIC seconds, the same clock in every process and namespace on the machine) and `e`
(the event). SIGTERM ends a process gracefully (producers flush, members leave their group, the
metadata workload lets the brokers converge); SIGKILL is a crash.

  produce   P idempotent producers (enable.idempotence, acks=all, retries until
            delivery.timeout.ms) sending R records/s in total, keyed over K keys, values
            "p<producer>-<n>": events send / ack (partition, offset) / fail (error)
  read      one consumer assigned every partition from the beginning: events read
  member    one consumer-group member (subscribe, range assignment, manual synchronous commits
            every --commit-every records or second and on revocation): events assign, revoke,
            lost, poll (partition, offset, value, assignment number), commit-start, commit
  metadata  topic create/delete, partition increases and config changes through the
            AdminClient, and reads of every broker alone (Metadata v1, DescribeConfigs v1 over a
            raw socket): events md-op, md-done, md-read, cfg-read
  final     after healing: every partition read from the beginning to its end offset (high
            watermark, re-read until it no longer moves), and the group's committed offsets:
            events final-hw, final, final-done, group-committed

The transactional workload (tools/chaos --txn) runs `produce` on its own input topic (values
"i<producer>-<n>", events in-send / in-ack / in-fail) and these:

  copier     an exactly-once consume-transform-produce loop (one transactional.id, the copiers'
             group, read_committed, send_offsets_to_transaction), some transactions aborted on
             purpose: events txn-init, txn-assign, txn-revoke, txn-lost, txn-begin, txn-produce
             (the input records copied), txn-commit-start (the input offsets), txn-commit,
             txn-abort-start, txn-abort, txn-rewind, txn-fatal
  txn-final  after healing: the input topic, the output read_committed and read_uncommitted, each
             to its end, and the copiers' group's committed offsets: events txn-final-ends,
             txn-in, txn-rc, txn-ru, txn-read-done, txn-group-committed
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import chaoslib  # noqa: E402,F401 - its import puts Tests/integration (kwire.py) on sys.path
from chaoslib import wire  # noqa: E402

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,  # noqa: E402
                                   NewPartitions, NewTopic)

QUIET = {"log_level": 3}
STOP = threading.Event()
# librdkafka's idempotence lines kept in the history (debug=eos): the epoch bumps, what started
# them, and the errors that decide whether a batch is retried, failed or re-sent in a new epoch.
EOS_FACILITIES = {"DRAIN", "ERRSEQ", "UNKPID", "ERRPID", "DUPSEQ", "TIMEOUT", "IDEMPSTATE"}


class EosLog(logging.Handler):
    """Receives a producer's librdkafka log (confluent-kafka passes it to a logging.Logger as
    "FAC [client] text") and records its idempotence lines as `client-eos` events: an epoch bump
    re-sends every unacknowledged write under new sequence numbers, which no broker can tell from
    a new write, so the checker needs to know when one happened and why."""

    def __init__(self, h: "History", vp: str, pid: int):
        super().__init__(logging.DEBUG)
        self.h, self.vp, self.pid = h, vp, pid

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        fac, _, rest = text.partition(" ")
        if fac in EOS_FACILITIES:
            self.h.emit("client-eos", vp=self.vp, p=self.pid, fac=fac, msg=rest.split("]: ", 1)[-1])


def eos_logger(h: "History", vp: str, pid: int) -> logging.Logger:
    log = logging.getLogger(f"chaos.eos.{vp}{pid}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.handlers = [EosLog(h, vp, pid)]
    return log


def on_term(signum, frame):
    STOP.set()


class History:
    """JSON lines, one per event, stamped with CLOCK_MONOTONIC. `sync` flushes every event (for
    processes that may be killed -9 mid-run, so what they did is on disk)."""

    def __init__(self, path: str, sync: bool = False):
        self.f = open(path, "a", buffering=1 << 16)
        self.sync = sync
        self.lock = threading.Lock()
        self.last_flush = time.monotonic()

    def emit(self, e: str, **fields) -> None:
        fields["t"] = round(time.monotonic(), 6)
        fields["e"] = e
        line = json.dumps(fields, separators=(",", ":")) + "\n"
        with self.lock:
            self.f.write(line)
            now = time.monotonic()
            if self.sync or now - self.last_flush > 0.5:
                self.f.flush()
                self.last_flush = now

    def close(self) -> None:
        with self.lock:
            self.f.flush()
            self.f.close()


def err_text(err) -> str:
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"
    if isinstance(err, KafkaException) and err.args and isinstance(err.args[0], KafkaError):
        return err_text(err.args[0])
    return str(err)


# -- produce ------------------------------------------------------------------------------

def run_produce(c: dict, h: History) -> None:
    """Producers send in turn; a producer that hits a fatal error (librdkafka raises it for an
    idempotence failure it cannot recover from, e.g. OUT_OF_ORDER_SEQUENCE_NUMBER after an
    unclean election lost its sequence state) is retired and replaced by a new producer with a
    new name, so every value stays unique and each name's sequence numbers stay in send order."""
    n_producers = c["producers"]
    rate = c["rate"]
    ev = c.get("event_prefix", "")          # "in-" for the transactional workload's input feed
    vp = c.get("value_prefix", "p")
    keys = c["keys"]
    rng = random.Random(c.get("seed", 0))
    conf = {"bootstrap.servers": c["bootstrap"], "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "retry.backoff.ms": 100, "retry.backoff.max.ms": 1000,
            "request.timeout.ms": c["request_timeout_ms"], "message.timeout.ms": c["delivery_timeout_ms"],
            "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 1_048_576,
            "socket.connection.setup.timeout.ms": 5000,
            **QUIET, **c.get("extra", {})}
    outstanding = [0]

    def report(err, msg):
        outstanding[0] -= 1
        v = msg.value().decode()
        if err is not None:
            h.emit(ev + "fail", v=v, err=err_text(err))
        else:
            h.emit(ev + "ack", v=v, pt=msg.partition(), o=msg.offset())

    next_id = [0]

    def new_producer():
        pid = next_id[0]
        next_id[0] += 1

        def err_cb(err, pid=pid):
            h.emit("client-error", p=pid, err=err_text(err), fatal=err.fatal())
        h.emit("producer-start", p=pid)
        eos = {"debug": "eos", "log_level": 7, "logger": eos_logger(h, vp, pid)}
        return [pid, Producer({**conf, **eos, "client.id": f"chaos-p{pid}", "error_cb": err_cb}), 0]

    slots = [new_producer() for _ in range(n_producers)]     # [name, producer, next n]
    retired: list = []
    topic = c["topic"]
    start = time.monotonic()
    sent_total = 0
    turn = 0

    def poll_all(timeout: float) -> None:
        for i, slot in enumerate(slots):
            try:
                slot[1].poll(timeout)
            except KafkaException as e:
                h.emit("producer-fatal", p=slot[0], err=err_text(e))
                retired.append((slot[1], time.monotonic() + 10))
                slots[i] = new_producer()
        for r in list(retired):
            try:
                r[0].poll(0)
            except KafkaException:
                pass
            if len(r[0]) == 0 or time.monotonic() > r[1]:
                retired.remove(r)

    while not STOP.is_set():
        now = time.monotonic()
        due = int((now - start) * rate) - sent_total
        for _ in range(max(0, due)):
            slot = slots[turn % n_producers]
            turn += 1
            pid, prod, n = slot
            key = f"k{rng.randrange(keys)}"
            value = f"{vp}{pid}-{n}"
            try:
                prod.produce(topic, key=key.encode(), value=value.encode(), on_delivery=report)
            except BufferError:
                h.emit("backpressure", p=pid)
                break
            except KafkaException as e:
                h.emit(ev + "fail", v=value, err=err_text(e), at="produce")
                slot[2] += 1
                sent_total += 1
                continue
            h.emit(ev + "send", p=pid, n=n, k=key)
            slot[2] += 1
            sent_total += 1
            outstanding[0] += 1
        poll_all(0)
        time.sleep(0.001)
    h.emit("stopping", outstanding=outstanding[0])
    deadline = time.monotonic() + c["flush_s"]
    while outstanding[0] > 0 and time.monotonic() < deadline:
        poll_all(0.05)
    h.emit("end", unacked=outstanding[0], queued=sum(len(s[1]) for s in slots))


# -- read ---------------------------------------------------------------------------------

def run_read(c: dict, h: History) -> None:
    cons = Consumer({"bootstrap.servers": c["bootstrap"], "group.id": f"chaos-reader-{os.getpid()}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "enable.partition.eof": False, "fetch.wait.max.ms": 200,
                     "socket.connection.setup.timeout.ms": 5000,
                     "error_cb": lambda err: h.emit("client-error", err=err_text(err)), **QUIET})
    cons.assign([TopicPartition(c["topic"], p, -2) for p in range(c["partitions"])])
    try:
        while not STOP.is_set():
            for m in cons.consume(num_messages=500, timeout=0.2):
                if m.error():
                    h.emit("read-error", pt=m.partition(), err=err_text(m.error()))
                    continue
                h.emit("read", pt=m.partition(), o=m.offset(), v=m.value().decode())
    finally:
        cons.close()
        h.emit("end")


# -- a group member -------------------------------------------------------------------------

def run_member(c: dict, h: History) -> None:
    name = c["name"]
    topic = c["topic"]
    state = {"assignment": 0, "owned": set(), "next": {}}   # next offset to commit per partition
    cons = None

    def commit(reason: str) -> None:
        offs = {p: o for p, o in state["next"].items() if p in state["owned"]}
        if not offs:
            return
        h.emit("commit-start", m=name, a=state["assignment"], offsets=offs, why=reason)
        try:
            res = cons.commit(offsets=[TopicPartition(topic, p, o) for p, o in offs.items()], asynchronous=False)
            errs = {tp.partition: err_text(tp.error) for tp in (res or []) if tp.error is not None}
            ok = {p: o for p, o in offs.items() if p not in errs}
            h.emit("commit", m=name, a=state["assignment"], offsets=ok, errors=errs)
        except KafkaException as e:
            h.emit("commit", m=name, a=state["assignment"], offsets={}, errors={p: err_text(e) for p in offs})

    def on_assign(consumer, parts):
        state["assignment"] += 1
        state["owned"] = {tp.partition for tp in parts}
        state["next"] = {}
        h.emit("assign", m=name, a=state["assignment"], pts=sorted(state["owned"]))

    def on_revoke(consumer, parts):
        commit("revoke")
        h.emit("revoke", m=name, a=state["assignment"], pts=sorted(tp.partition for tp in parts))
        state["owned"] = set()

    def on_lost(consumer, parts):
        h.emit("lost", m=name, a=state["assignment"], pts=sorted(tp.partition for tp in parts))
        state["owned"] = set()

    cons = Consumer({"bootstrap.servers": c["bootstrap"], "group.id": c["group"], "client.id": name,
                     "enable.auto.commit": False, "enable.auto.offset.store": False,
                     "auto.offset.reset": "earliest", "enable.partition.eof": False,
                     "session.timeout.ms": c.get("session_timeout_ms", 6000), "heartbeat.interval.ms": 1000,
                     "partition.assignment.strategy": "range", "fetch.wait.max.ms": 200,
                     "socket.connection.setup.timeout.ms": 5000,
                     "error_cb": lambda err: h.emit("client-error", m=name, err=err_text(err)), **QUIET})
    cons.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    h.emit("join", m=name)
    last_commit = time.monotonic()
    since = 0
    try:
        while not STOP.is_set():
            for m in cons.consume(num_messages=200, timeout=0.2):
                if m.error():
                    h.emit("poll-error", m=name, err=err_text(m.error()))
                    continue
                p = m.partition()
                h.emit("poll", m=name, a=state["assignment"], pt=p, o=m.offset(), v=m.value().decode())
                state["next"][p] = m.offset() + 1
                since += 1
            if since >= c["commit_every"] or (since and time.monotonic() - last_commit > 1.0):
                commit("periodic")
                since = 0
                last_commit = time.monotonic()
    finally:
        h.emit("leaving", m=name)
        cons.close()    # commits in on_revoke, then LeaveGroup
        h.emit("end", m=name)


# -- metadata -------------------------------------------------------------------------------

def run_metadata(c: dict, h: History) -> None:
    rng = random.Random(c["seed"])
    brokers = c["brokers"]                     # [[id, "host:port"], ...]
    admin = AdminClient({"bootstrap.servers": c["bootstrap"], "socket.connection.setup.timeout.ms": 5000, **QUIET})
    prefix = c["prefix"]
    rf = c["replication_factor"]
    believed: dict[str, int] = {}              # topics we created (as far as we know) -> partitions
    pending = []
    seq = [0]
    next_op = time.monotonic() + 1.0
    next_read = time.monotonic()
    config_value = [3_600_000]

    def done_cb(op_id, op, topic, arg):
        def cb(fut):
            try:
                fut.result()
                h.emit("md-done", id=op_id, op=op, topic=topic, arg=arg, ok=True)
            except Exception as e:  # noqa: BLE001
                h.emit("md-done", id=op_id, op=op, topic=topic, arg=arg, ok=False, err=err_text(e))
        return cb

    def issue():
        op_id = seq[0]
        seq[0] += 1
        choices = []
        if len(believed) < 6:
            choices += ["create"] * 3
        if len(believed) >= 2:
            choices += ["delete"] * 1 + ["partitions"] * 2 + ["config"] * 3
        op = rng.choice(choices)
        if op == "create":
            topic = f"{prefix}{op_id}"
            arg = 2
            h.emit("md-op", id=op_id, op=op, topic=topic, arg=arg, retention=config_value[0])
            fut = admin.create_topics([NewTopic(topic, arg, rf, config={"retention.ms": str(config_value[0])})],
                                      operation_timeout=10, request_timeout=15)[topic]
            believed[topic] = arg
        else:
            topic = rng.choice(sorted(believed))
            if op == "delete":
                arg = None
                h.emit("md-op", id=op_id, op=op, topic=topic, arg=arg)
                fut = admin.delete_topics([topic], operation_timeout=10, request_timeout=15)[topic]
                del believed[topic]
            elif op == "partitions":
                arg = believed[topic] + 1
                h.emit("md-op", id=op_id, op=op, topic=topic, arg=arg)
                fut = admin.create_partitions([NewPartitions(topic, arg)], operation_timeout=10, request_timeout=15)[topic]
                believed[topic] = arg
            else:
                config_value[0] += 1000
                arg = config_value[0]
                h.emit("md-op", id=op_id, op=op, topic=topic, arg=arg)
                res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
                    ConfigEntry("retention.ms", str(arg), incremental_operation=AlterConfigOpType.SET)])
                fut = list(admin.incremental_alter_configs([res], request_timeout=15).values())[0]
        fut.add_done_callback(done_cb(op_id, op, topic, arg))
        pending.append(fut)

    def read_all(final: bool) -> list[dict]:
        views = []
        for bid, addr in brokers:
            t0 = time.monotonic()
            try:
                md = wire.metadata(addr, None, timeout=1.5)
            except (OSError, ValueError) as e:
                h.emit("md-read", b=bid, t0=t0, ok=False, err=str(e), final=final)
                continue
            topics = {n: len(tm.partitions) for n, tm in md.topics.items() if n.startswith(prefix) and tm.error == 0}
            h.emit("md-read", b=bid, t0=t0, ok=True, topics=topics, final=final)
            cfg = {}
            if topics:
                t1 = time.monotonic()
                try:
                    got = wire.describe_topic_configs(addr, sorted(topics), ["retention.ms"], timeout=1.5)
                    cfg = {n: int(v["retention.ms"]) for n, (err, v) in got.items() if err == 0 and v.get("retention.ms")}
                    h.emit("cfg-read", b=bid, t0=t1, ok=True, values=cfg, final=final)
                except (OSError, ValueError) as e:
                    h.emit("cfg-read", b=bid, t0=t1, ok=False, err=str(e), final=final)
            views.append({"b": bid, "topics": topics, "cfg": cfg})
        return views

    while not STOP.is_set():
        now = time.monotonic()
        if now >= next_op:
            try:
                issue()
            except Exception as e:  # noqa: BLE001
                h.emit("md-client-error", err=err_text(e))
            next_op = now + rng.uniform(0.5, 1.5)
        if now >= next_read:
            read_all(False)
            next_read = time.monotonic() + 0.5
        time.sleep(0.05)
    # Let pending operations finish, then read every broker until they agree (or time is up).
    deadline = time.monotonic() + c["settle_s"]
    while any(not f.done() for f in pending) and time.monotonic() < deadline:
        time.sleep(0.1)
    h.emit("md-settle", pending=sum(1 for f in pending if not f.done()))
    while time.monotonic() < deadline:
        views = read_all(True)
        if len(views) == len(brokers) and all(v["topics"] == views[0]["topics"] and v["cfg"] == views[0]["cfg"] for v in views):
            break
        time.sleep(0.5)
    h.emit("end")


# -- final read -----------------------------------------------------------------------------

def run_final(c: dict, h: History) -> None:
    topic, parts = c["topic"], c["partitions"]
    cons = Consumer({"bootstrap.servers": c["bootstrap"], "group.id": f"chaos-final-{os.getpid()}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "enable.partition.eof": False, **QUIET})
    deadline = time.monotonic() + c["timeout_s"]

    def watermarks() -> dict[int, int]:
        out = {}
        for p in range(parts):
            while True:
                try:
                    out[p] = cons.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                    break
                except KafkaException as e:
                    h.emit("final-error", pt=p, err=err_text(e))
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        return out

    hw = watermarks()
    h.emit("final-hw", hw=hw)
    pos = {p: 0 for p in range(parts)}
    seen: set[tuple[int, int]] = set()
    cons.assign([TopicPartition(topic, p, -2) for p in range(parts)])
    stable = 0
    while time.monotonic() < deadline:
        if all(pos[p] >= hw[p] for p in range(parts)):
            again = watermarks()
            if again == hw:
                stable += 1
                if stable >= 2:
                    break
                time.sleep(0.5)
                continue
            hw = again
            h.emit("final-hw", hw=hw)
            stable = 0
        for m in cons.consume(num_messages=1000, timeout=0.2):
            if m.error():
                h.emit("final-error", pt=m.partition(), err=err_text(m.error()))
                continue
            p, o = m.partition(), m.offset()
            pos[p] = max(pos[p], o + 1)
            if (p, o) in seen:
                continue
            seen.add((p, o))
            h.emit("final", pt=p, o=o, v=m.value().decode())
    h.emit("final-done", complete=all(pos[p] >= hw[p] for p in range(parts)), pos=pos, hw=hw)
    cons.close()
    if c.get("group"):
        g = Consumer({"bootstrap.servers": c["bootstrap"], "group.id": c["group"], "enable.auto.commit": False, **QUIET})
        try:
            got = g.committed([TopicPartition(topic, p) for p in range(parts)], timeout=15)
            h.emit("group-committed", offsets={tp.partition: tp.offset for tp in got if tp.error is None and tp.offset >= 0})
        except KafkaException as e:
            h.emit("group-committed-error", err=err_text(e))
        finally:
            g.close()


# -- the transactional workload: exactly-once copiers and their final read ---------------------

def kafka_error(e: Exception) -> KafkaError | None:
    return e.args[0] if isinstance(e, KafkaException) and e.args and isinstance(e.args[0], KafkaError) else None


class Fenced(Exception):
    """A copier's producer hit a fatal error (fenced by a newer instance, or its epoch bumped by
    the coordinator): the copier exits and the harness starts it again."""


def run_copier(c: dict, h: History) -> None:
    """A consume-transform-produce loop with exactly-once semantics, written as confluent-kafka
    EOS applications are (Tests/integration/apps/eos_copy.py; Kafka Streams commits the same
    way): read `input` read_committed in group `group` and copy each record to the same partition
    of `output` inside a transaction of `transactional_id` that stays open for `txn_ms` (or
    `batch` records) over several polls, then commits the input offsets it copied
    (send_offsets_to_transaction) and itself. A fraction `abort_ratio` of the transactions is
    aborted on purpose, as an application aborts when a transform fails. Each copy's value is
    unique to its transaction, "<input value>@<name>.<incarnation>.<transaction number>", so the
    checker can tell every read record's transaction.

    After an abort (chosen, or forced by an abortable error or a retriable one that outlasted its
    retries) the copier rewinds to the group's committed offsets. When its partitions are revoked
    it ends the open transaction first (commit, or abort if it chose to); when they are lost it
    aborts. A fatal error exits 1. Every event is on disk before the call it announces (the
    history is synchronous), so after a kill -9 a transaction with no txn-commit-start was never
    asked to commit."""
    name, inc = c["name"], c["incarnation"]
    src, dst = c["input"], c["output"]
    rng = random.Random(f"{c.get('seed', 0)}-{name}-{inc}")
    txn_s = c.get("txn_ms", 250) / 1000
    abort_ratio = c.get("abort_ratio", 0.1)
    state = {"assignment": 0, "owned": set(), "cur": None, "seq": 0, "fenced": False}

    def err_cb(err):
        h.emit("client-error", m=name, err=err_text(err), fatal=err.fatal())

    # A watchdog for librdkafka's blocking calls: each is given a timeout (30 s), but
    # send_offsets_to_transaction does not keep it when it has to look for the group's coordinator
    # (librdkafka issue 5456: the coordinator request's timeout is never checked); seen here when
    # an isolated broker kept answering FindCoordinator with COORDINATOR_NOT_AVAILABLE. A call past
    # `stuck_s` is logged and the copier exits as if killed; the harness starts it again with the
    # same transactional id.
    calling: dict = {}
    stuck_s = c.get("stuck_s", 45)

    def watchdog():
        while True:
            time.sleep(1)
            call = calling.get("now")
            if call and time.monotonic() - call[1] > stuck_s:
                h.emit("txn-stuck", m=name, what=call[0], txn=calling.get("txn"),
                       seconds=round(time.monotonic() - call[1], 1))
                with h.lock:
                    h.f.flush()
                os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()

    def retrying(call, what: str, limit_s: float):
        """Calls `call` again while it fails with a retriable error, for at most `limit_s`."""
        deadline = time.monotonic() + limit_s
        while True:
            calling["now"] = (what, time.monotonic())
            try:
                return call()
            except KafkaException as e:
                err = kafka_error(e)
                if err is None or not err.retriable() or time.monotonic() > deadline:
                    raise
                h.emit("txn-retry", m=name, what=what, err=err_text(e))
            finally:
                calling["now"] = None

    consumer = Consumer({"bootstrap.servers": c["bootstrap"], "group.id": c["group"], "client.id": name,
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "enable.auto.offset.store": False, "auto.offset.reset": "earliest",
                         "enable.partition.eof": False, "session.timeout.ms": c.get("session_timeout_ms", 6000),
                         "heartbeat.interval.ms": 1000, "partition.assignment.strategy": "range",
                         "fetch.wait.max.ms": 100, "socket.connection.setup.timeout.ms": 5000,
                         "error_cb": err_cb, **QUIET,
                         **({"debug": "cgrp", "log_level": 7} if c.get("debug") else {})})
    producer = Producer({"bootstrap.servers": c["bootstrap"], "transactional.id": c["transactional_id"],
                         "client.id": name, "linger.ms": 5, "transaction.timeout.ms": c["transaction_timeout_ms"],
                         "socket.connection.setup.timeout.ms": 5000, "error_cb": err_cb, **QUIET,
                         **({"debug": "eos,protocol,broker", "log_level": 7} if c.get("debug") else {})})

    def fail(txn, e, during: str):
        h.emit("txn-fatal", m=name, txn=txn, err=err_text(e), during=during)
        raise Fenced(err_text(e))

    def abort(txn: str, why: str, e: Exception | None = None) -> None:
        h.emit("txn-abort-start", m=name, txn=txn, why=why, err=err_text(e) if e is not None else None)
        try:
            retrying(lambda: producer.abort_transaction(30), "abort", 60)
        except KafkaException as e2:
            fail(txn, e2, "abort")
        h.emit("txn-abort", m=name, txn=txn)

    def failed(txn: str, e: KafkaException, during: str) -> None:
        """An error in a transaction: fatal exits, anything else aborts it."""
        err = kafka_error(e)
        if err is not None and err.fatal():
            fail(txn, e, during)
        abort(txn, f"error in {during}", e)

    def end(why: str) -> bool:
        """Ends the open transaction: commits it (True) or aborts it (False)."""
        cur = state["cur"]
        state["cur"] = None
        calling["txn"] = cur["txn"]
        if cur["abort"]:
            abort(cur["txn"], f"chosen ({why})")
            return False
        try:
            tps = [TopicPartition(src, p, o) for p, o in sorted(cur["offsets"].items())]
            retrying(lambda: producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30),
                     "send-offsets", 60)
            h.emit("txn-commit-start", m=name, txn=cur["txn"], offsets=cur["offsets"], why=why)
            retrying(lambda: producer.commit_transaction(30), "commit", 60)
        except KafkaException as e:
            failed(cur["txn"], e, "commit")
            return False
        h.emit("txn-commit", m=name, txn=cur["txn"])
        return True

    def rewind() -> None:
        owned = consumer.assignment()
        if not owned:
            return
        got = retrying(lambda: consumer.committed(owned, timeout=10), "committed", 60)
        to = {}
        for tp in got:
            to[tp.partition] = tp.offset if tp.offset >= 0 else 0
            consumer.seek(TopicPartition(src, tp.partition, to[tp.partition]))
        h.emit("txn-rewind", m=name, offsets=to)

    # Rebalance callbacks run inside consume(); they must not raise, so a fatal error in them is
    # left in state["fenced"] for the loop.
    def on_assign(consumer_, parts):
        state["assignment"] += 1
        state["owned"] = {tp.partition for tp in parts}
        h.emit("txn-assign", m=name, a=state["assignment"], pts=sorted(state["owned"]))

    def on_revoke(consumer_, parts):
        try:
            if state["cur"] is not None and not state["fenced"]:
                end("revoke")
        except Fenced:
            state["fenced"] = True
        h.emit("txn-revoke", m=name, a=state["assignment"], pts=sorted(tp.partition for tp in parts))
        state["owned"] = set()

    def on_lost(consumer_, parts):
        try:
            if state["cur"] is not None and not state["fenced"]:
                cur, state["cur"] = state["cur"], None
                abort(cur["txn"], "partitions lost")
        except Fenced:
            state["fenced"] = True
        h.emit("txn-lost", m=name, a=state["assignment"], pts=sorted(tp.partition for tp in parts))
        state["owned"] = set()

    fenced = False
    try:
        retrying(lambda: producer.init_transactions(30), "init", 120)
        h.emit("txn-init", m=name, tid=c["transactional_id"], inc=inc)
        consumer.subscribe([src], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        while not STOP.is_set() and not state["fenced"]:
            batch = [m for m in consumer.consume(num_messages=c["batch"], timeout=0.1)]
            if state["fenced"]:
                break
            for m in batch:
                if m.error():
                    h.emit("poll-error", m=name, err=err_text(m.error()))
            batch = [m for m in batch if not m.error() and m.partition() in state["owned"]]
            cur = state["cur"]
            try:
                if batch and cur is None:
                    state["seq"] += 1
                    cur = {"txn": f"{name}.{inc}.{state['seq']}", "offsets": {}, "n": 0,
                           "due": time.monotonic() + txn_s, "abort": rng.random() < abort_ratio}
                    h.emit("txn-begin", m=name, txn=cur["txn"], a=state["assignment"])
                    state["cur"] = cur
                    calling["txn"] = cur["txn"]
                    producer.begin_transaction()
                if batch:
                    inputs = [[m.partition(), m.offset(), m.value().decode()] for m in batch]
                    h.emit("txn-produce", m=name, txn=cur["txn"], inputs=inputs)
                    for m, (p, o, v) in zip(batch, inputs):
                        producer.produce(dst, key=m.key(), value=f"{v}@{cur['txn']}".encode(), partition=p)
                        cur["offsets"][p] = max(cur["offsets"].get(p, 0), o + 1)
                    cur["n"] += len(batch)
                    producer.poll(0)
                if cur is not None and (time.monotonic() >= cur["due"] or cur["n"] >= c["batch"]):
                    if not end("due"):
                        rewind()
            except KafkaException as e:          # from begin_transaction or produce
                if state["cur"] is None:
                    raise
                state["cur"] = None
                failed(cur["txn"], e, "produce")
                rewind()
        if state["cur"] is not None and not state["fenced"]:
            end("stop")
    except Fenced:
        fenced = True
    except KafkaException as e:
        h.emit("txn-fatal", m=name, err=err_text(e), during="copier")
        fenced = True
    finally:
        h.emit("leaving", m=name)
        consumer.close()
        h.emit("end", m=name)
    if fenced or state["fenced"]:
        raise SystemExit(1)


def run_txn_final(c: dict, h: History) -> None:
    """After healing, with every copier stopped: waits until the output's last stable offset
    reaches its high watermark (every transaction ended; a transaction nobody ends keeps them
    apart), then reads the input topic, the output read_committed and the output
    read_uncommitted, each from the beginning to its end offset, and the copiers' group's
    committed offsets. Events txn-final-ends, txn-in, txn-rc, txn-ru, txn-read-done,
    txn-group-committed."""
    src, dst, parts = c["input"], c["output"], c["partitions"]
    deadline = time.monotonic() + c["timeout_s"]
    committed_isolation = c.get("committed_isolation", "read_committed")   # read_uncommitted: the planted bug

    def consumer(isolation: str) -> Consumer:
        return Consumer({"bootstrap.servers": c["bootstrap"], "group.id": f"chaos-txn-final-{os.getpid()}",
                         "isolation.level": isolation, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "enable.partition.eof": True, **QUIET})

    def ends(cons: Consumer, topic: str) -> dict[int, int]:
        out = {}
        for p in range(parts):
            while True:
                try:
                    out[p] = cons.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1]
                    break
                except KafkaException as e:
                    h.emit("final-error", topic=topic, pt=p, err=err_text(e))
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        return out

    def read(cons: Consumer, topic: str, event: str) -> None:
        end = ends(cons, topic)
        at_eof: dict[int, int] = {}
        seen: set[tuple[int, int]] = set()
        cons.assign([TopicPartition(topic, p, -2) for p in range(parts)])
        n = 0
        while time.monotonic() < deadline:
            if all(at_eof.get(p, -1) >= end[p] for p in range(parts)):
                again = ends(cons, topic)
                if again == end:
                    break
                end = again
            for m in cons.consume(num_messages=1000, timeout=0.2):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof[m.partition()] = m.offset()
                    else:
                        h.emit("final-error", topic=topic, pt=m.partition(), err=err_text(err))
                    continue
                p, o = m.partition(), m.offset()
                if (p, o) in seen:
                    continue
                seen.add((p, o))
                n += 1
                h.emit(event, pt=p, o=o, v=m.value().decode())
        complete = all(at_eof.get(p, -1) >= end[p] for p in range(parts))
        h.emit("txn-read-done", what=event, complete=complete, records=n, end=end, eof=at_eof)
        cons.close()

    # Every transaction must end: the open ones of copiers killed and never started again are
    # aborted by the coordinator after transaction.timeout.ms.
    uncommitted, committed = consumer("read_uncommitted"), consumer(committed_isolation)
    settle = time.monotonic() + c["settle_s"]
    while True:
        hw, lso = ends(uncommitted, dst), ends(committed, dst)
        if lso == hw or time.monotonic() > settle:
            break
        time.sleep(1)
    h.emit("txn-final-ends", hw=hw, lso=lso)
    uncommitted.close()
    committed.close()
    read(consumer("read_uncommitted"), src, "txn-in")
    read(consumer(committed_isolation), dst, "txn-rc")
    read(consumer("read_uncommitted"), dst, "txn-ru")
    g = Consumer({"bootstrap.servers": c["bootstrap"], "group.id": c["group"], "isolation.level": "read_committed",
                  "enable.auto.commit": False, **QUIET})
    try:
        for _ in range(5):
            try:
                got = g.committed([TopicPartition(src, p) for p in range(parts)], timeout=15)
                h.emit("txn-group-committed", offsets={tp.partition: tp.offset for tp in got
                                                       if tp.error is None and tp.offset >= 0})
                break
            except KafkaException as e:
                h.emit("txn-group-committed-error", err=err_text(e))
                time.sleep(1)
    finally:
        g.close()


MODES = {"produce": run_produce, "read": run_read, "member": run_member, "metadata": run_metadata, "final": run_final,
         "copier": run_copier, "txn-final": run_txn_final}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--conf", required=True, help="JSON object with the mode's settings")
    ap.add_argument("--out", required=True, help="history file (JSON lines, appended)")
    args = ap.parse_args()
    conf = json.loads(args.conf)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    faulthandler.register(signal.SIGUSR1, all_threads=True)   # the harness asks a stuck client where it is
    h = History(args.out, sync=args.mode in ("member", "copier"))
    h.emit("start", mode=args.mode, pid=os.getpid())
    try:
        MODES[args.mode](conf, h)
    except Exception as e:  # noqa: BLE001
        h.emit("crash", err=f"{type(e).__name__}: {e}")
        raise
    finally:
        h.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
