"""Hosts on one machine: a network namespace per node, one for the clients and one for the
harness's own queries (the "control" host, never cut), each with a veth pair to a Linux bridge in
a hub namespace and an address in 10.231.0.0/24. Nothing is created in the machine's own network
namespace: the bridge and the veths live in namespaces made here, so no packet can leave the
machine, and deleting the namespaces removes every link.

Cuts are nftables rules in the hub's bridge family (`table bridge chaos`, chain `cut`): one
`ip saddr A ip daddr B drop` rule per cut direction, so a link can be cut one way or both, node
to node or client to node. Healing flushes the chain. Dropping (not rejecting) is what a real
partition does: TCP retransmits into the void until its own timeouts fire.

Everything made here is named `chaos-*`. A run holds an exclusive lock
(/run/lock/runnel-chaos.lock) for its whole life; whoever takes the lock first sweeps what a
crashed earlier run left (processes inside chaos-* namespaces, the namespaces, tmpfs mounts named
chaos-*), so a stale namespace never outlives the next start.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "chaos-"
HUB = "chaos-hub"
BRIDGE = "chaos-br"
SUBNET = "10.231.0"
LOCK_PATH = Path("/run/lock/runnel-chaos.lock")
CLONE_NEWNET = 0x40000000


class HostError(RuntimeError):
    pass


def sh(argv: list[str], check: bool = True, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    p = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise HostError(f"{' '.join(argv)} failed ({p.returncode}): {(p.stderr or p.stdout).strip()}")
    return p


def require_tools() -> None:
    """Stops with one sentence when something the harness needs is missing."""
    if os.geteuid() != 0:
        raise HostError("tools/chaos needs root (network namespaces, nftables, tmpfs mounts); run it as root")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if sh(["sh", "-c", f"command -v {tool}"], check=False).returncode != 0:
            raise HostError(f"{tool} is missing; install it: apt-get install {pkg}")


def faketime_lib() -> str | None:
    for p in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
              "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
              "/usr/lib/faketime/libfaketimeMT.so.1"):
        if os.path.exists(p):
            return p
    return None


# -- the lock and the sweep -----------------------------------------------------------------

class RunLock:
    """An exclusive flock held for a whole tools/chaos invocation: two harnesses on one machine
    would cut and delete each other's hosts."""

    def __init__(self, wait_s: float = 900):
        self.wait_s = wait_s
        self.fd: int | None = None

    def __enter__(self):
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        said = False
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not said:
                    holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
                    print(f"tools/chaos: another harness holds {LOCK_PATH} (pid {holder or '?'}); waiting", flush=True)
                    said = True
                if time.monotonic() > deadline:
                    raise HostError(f"another tools/chaos held {LOCK_PATH} for {self.wait_s:.0f}s")
                time.sleep(1)
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def chaos_namespaces() -> list[str]:
    p = sh(["ip", "netns", "list"], check=False)
    out = []
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            out.append(name)
    return out


def chaos_mounts() -> list[str]:
    """Mount points of tmpfs mounts this harness made (their source is named chaos-*)."""
    out = []
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0].startswith(PREFIX) and parts[2] == "tmpfs":
                out.append(parts[1].replace("\\040", " "))
    except OSError:
        pass
    return out


def kill_namespace_processes(ns: str) -> None:
    for _ in range(50):
        p = sh(["ip", "netns", "pids", ns], check=False)
        pids = [int(x) for x in p.stdout.split() if x.isdigit() and int(x) != os.getpid()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)   # a stopped process dies of SIGKILL too, but be sure
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def unmount(path: str) -> None:
    if sh(["umount", path], check=False).returncode != 0:
        sh(["umount", "-l", path], check=False)


def sweep(verbose: bool = True) -> list[str]:
    """Removes what an earlier, crashed harness left: the processes in chaos-* namespaces, the
    namespaces, chaos-* tmpfs mounts. Returns what it removed. Call it holding RunLock."""
    removed = []
    for ns in chaos_namespaces():
        kill_namespace_processes(ns)
        sh(["ip", "netns", "del", ns], check=False)
        removed.append(f"netns {ns}")
    for m in chaos_mounts():
        unmount(m)
        removed.append(f"mount {m}")
    if removed and verbose:
        print(f"tools/chaos: swept what an earlier run left: {', '.join(removed)}", flush=True)
    return removed


