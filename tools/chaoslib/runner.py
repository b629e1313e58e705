"""One chaos run from start to cleanup, and the summary of several.

A run: hosts (namespaces, bridge) -> format and start the nodes -> create the topic (RF=3,
min.insync.replicas=2) -> start the clients (producers, a reader, group members, the metadata
workload) -> the fault phase (the nemesis schedule; group members crash, leave and join on a
schedule of their own) -> heal everything, wait until every node runs and every partition has its
full ISR -> stop the clients (producers flush) -> the final read -> stop the nodes -> check the
history -> write run.json and report.html. Whatever happens, the finally blocks kill every process,
delete the namespaces and unmount the tmpfs log dirs.

The harness itself runs inside the control host's namespace (never cut) from the moment the hosts
exist, so its Metadata and DescribeQuorum queries travel over the bridge like anyone's.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaoslib import checker, hosts, report
from chaoslib.cluster import Cluster, ClusterError, pdeathsig
from chaoslib.nemesis import KINDS, Nemesis, schedule

TOOLS = Path(__file__).resolve().parents[1]
TOPIC = "chaos"
GROUP = "chaos-group"
MD_PREFIX = "chaos-md-"
TXN_INPUT = "chaos-txn-in"
TXN_OUTPUT = "chaos-txn-out"
TXN_GROUP = "chaos-txn-group"
# The transactional workload's broker settings: a small __transaction_state (Kafka's 50
# partitions is a lot of replicas for a chaos cluster) and a quick sweep of timed-out
# transactions, so a copier killed mid-transaction and not yet started again holds the output's
# last stable offset back for transaction.timeout.ms at most.
TXN_BROKER_PROPS = {"transaction.state.log.num.partitions": 6,
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000}
TXN_TIMEOUT_MS = 10_000


@dataclass
class Options:
    binary: Path
    out: Path
    seconds: float = 30
    kinds: list = field(default_factory=lambda: list(KINDS))
    controllers: int = 3
    brokers: int = 3
    hold: tuple = (6.0, 12.0)
    gap: tuple = (4.0, 8.0)
    warmup: float = 5.0
    rate: int = 1000
    producers: int = 3
    partitions: int = 6
    keys: int = 24
    members: int = 3
    group: bool = True
    metadata: bool = True
    unclean: bool = False
    broken: list = field(default_factory=list)
    disk_mb: int = 256
    request_timeout_ms: int = 10_000
    recovery_s: float = 5.0
    keep_data: bool = False
    quiet: bool = False
    txn: bool = False               # the transactional workload (exactly-once copiers)
    copiers: int = 2
    txn_rate: int = 200
    txn_partitions: int = 3
    txn_batch: int = 200            # records at most in one transaction
    txn_ms: int = 250               # how long a copier keeps a transaction open (over several polls)
    txn_abort_ratio: float = 0.1    # transactions a copier aborts on purpose
    txn_read_uncommitted: bool = False   # the planted bug: the final "read_committed" read is not
    txn_debug: bool = False         # librdkafka debug logs of the copiers (clients/c<i>.log)


class ClientProc:
    """A workload.py process inside the clients' namespace."""

    def __init__(self, name: str, mode: str, conf: dict, run_dir: Path, ns: str):
        self.name = name
        self.mode = mode
        self.conf = conf
        self.out = run_dir / "history" / f"{name}.jsonl"
        self.log = run_dir / "clients" / f"{name}.log"
        self.ns = ns
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(TOOLS), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, sys.executable, "-m", "chaoslib.workload", self.mode,
                 "--conf", json.dumps(self.conf), "--out", str(self.out)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=pdeathsig)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.wait(5)


def copier_schedule(seed: int, seconds: float, copiers: int) -> list[tuple[float, str]]:
    """When a copier is killed (-9) or stopped (SIGTERM: it ends its transaction and leaves the
    group); either way it starts again 1-4 s later with the same transactional id. Drawn from a
    random stream of its own, so adding the transactional workload changes no other schedule."""
    rng = random.Random(seed ^ 0x7E4A5)
    out = []
    t = rng.uniform(4, 8)
    while copiers and t < seconds - 3:
        out.append((t, rng.choice(["crash", "crash", "stop"]), rng.randrange(copiers), rng.uniform(1, 4)))
        t += rng.uniform(5, 10)
    return out


