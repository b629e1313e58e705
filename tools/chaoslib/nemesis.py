"""The nemesis: which faults a run gets, when, and how each one starts and heals.

A run's fault schedule is drawn from `random.Random(seed)`: the kinds, their start times, how long
each is held, and every random choice a fault makes (which half a node falls in, which partition's
leader to aim at, how far a clock jumps). Faults aimed at a role (the active controller, the
leader of partition 3) hit whichever node holds that role when the fault starts, found by
DescribeQuorum and Metadata; so the same seed replays the same schedule, and the same targets as
long as the cluster is in the same state. Faults never outlive the fault phase: each heals
before the final read.

Network faults are sets of dropped directions between hosts (see hosts.py); the cuts of every
active fault are applied as one union, so a mix of two network faults is both at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from chaoslib import hosts

KINDS = {
    "partition": "the nodes split into two random halves that cannot reach each other",
    "isolate-controller": "the active controller cut from every other node",
    "leader-controllers": "a partition leader cut from the controllers (other brokers and clients still reach it)",
    "isolate-leader": "a partition leader cut from every other node (clients still reach it)",
    "one-way": "one node's packets to every other node dropped, or every node's packets to it: one way only",
    "bridge": "two halves that cannot reach each other, joined by one node that reaches both",
    "kill": "kill -9 of a node (a partition leader, the active controller or any node); restarted at heal",
    "pause": "SIGSTOP of a node for longer than the broker session timeout; SIGCONT at heal",
    "pause-follower": "SIGSTOP of a follower of a partition (a broker; it leads other partitions); SIGCONT at heal",
    "pause-controller": "SIGSTOP of the active controller; SIGCONT at heal",
    "clock": "one or two nodes' wall clocks jump 5-300 s ahead or back (libfaketime); reset at heal",
    "disk": "a broker's log dir (a tmpfs of its own) filled to the last byte; emptied, and the broker "
            "restarted if it stopped, at heal",
    "stale-follower": "a follower cut from its leader until it leaves the ISR; then the other follower is "
                      "killed and the leader cut from every node: only the stale replica is left to lead",
    "mix": "two of the other selected kinds at once",
}
NETWORK_KINDS = {"partition", "isolate-controller", "leader-controllers", "isolate-leader", "one-way", "bridge"}
DEFAULT_KINDS = [k for k in KINDS]

# The shortest hold per kind: a pause outlasts the broker session timeout (3 s) with margin; the
# stale follower needs replica.lag.time.max.ms (5 s) to leave the ISR before the second step.
MIN_HOLD_S = {"pause": 5.0, "pause-follower": 5.0, "pause-controller": 5.0, "stale-follower": 16.0}
# The stale follower's second step waits until Metadata shows it out of the ISR (the leader
# shrinks it once it lagged replica.lag.time.max.ms, checked every half of that), at least
# STALE_STEP_MIN_S and at most STALE_STEP_MAX_S after the cut.
STALE_STEP_MIN_S = 6.0
STALE_STEP_MAX_S = 12.0


@dataclass
class Fault:
    kind: str
    start: float                  # seconds after the workload started
    end: float
    seed: int
    parts: list["Fault"] = field(default_factory=list)   # for "mix"
    # filled in when it runs:
    started_at: float | None = None
    healed_at: float | None = None
    desc: str = ""
    cuts: set = field(default_factory=set)
    killed: list = field(default_factory=list)
    paused: list = field(default_factory=list)
    clocks: list = field(default_factory=list)
    disks: list = field(default_factory=list)
    target_nodes: list = field(default_factory=list)
    target_partition: int | None = None
    pending_steps: list = field(default_factory=list)    # [(seconds after start, fault, step name)]

    def to_json(self) -> dict:
        return {"kind": self.kind, "label": self.label, "start": self.start, "end": self.end, "seed": self.seed,
                "started_at": self.started_at, "healed_at": self.healed_at, "desc": self.desc,
                "targets": self.target_nodes, "partition": self.target_partition,
                "parts": [p.to_json() for p in self.parts]}

    @property
    def label(self) -> str:
        return "+".join(p.kind for p in self.parts) if self.kind == "mix" else self.kind


def schedule(seed: int, kinds: list[str], seconds: float, hold: tuple[float, float], gap: tuple[float, float],
             warmup: float) -> list[Fault]:
    """The faults of a run: back to back with healthy gaps between them, the first after
    `warmup` seconds, every one healed by `seconds`."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    t = warmup
    while True:
        kind = rng.choice(kinds)
        held = rng.uniform(*hold)
        fseed = rng.getrandbits(32)
        parts = []
        if kind == "mix":
            pool = [k for k in kinds if k != "mix"] or [k for k in KINDS if k != "mix"]
            a = rng.choice(pool)
            rest = [k for k in pool if k != a]
            b = rng.choice(rest or pool)
            parts = [Fault(a, t, 0, rng.getrandbits(32)), Fault(b, t, 0, rng.getrandbits(32))]
            held = max([held] + [MIN_HOLD_S.get(p.kind, 0) for p in parts])
        held = max(held, MIN_HOLD_S.get(kind, 0))
        if t + held > seconds:
            break
        f = Fault(kind, t, t + held, fseed, parts)
        for p in parts:
            p.end = f.end
        faults.append(f)
        t += held + rng.uniform(*gap)
    return faults