# -- the hosts ------------------------------------------------------------------------------

@dataclass
class Host:
    name: str            # "c1", "b4", "clients", "control"
    ip: str
    ns: str = ""
    link: str = ""       # the veth end in the hub namespace (max 15 characters)

    def __post_init__(self):
        self.ns = self.ns or f"{PREFIX}{self.name}"
        self.link = self.link or f"{PREFIX}{self.name}"[:15]


@dataclass
class Network:
    """The hosts and the cuts between them. `cuts` is the set of (from_ip, to_ip) directions
    currently dropped."""

    hosts: dict[str, Host]
    cuts: set[tuple[str, str]] = field(default_factory=set)
    created: bool = False

    def create(self) -> None:
        self.created = True
        sh(["ip", "netns", "add", HUB])
        sh(["ip", "-n", HUB, "link", "set", "lo", "up"])
        sh(["ip", "-n", HUB, "link", "add", BRIDGE, "type", "bridge"])
        sh(["ip", "-n", HUB, "link", "set", BRIDGE, "up"])
        for h in self.hosts.values():
            sh(["ip", "netns", "add", h.ns])
            sh(["ip", "-n", h.ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", HUB, "link", "add", h.link, "type", "veth", "peer", "name", "eth0", "netns", h.ns])
            sh(["ip", "-n", HUB, "link", "set", h.link, "master", BRIDGE, "up"])
            sh(["ip", "-n", h.ns, "addr", "add", f"{h.ip}/24", "dev", "eth0"])
            sh(["ip", "-n", h.ns, "link", "set", "eth0", "up"])
        sh(["ip", "netns", "exec", HUB, "nft", "-f", "-"], input=(
            "table bridge chaos {\n"
            "  chain cut { type filter hook forward priority 0; policy accept; }\n"
            "}\n"))

    def destroy(self) -> None:
        """Kills whatever still runs inside the hosts and deletes every namespace (with them
        the veths, the bridge and the nft table). Never raises."""
        for h in list(self.hosts.values()) + [Host("hub", "", ns=HUB)]:
            try:
                kill_namespace_processes(h.ns)
                sh(["ip", "netns", "del", h.ns], check=False)
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        self.created = False

    # -- cuts -----------------------------------------------------------------------------

    def apply(self, cuts: set[tuple[str, str]]) -> None:
        """Makes the dropped directions exactly `cuts` (pairs of host names)."""
        want = {(self.hosts[a].ip, self.hosts[b].ip) for a, b in cuts if a != b}
        if want == self.cuts:
            return
        script = "flush chain bridge chaos cut\n" + "".join(
            f"add rule bridge chaos cut ip saddr {a} ip daddr {b} drop\n" for a, b in sorted(want))
        sh(["ip", "netns", "exec", HUB, "nft", "-f", "-"], input=script)
        self.cuts = want

    def heal(self) -> None:
        self.apply(set())

    def rules_text(self) -> str:
        return sh(["ip", "netns", "exec", HUB, "nft", "list", "chain", "bridge", "chaos", "cut"], check=False).stdout


def enter_namespace(ns: str) -> None:
    """Moves the calling thread (call it from the main thread before any other starts, so every
    later thread and child inherits it) into network namespace `ns`."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise HostError(f"setns({ns}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def mount_tmpfs(path: Path, name: str, size_mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    sh(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", f"{PREFIX}{name}", str(path)])


def fill_disk(path: Path) -> int:
    """Fills the filesystem under `path` to the last byte with a file `path/chaos-filler`;
    returns the bytes written. Writes there then fail with ENOSPC."""
    filler = path / "chaos-filler"
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    written = 0
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        if free > (1 << 20):
            try:
                os.posix_fallocate(fd, 0, free - (1 << 20))
                written = free - (1 << 20)
                os.lseek(fd, 0, os.SEEK_END)
            except OSError:
                pass
        for size in (65536, 4096, 512):
            chunk = b"\0" * size
            while True:
                try:
                    n = os.write(fd, chunk)
                except OSError:
                    break
                written += n
                if n < size:
                    break
    finally:
        os.close(fd)
    return written


def free_disk(path: Path) -> None:
    try:
        (path / "chaos-filler").unlink()
    except FileNotFoundError:
        pass