def group_schedule(seed: int, seconds: float, members: int) -> list[tuple[float, str]]:
    """When group members crash (kill -9), leave (SIGTERM: LeaveGroup) or a member joins."""
    rng = random.Random(seed ^ 0x5EED6)
    out = []
    t = rng.uniform(3, 6)
    while t < seconds - 3:
        out.append((t, rng.choice(["crash", "crash", "leave", "join"])))
        t += rng.uniform(4, 9)
    return out


class Run:
    def __init__(self, opts: Options, seed: int, index: int, total: int):
        self.opts = opts
        self.seed = seed
        self.index = index
        self.total = total
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = opts.out / f"{stamp}-run{index}-seed{seed}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "history").mkdir(exist_ok=True)
        self.harness = open(self.dir / "history" / "harness.jsonl", "a", buffering=1)
        self.harness_lock = threading.Lock()
        self.t0 = time.monotonic()
        self.clients: dict[str, ClientProc] = {}
        self.crashes: list[dict] = []
        self.notes: list[str] = []
        broker_props = dict(TXN_BROKER_PROPS) if opts.txn else {}
        if opts.unclean:
            broker_props["unclean.leader.election.enable"] = "true"
        broker_env = {"RUNNEL_TEST_BROKEN_RULES": ",".join(opts.broken)} if opts.broken else {}
        self.cluster = Cluster(self.dir, opts.binary, opts.controllers, opts.brokers, broker_props, {},
                               faketime="clock" in opts.kinds,
                               disk_mb=opts.disk_mb, broker_env=broker_env)
        self.net = hosts.Network(self.cluster.hosts)
        self.observer_stop = threading.Event()
        self.started_faults: list = []     # nemesis.Fault, as they started (kept if the run breaks off)
        self.incarnations: dict[str, int] = {}   # copier name -> how many times it was started

    # -- bookkeeping ----------------------------------------------------------------------

    def log(self, e: str, **fields) -> None:
        fields["t"] = round(time.monotonic(), 6)
        fields["e"] = e
        with self.harness_lock:
            self.harness.write(json.dumps(fields, separators=(",", ":"), default=str) + "\n")

    def say(self, text: str) -> None:
        if not self.opts.quiet:
            print(f"  [{time.monotonic() - self.t0:6.1f}s] {text}", flush=True)

    def rel(self) -> float:
        return time.monotonic() - self.t0

    # -- clients --------------------------------------------------------------------------

    def client(self, name: str, mode: str, conf: dict) -> ClientProc:
        c = ClientProc(name, mode, conf, self.dir, self.cluster.hosts["clients"].ns)
        c.start()
        self.clients[name] = c
        self.log("client-start", name=name, mode=mode)
        return c

    def start_copier(self, name: str) -> ClientProc:
        inc = self.incarnations.get(name, 0) + 1
        self.incarnations[name] = inc
        return self.client(name, "copier", {
            "bootstrap": self.cluster.bootstrap, "input": TXN_INPUT, "output": TXN_OUTPUT, "group": TXN_GROUP,
            "transactional_id": f"chaos-txn-{name}", "name": name, "incarnation": inc, "batch": self.opts.txn_batch,
            "txn_ms": self.opts.txn_ms, "abort_ratio": self.opts.txn_abort_ratio, "seed": self.seed,
            "debug": self.opts.txn_debug,
            "transaction_timeout_ms": TXN_TIMEOUT_MS})

    def topics(self) -> list[str]:
        return [TOPIC] + ([TXN_INPUT, TXN_OUTPUT] if self.opts.txn else [])

    def member_conf(self, name: str) -> dict:
        return {"bootstrap": self.cluster.bootstrap, "topic": TOPIC, "group": GROUP, "name": name, "commit_every": 100}

    # -- the observer thread: who leads, who is the active controller ---------------------------

    def observe(self) -> None:
        last_ctrl = 0.0
        while not self.observer_stop.wait(1.0):
            try:
                state = self.cluster.partition_state(TOPIC)
                if state is not None:
                    self.log("leaders", parts={p: {"leader": s[0], "isr": s[2]} for p, s in state.items()})
                if time.monotonic() - last_ctrl > 3:
                    last_ctrl = time.monotonic()
                    self.log("controller", id=self.cluster.active_controller(1500))
            except Exception as e:  # noqa: BLE001 - the observer only annotates
                self.log("observer-error", err=str(e))

    # -- the run --------------------------------------------------------------------------

    def create_topic(self) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic
        conf = {"min.insync.replicas": str(min(2, self.opts.brokers))}
        if self.opts.unclean:
            conf["unclean.leader.election.enable"] = "true"
        a = AdminClient({"bootstrap.servers": self.cluster.bootstrap, "log_level": 3})
        rf = min(3, self.opts.brokers)
        new = [NewTopic(TOPIC, self.opts.partitions, rf, config=conf)]
        if self.opts.txn:
            new += [NewTopic(t, self.opts.txn_partitions, rf, config=conf) for t in (TXN_INPUT, TXN_OUTPUT)]
        for fut in a.create_topics(new, operation_timeout=30, request_timeout=40).values():
            fut.result(60)
        deadline = time.monotonic() + 60
        while True:
            ok, why = self.cluster.healthy(self.topics())
            if ok:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"topics {', '.join(self.topics())} not ready: {why}")
            time.sleep(0.3)

    def check_faketime(self) -> None:
        """Proves that libfaketime moves the wall clock the Swift runtime reads: the active
        controller's clock jumps an hour ahead, and DescribeQuorum's lastFetchTimestamp (the
        leader's wall clock) must show it; then it jumps back."""
        cid = self.cluster.active_controller()
        if cid is None:
            self.notes.append("clock check skipped: no active controller answered")
            return
        node = self.cluster.node(cid)
        node.set_clock_offset(3600)
        skew = None
        try:
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                time.sleep(0.5)       # the timestamp file is re-read every second
                seen = self.cluster.quorum_status() or {}
                if seen.get("leaderId") != cid:
                    continue
                # the leader stamps its voters' fetches with its wall clock
                stamps = [r.get("lastFetchTimestamp", 0) for r in seen.get("replicas", [])]
                skew = (max(stamps) / 1000 - time.time()) if stamps else None
                if skew is not None and skew > 3500:
                    break
        finally:
            node.set_clock_offset(0)
        self.log("clock-check", node=node.name, skew_s=skew)
        if skew is None or not 3500 < skew < 3700:
            raise ClusterError(f"libfaketime does not move {node.name}'s wall clock (DescribeQuorum shows a skew of {skew} s "
                               f"after a jump of +3600 s): clock faults would do nothing")
        self.say(f"clock check: {node.name} under libfaketime, +3600 s seen by DescribeQuorum ({skew:.0f} s)")

    def check_nodes(self) -> None:
        """Notices nodes that exited without the nemesis asking: a crash (reported, then restarted
        so the run goes on), or a broker on a full disk (expected, restarted when it heals)."""
        for n in self.cluster.nodes:
            if n.proc is None or n.down_expected or n.proc.poll() is None:
                continue
            rc = n.proc.returncode
            if n.disk_full and rc == 1:
                n.down_expected = True
                self.log("node-exit", node=n.name, rc=rc, expected=True, why="log dir full")
                self.say(f"{n.name} stopped on its full disk (exit {rc}), as it should")
                continue
            tail = n.log_tail(40)
            self.crashes.append({"node": n.name, "rc": rc, "t": round(self.rel(), 3), "log_tail": tail})
            self.log("node-exit", node=n.name, rc=rc, expected=False)
            self.say(f"CRASH: {n.name} exited with {rc}; restarting it. Log tail:\n{tail}")
            n.start()
            self.log("node-start", node=n.name, why="after crash")

    def execute(self) -> dict:
        o = self.opts
        faults = schedule(self.seed, o.kinds, o.seconds, o.hold, o.gap, o.warmup)
        churn = group_schedule(self.seed, o.seconds, o.members) if o.group else []
        self.net.create()
        hosts.enter_namespace(self.cluster.hosts["control"].ns)
        self.cluster.prepare()
        self.say(f"starting {o.controllers} controllers + {o.brokers} brokers ({o.binary})")
        self.cluster.start()
        self.create_topic()
        self.log("topic-ready", topic=TOPIC, partitions=o.partitions)
        if o.txn:
            self.log("topic-ready", topic=TXN_INPUT, partitions=o.txn_partitions)
            self.log("topic-ready", topic=TXN_OUTPUT, partitions=o.txn_partitions)
        if self.cluster.faketime:
            self.check_faketime()
        if o.unclean:
            self.say("unclean.leader.election.enable=true")
        if o.broken:
            self.say(f"RUNNEL_TEST_BROKEN_RULES={','.join(o.broken)} on every broker")

        bootstrap = self.cluster.bootstrap
        self.client("producers", "produce", {
            "bootstrap": bootstrap, "topic": TOPIC, "producers": o.producers, "rate": o.rate, "keys": o.keys,
            "seed": self.seed, "request_timeout_ms": o.request_timeout_ms,
            "delivery_timeout_ms": int((o.seconds + 120) * 1000), "flush_s": 60})
        self.client("reader", "read", {"bootstrap": bootstrap, "topic": TOPIC, "partitions": o.partitions})
        member_seq = 0
        live_members: list[str] = []
        if o.group:
            for _ in range(o.members):
                name = f"m{member_seq}"
                member_seq += 1
                self.client(name, "member", self.member_conf(name))
                live_members.append(name)
        if o.metadata:
            self.client("metadata", "metadata", {
                "bootstrap": bootstrap, "brokers": [[b.node_id, b.address] for b in self.cluster.brokers],
                "prefix": MD_PREFIX, "replication_factor": min(3, o.brokers), "seed": self.seed, "settle_s": 30})

        copiers: list[str] = []
        copier_events = copier_schedule(self.seed, o.seconds, o.copiers) if o.txn else []
        copier_restarts: list[tuple[float, str]] = []
        if o.txn:
            self.client("txn-feed", "produce", {
                "bootstrap": bootstrap, "topic": TXN_INPUT, "producers": 1, "rate": o.txn_rate, "keys": o.keys,
                "seed": self.seed ^ 0x7E4A5, "request_timeout_ms": o.request_timeout_ms,
                "delivery_timeout_ms": int((o.seconds + 120) * 1000), "flush_s": 60,
                "event_prefix": "in-", "value_prefix": "i"})
            copiers = [f"c{i}" for i in range(o.copiers)]
            for name in copiers:
                self.start_copier(name)

        self.t0 = time.monotonic()
        self.log("workload-start", seed=self.seed, faults=[f.to_json() for f in faults])
        observer = threading.Thread(target=self.observe, daemon=True)
        observer.start()
        nem = Nemesis(self.cluster, self.net, TOPIC, o.partitions, self.log)
        rng = random.Random(self.seed ^ 0xC0FFEE)
        restarts: list[tuple[float, str]] = []
        self.say(f"workload: {o.rate} records/s by {o.producers} idempotent producers, {o.partitions} partitions, "
                 f"{o.members if o.group else 0} group members; {len(faults)} faults over {o.seconds:.0f} s")
        if o.txn:
            self.say(f"transactional workload: {o.txn_rate} records/s into {TXN_INPUT}, {o.copiers} exactly-once copiers "
                     f"to {TXN_OUTPUT} ({o.txn_partitions} partitions each), {len(copier_events)} copier kills/stops")
        pending = list(faults)
        started = self.started_faults
        while True:
            now = self.rel()
            if now >= o.seconds:
                break
            for f in list(pending):
                if f.start <= now:
                    pending.remove(f)
                    nem.start(f, now)
                    started.append(f)
                    self.say(f"fault {f.label}: {f.desc}")
            for f in list(nem.active):
                if f.end <= now:
                    nem.heal(f, now)
                    self.say(f"healed {f.label}")
            nem.step(now)
            while churn and churn[0][0] <= now:
                _, action = churn.pop(0)
                if action in ("crash", "leave") and len(live_members) > 1:
                    victim = rng.choice(live_members)
                    live_members.remove(victim)
                    c = self.clients[victim]
                    if action == "crash":
                        c.kill()
                        self.log("member-crash", name=victim)
                    else:
                        c.signal(signal.SIGTERM)
                        self.log("member-leave", name=victim)
                    restarts.append((now + rng.uniform(2, 5), victim))
                elif action == "join" and len(live_members) < o.members + 2:
                    name = f"m{member_seq}"
                    member_seq += 1
                    self.client(name, "member", self.member_conf(name))
                    live_members.append(name)
            for r in list(restarts):
                if r[0] <= now:
                    restarts.remove(r)
                    name = f"m{member_seq}"
                    member_seq += 1
                    self.client(name, "member", self.member_conf(name))
                    live_members.append(name)
            self.step_copiers(now, copier_events, copier_restarts)
            self.check_nodes()
            for c in self.clients.values():
                if c.mode in ("produce", "read", "metadata") and not c.alive():
                    raise RuntimeError(f"client {c.name} exited with {c.proc.returncode}; see {c.log}")
            time.sleep(0.05)

        # Heal, recover, stop the clients, read everything.
        nem.heal_all(self.rel())
        for n in self.cluster.nodes:
            if not n.alive():
                n.disk_full = False
                n.start()
                self.log("node-start", node=n.name, why="final heal")
        self.log("healed-all")
        self.say("healed everything; waiting for every node and a full ISR everywhere")
        healthy_after = self.wait_healthy(120)
        time.sleep(o.recovery_s)
        # Every copier runs again before the end, so each transactional id's last instance ends
        # its transactions itself (a new instance also aborts what a killed one left open).
        for name in copiers:
            if not self.clients[name].alive():
                self.start_copier(name)
                self.log("copier-start", name=name, why="final heal")
        self.log("stop-clients")
        for c in self.clients.values():
            if c.mode not in ("member", "copier"):
                c.signal(signal.SIGTERM)
        # The copiers stop a little later, to copy what the feed wrote last.
        if copiers:
            time.sleep(2)
        for name in copiers:
            self.clients[name].signal(signal.SIGTERM)
        for name in live_members:
            self.clients[name].signal(signal.SIGTERM)
        for c in self.clients.values():
            if not c.wait(90):
                self.notes.append(f"client {c.name} did not stop in 90 s; killed (its Python stacks are in {c.log})")
                c.signal(signal.SIGUSR1)      # faulthandler: where it is stuck, into its log
                c.wait(2)
                c.kill()
        self.check_nodes()
        self.wait_healthy(60)
        self.say("final read")
        fin = self.client("final", "final", {"bootstrap": self.cluster.bootstrap, "topic": TOPIC,
                                             "partitions": o.partitions, "timeout_s": 120,
                                             "group": GROUP if o.group else None})
        txn_fin = None
        if o.txn:
            txn_fin = self.client("txn-final", "txn-final", {
                "bootstrap": self.cluster.bootstrap, "input": TXN_INPUT, "output": TXN_OUTPUT, "group": TXN_GROUP,
                "partitions": o.txn_partitions, "timeout_s": 150, "settle_s": 2 * TXN_TIMEOUT_MS / 1000 + 5,
                "committed_isolation": "read_uncommitted" if o.txn_read_uncommitted else "read_committed"})
        if not fin.wait(180):
            fin.kill()
            self.notes.append("the final read did not finish in 180 s")
        if txn_fin is not None and not txn_fin.wait(200):
            txn_fin.kill()
            self.notes.append("the transactional workload's final read did not finish in 200 s")
        self.observer_stop.set()
        observer.join(5)
        self.check_nodes()
        self.log("shutdown")
        self.cluster.shutdown()
        for n in self.cluster.nodes:
            rc = n.proc.returncode if n.proc else None
            if rc not in (0, None, -signal.SIGKILL) and not (n.disk_full and rc == 1):
                self.crashes.append({"node": n.name, "rc": rc, "t": round(self.rel(), 3), "log_tail": n.log_tail(40),
                                     "during": "shutdown"})
        return {"faults": [f.to_json() for f in started], "healthy_after_s": healthy_after}

    def step_copiers(self, now: float, schedule: list, restarts: list) -> None:
        """The copiers' own churn: kill -9 or SIGTERM on their schedule, and start again (same
        transactional id) those due; a copier that exited by itself (a fatal error: fenced, or
        its epoch bumped by the coordinator) starts again after a second."""
        while schedule and schedule[0][0] <= now:
            _, action, i, pause = schedule.pop(0)
            name = f"c{i}"
            c = self.clients[name]
            if not c.alive() or any(r[1] == name for r in restarts):
                continue
            if action == "crash":
                c.kill()
                self.log("copier-crash", name=name)
            else:
                c.signal(signal.SIGTERM)
                self.log("copier-stop", name=name)
            restarts.append((now + pause, name))
        for name, c in list(self.clients.items()):
            if c.mode == "copier" and not c.alive() and not any(r[1] == name for r in restarts):
                self.log("copier-exit", name=name, rc=c.proc.returncode if c.proc else None)
                restarts.append((now + 1.0, name))
        for r in list(restarts):
            if r[0] <= now:
                c = self.clients[r[1]]
                if c.alive():
                    if not c.wait(0.05):
                        continue          # a stopping copier ends its transaction first
                restarts.remove(r)
                self.start_copier(r[1])
                self.log("copier-start", name=r[1])

    def wait_healthy(self, timeout: float) -> float | None:
        start = time.monotonic()
        why = ""
        while time.monotonic() - start < timeout:
            self.check_nodes()
            ok, why = self.cluster.healthy(self.topics())
            if ok:
                took = round(time.monotonic() - start, 2)
                self.log("healthy", after_s=took)
                return took
            time.sleep(0.5)
        self.notes.append(f"the cluster was not healthy {timeout:.0f} s after healing: {why}")
        self.log("unhealthy", why=why)
        self.say(f"NOT HEALTHY after {timeout:.0f} s: {why}")
        return None

    def cleanup(self, failed: bool) -> None:
        self.observer_stop.set()
        for c in self.clients.values():
            try:
                c.kill()
            except Exception:  # noqa: BLE001
                pass
        self.cluster.kill_all()
        if failed or self.opts.keep_data:
            for b in self.cluster.brokers:
                try:
                    if b.data_dir.is_dir():
                        shutil.copytree(b.data_dir, b.workdir / "data-copy", symlinks=True,
                                        ignore=shutil.ignore_patterns("chaos-filler"), dirs_exist_ok=True)
                except Exception:  # noqa: BLE001
                    pass
        self.net.destroy()
        self.cluster.unmount()
        try:
            self.harness.close()
        except Exception:  # noqa: BLE001
            pass