class Nemesis:
    """Starts, steps and heals faults against a cluster (cluster.Cluster) and its network
    (hosts.Network). `log(event, **fields)` records what it did in the run's history."""

    def __init__(self, cluster, net: hosts.Network, topic: str, partitions: int, log):
        self.cluster = cluster
        self.net = net
        self.topic = topic
        self.partitions = partitions
        self.log = log
        self.active: list[Fault] = []

    # -- helpers ----------------------------------------------------------------------------

    def node_names(self) -> list[str]:
        return [n.name for n in self.cluster.nodes]

    def apply_cuts(self) -> None:
        cuts = set()
        for f in self.active:
            for x in [f] + f.parts:
                cuts |= x.cuts
        self.net.apply(cuts)

    @staticmethod
    def both_ways(a: list[str], b: list[str]) -> set:
        return {(x, y) for x in a for y in b} | {(y, x) for x in a for y in b}

    def leader_of(self, rng: random.Random, f: Fault) -> tuple[int, object]:
        """A partition (drawn from the seed) and its leader node, by Metadata; a random broker
        if nobody answers or the partition has no leader."""
        p = rng.randrange(self.partitions)
        f.target_partition = p
        state = self.cluster.partition_state(self.topic)
        if state and p in state and state[p][0] >= 0:
            try:
                return p, self.cluster.node(state[p][0])
            except KeyError:
                pass
        return p, rng.choice(self.cluster.brokers)

    def follower_of(self, rng: random.Random, f: Fault):
        """A follower (drawn from the seed) of a partition (drawn from the seed), by Metadata."""
        p = rng.randrange(self.partitions)
        f.target_partition = p
        state = self.cluster.partition_state(self.topic)
        choice = rng.random()
        if state and p in state:
            leader, replicas, _ = state[p]
            followers = [r for r in replicas if r != leader]
            if followers:
                return self.cluster.node(followers[int(choice * len(followers))])
        return self.cluster.brokers[int(choice * len(self.cluster.brokers))]

    def active_controller(self, rng: random.Random):
        cid = self.cluster.active_controller()
        if cid is not None:
            try:
                return self.cluster.node(cid)
            except KeyError:
                pass
        return rng.choice(self.cluster.controllers)

    def pick_node(self, rng: random.Random, f: Fault, allow_controller: bool = True):
        """A partition leader (half the time), the active controller (a quarter) or any node."""
        r = rng.random()
        if r < 0.5:
            return self.leader_of(rng, f)[1]
        if r < 0.75 and allow_controller:
            return self.active_controller(rng)
        pool = self.cluster.nodes if allow_controller else self.cluster.brokers
        return rng.choice(pool)

    # -- start, step, heal ----------------------------------------------------------------

    def start(self, f: Fault, now: float) -> None:
        f.started_at = now
        self.active.append(f)
        for x in ([f] if f.kind != "mix" else f.parts):
            x.started_at = now
            self._start_one(x, now)
        if f.kind == "mix":
            f.desc = " + ".join(p.desc for p in f.parts)
            f.target_nodes = sorted({n for p in f.parts for n in p.target_nodes})
            f.pending_steps = [(at, p, name) for p in f.parts for at, _, name in p.pending_steps]
        self.apply_cuts()
        self.log("fault-start", kind=f.label, desc=f.desc, targets=f.target_nodes, partition=f.target_partition,
                 cuts=sorted([list(c) for x in [f] + f.parts for c in x.cuts]))

    def _start_one(self, f: Fault, now: float) -> None:
        rng = random.Random(f.seed)
        names = self.node_names()
        k = f.kind
        if k == "partition":
            shuffled = names[:]
            rng.shuffle(shuffled)
            half = len(shuffled) // 2
            a, b = sorted(shuffled[:half]), sorted(shuffled[half:])
            f.cuts = self.both_ways(a, b)
            f.target_nodes = a
            f.desc = f"{a} | {b}"
        elif k == "isolate-controller":
            n = self.active_controller(rng)
            f.cuts = self.both_ways([n.name], [x for x in names if x != n.name])
            f.target_nodes = [n.name]
            f.desc = f"active controller {n.name} alone"
        elif k == "leader-controllers":
            p, n = self.leader_of(rng, f)
            ctrls = [c.name for c in self.cluster.controllers]
            f.cuts = self.both_ways([n.name], ctrls)
            f.target_nodes = [n.name]
            f.desc = f"{n.name} (leader of {self.topic}-{p}) cut from the controllers"
        elif k == "isolate-leader":
            p, n = self.leader_of(rng, f)
            f.cuts = self.both_ways([n.name], [x for x in names if x != n.name])
            f.target_nodes = [n.name]
            f.desc = f"{n.name} (leader of {self.topic}-{p}) cut from every node; clients reach it"
        elif k == "one-way":
            n = rng.choice(self.cluster.nodes)
            others = [x for x in names if x != n.name]
            if rng.random() < 0.5:
                f.cuts = {(n.name, o) for o in others}
                f.desc = f"{n.name} -> every node dropped (it still hears them)"
            else:
                f.cuts = {(o, n.name) for o in others}
                f.desc = f"every node -> {n.name} dropped (it still reaches them)"
            f.target_nodes = [n.name]
        elif k == "bridge":
            shuffled = names[:]
            rng.shuffle(shuffled)
            mid = shuffled[0]
            rest = shuffled[1:]
            half = len(rest) // 2
            a, b = sorted(rest[:half]), sorted(rest[half:])
            f.cuts = self.both_ways(a, b)
            f.target_nodes = [mid]
            f.desc = f"{a} | {b}, {mid} reaches both"
        elif k == "kill":
            n = self.pick_node(rng, f)
            n.kill9()
            f.killed = [n.name]
            f.target_nodes = [n.name]
            f.desc = f"kill -9 {n.name}"
            self.log("node-kill", node=n.name)
        elif k in ("pause", "pause-follower", "pause-controller"):
            if k == "pause":
                n = self.pick_node(rng, f)
            elif k == "pause-controller":
                n = self.active_controller(rng)
            else:
                n = self.follower_of(rng, f)
            n.pause()
            f.paused = [n.name]
            f.target_nodes = [n.name]
            f.desc = f"SIGSTOP {n.name}"
            self.log("node-pause", node=n.name)
        elif k == "clock":
            count = 1 if rng.random() < 0.6 else 2
            targets = rng.sample(self.cluster.nodes, count)
            for n in targets:
                jump = rng.choice([-1, 1]) * rng.uniform(5, 300)
                if self.cluster.faketime:
                    n.set_clock_offset(jump)
                f.clocks.append((n.name, round(jump)))
            f.target_nodes = [n.name for n in targets]
            f.desc = ", ".join(f"{name} clock {j:+d} s" for name, j in f.clocks)
            if not self.cluster.faketime:
                f.desc += " (no libfaketime: not applied)"
        elif k == "disk":
            n = rng.choice(self.cluster.brokers) if rng.random() < 0.5 else self.leader_of(rng, f)[1]
            n.disk_full = True
            written = hosts.fill_disk(n.data_dir)
            f.disks = [n.name]
            f.target_nodes = [n.name]
            f.desc = f"{n.name} log dir full ({written >> 20} MiB filler)"
        elif k == "stale-follower":
            p = rng.randrange(self.partitions)
            f.target_partition = p
            state = self.cluster.partition_state(self.topic)
            if state and p in state and state[p][0] >= 0 and len(state[p][1]) >= 3:
                leader_id, replicas, _ = state[p]
                followers = [r for r in replicas if r != leader_id]
                stale = rng.choice(followers)
                other = [r for r in followers if r != stale][0]
                L, S, O = (self.cluster.node(i) for i in (leader_id, stale, other))
                f.cuts = self.both_ways([L.name], [S.name])
                f.target_nodes = [L.name, S.name, O.name]
                f.desc = (f"{self.topic}-{p}: {S.name} cut from leader {L.name}; once it left the ISR "
                          f"kill -9 {O.name} and cut {L.name} from every node")
                f.pending_steps = [(STALE_STEP_MIN_S, f, "stale-step")]
            else:
                f.desc = f"{self.topic}-{p}: no leader with 3 replicas to aim at; nothing done"
        else:
            raise ValueError(f"unknown fault kind {k}")

    def step(self, now: float) -> None:
        """Runs the steps of active faults that are due."""
        for f in self.active:
            due = [s for s in f.pending_steps if f.started_at + s[0] <= now]
            for s in due:
                f.pending_steps.remove(s)
                _, x, name = s
                if name == "stale-step":
                    L, S, O = (self.cluster.node(n) for n in x.target_nodes)
                    state = self.cluster.partition_state(self.topic) or {}
                    isr = state.get(x.target_partition, (None, [], []))[2]
                    if S.node_id in isr and now - f.started_at < STALE_STEP_MAX_S:
                        f.pending_steps.append((now - f.started_at + 0.5, x, name))   # look again
                        continue
                    O.kill9()
                    x.killed.append(O.name)
                    self.log("node-kill", node=O.name)
                    x.cuts = x.cuts | self.both_ways([L.name], [n for n in self.node_names() if n != L.name])
                    self.apply_cuts()
                    self.log("fault-step", kind=x.kind, desc=f"kill -9 {O.name}; {L.name} cut from every node",
                             stale_in_isr=S.node_id in isr)

    def heal(self, f: Fault, now: float) -> None:
        if f in self.active:
            self.active.remove(f)
        f.healed_at = now
        f.pending_steps = []
        self.apply_cuts()
        for x in [f] + f.parts:
            for name in x.paused:
                self.cluster.node(name).resume()
                self.log("node-resume", node=name)
            for name, _ in x.clocks:
                if self.cluster.faketime:
                    self.cluster.node(name).set_clock_offset(0)
            for name in x.disks:
                n = self.cluster.node(name)
                hosts.free_disk(n.data_dir)
                n.disk_full = False
                if not n.alive():
                    n.start()
                    self.log("node-start", node=name, why="disk emptied")
            for name in x.killed:
                n = self.cluster.node(name)
                if not n.alive():
                    n.start()
                    self.log("node-start", node=name, why="restart after kill")
        self.log("fault-heal", kind=f.label, desc=f.desc)

    def heal_all(self, now: float) -> None:
        for f in list(self.active):
            self.heal(f, now)
        self.net.heal()