def run_once(opts: Options, seed: int, index: int, total: int) -> dict:
    r = Run(opts, seed, index, total)
    if not opts.quiet:
        print(f"run {index}/{total} seed {seed}: {r.dir}", flush=True)
    result: dict = {"seed": seed, "index": index, "dir": str(r.dir)}
    error = None
    info = {}
    try:
        info = r.execute()
    except (ClusterError, RuntimeError, hosts.HostError, OSError) as e:
        error = f"{type(e).__name__}: {e}"
    except BaseException:
        r.cleanup(True)
        raise
    events = checker.load(sorted((r.dir / "history").glob("*.jsonl")))
    faults = info.get("faults") or [f.to_json() for f in r.started_faults] or _faults_from_history(events)
    # The harness's own events stay out of the checks, but for the leaders it saw (which
    # partitions a broker fault's target led).
    chk = checker.Checker([e for e in events if e["src"] != "harness" or e["e"] == "leaders"], faults, r.t0)
    res = chk.run()
    failed = bool(error or r.crashes or sum(res["anomalies"].values()) or not res["final_complete"])
    r.cleanup(failed)
    result.update(res)
    result.update({"faults": faults, "crashes": r.crashes, "notes": r.notes, "error": error, "t0": r.t0,
                   "healthy_after_s": info.get("healthy_after_s"), "ok": not failed,
                   "nodes_dir": str(r.dir / "nodes"), "options": _options_json(opts)})
    result["report"] = str(report.write(r.dir / "report.html", result, events, r.t0))
    (r.dir / "run.json").write_text(json.dumps(result, indent=1, default=str))
    return result


def _faults_from_history(events: list[dict]) -> list[dict]:
    for e in events:
        if e["e"] == "workload-start":
            return e.get("faults", [])
    return []


def _options_json(o: Options) -> dict:
    return {"seconds": o.seconds, "kinds": o.kinds, "rate": o.rate, "producers": o.producers,
            "partitions": o.partitions, "controllers": o.controllers, "brokers": o.brokers,
            "hold": list(o.hold), "gap": list(o.gap), "unclean": o.unclean, "broken": o.broken,
            "binary": str(o.binary), "txn": o.txn, "copiers": o.copiers if o.txn else 0, "txn_rate": o.txn_rate,
            "txn_read_uncommitted": o.txn_read_uncommitted}
