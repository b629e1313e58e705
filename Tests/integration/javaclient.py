"""Apache Kafka's Java client (kafka-clients 3.9.1) for the integration tests.

Finds `java`/`javac` and the jars, compiles java/RunnelJavaClient.java once (cached under
.build/java-client/ by a hash of the source and the jars, so later sessions skip javac), and runs
its subcommands, parsing the JSON lines they print. See RunnelJavaClient.java for the commands.

Where the jars come from: $KAFKA_JARS if set (a directory with kafka-clients*.jar, as for
tools/vectors/generate), else pyflink/lib in the test venv, which the PyPI wheel
shigawire-apache-flink-libraries fills (tools/test installs it). `missing()` says why the Java
client cannot run here, for a clear skip on a machine without them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SOURCE = HERE / "java" / "RunnelJavaClient.java"
MAIN_CLASS = "RunnelJavaClient"
CACHE_ROOT = REPO / ".build" / "java-client"
# Jars on the classpath, by base name (matched as <name>*.jar): the client, its compression
# codecs, and slf4j's API (no binding, so the client's logging is a no-op).
JARS = ("kafka-clients", "lz4-java", "snappy-java", "zstd-jni", "slf4j-api")
REQUIRED_JARS = ("kafka-clients", "slf4j-api")
# The JVM starts faster with only the C1 compiler and the serial collector; these runs are short.
JVM_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


def _jar_dir_candidates() -> list[Path]:
    if os.environ.get("KAFKA_JARS"):
        return [Path(os.environ["KAFKA_JARS"])]
    cands = [Path(sysconfig.get_paths()["purelib"]) / "pyflink" / "lib"]   # running in .venv
    cands += sorted((REPO / ".venv" / "lib").glob("python3*/site-packages/pyflink/lib"))
    return cands


def jar_dir() -> Path | None:
    for d in _jar_dir_candidates():
        if any(d.glob("kafka-clients*.jar")):
            return d
    return None


def jars() -> list[Path]:
    d = jar_dir()
    if d is None:
        return []
    out = []
    for name in JARS:
        found = sorted(d.glob(f"{name}*.jar"))
        if found:
            out.append(found[0])
    return out


def missing() -> str | None:
    """Why the Java client cannot run on this machine, or None if it can."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return (f"`{tool}` not on PATH (tools/test installs openjdk-17-jdk-headless)")
    d = jar_dir()
    if d is None:
        where = ", ".join(str(c) for c in _jar_dir_candidates())
        return (f"kafka-clients*.jar not found in {where} (tools/test installs the PyPI wheel "
                f"shigawire-apache-flink-libraries into .venv; or set KAFKA_JARS)")
    names = {j.name for j in jars()}
    for name in REQUIRED_JARS:
        if not any(n.startswith(name) for n in names):
            return f"{name}*.jar not found in {d}"
    return None


def classpath_jars() -> str:
    return os.pathsep.join(str(j) for j in jars())


@functools.cache
def compiled_dir() -> Path:
    """The directory holding RunnelJavaClient.class, compiling it if this source and these jars
    have not been compiled before."""
    h = hashlib.sha256(SOURCE.read_bytes())
    for j in jars():
        h.update(f"{j.name}:{j.stat().st_size}".encode())
    out = CACHE_ROOT / h.hexdigest()[:16]
    if (out / f"{MAIN_CLASS}.class").is_file():
        return out
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="javac-", dir=CACHE_ROOT))
    p = subprocess.run(["javac", "-nowarn", "-encoding", "UTF-8", "-d", str(tmp),
                        "-cp", classpath_jars(), str(SOURCE)],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"javac {SOURCE.name} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    try:
        os.rename(tmp, out)
    except OSError:  # another process compiled the same source first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@dataclass
class Record:
    key: str | None
    value: str | None
    partition: int
    offset: int


@dataclass
class Result:
    argv: list[str]
    returncode: int
    records: list[Record] = field(default_factory=list)   # lines with "value"
    objects: list[dict] = field(default_factory=list)     # every other JSON line
    stderr: str = ""                                      # without slf4j's no-binding notice

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def explain(self) -> str:
        """For assertion messages: the command, its exit status and its stderr."""
        return (f"`{' '.join(self.argv[-6:])}` exited {self.returncode}; stderr:\n"
                + (self.stderr.strip()[-4000:] or "(empty)"))


def _text(b: bytes | str | None) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def run(*args: str, timeout: float = 180.0) -> Result:
    """Run RunnelJavaClient with `args`; a run that outlives `timeout` seconds is killed and
    raises AssertionError with what it printed so far."""
    cp = os.pathsep.join([classpath_jars(), str(compiled_dir())])
    argv = ["java", *JVM_FLAGS, "-cp", cp, MAIN_CLASS, *map(str, args)]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"RunnelJavaClient {' '.join(map(str, args))} did not finish within "
                             f"{timeout:.0f}s; stdout tail:\n{_text(e.stdout)[-2000:]}\n"
                             f"stderr tail:\n{_text(e.stderr)[-4000:]}") from None
    res = Result(argv, p.returncode,
                 stderr="".join(ln for ln in p.stderr.splitlines(keepends=True)
                                if not ln.startswith("SLF4J: ")))
    for line in p.stdout.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if "value" in obj and "offset" in obj:
            res.records.append(Record(obj.get("key"), obj["value"], obj["partition"], obj["offset"]))
        else:
            res.objects.append(obj)
    return res


def produce(bootstrap: str, topic: str, count: int, props: dict | None = None,
            timeout: float = 240.0) -> Result:
    """`count` records "m-<i>" keyed "k-<i % 10>" with the client's default producer settings
    (plus `props`); `records` are the acknowledged ones, in send order."""
    return run("produce", bootstrap, topic, count,
               *(f"{k}={v}" for k, v in (props or {}).items()), timeout=timeout)


def txn(bootstrap: str, topic: str, transactional_id: str, count: int, commit: bool,
        props: dict | None = None, timeout: float = 180.0) -> Result:
    """One transaction of `count` records ("t-0", ...) committed or aborted by the Java client."""
    kv = [f"{k}={v}" for k, v in (props or {}).items()]
    return run("txn", bootstrap, topic, transactional_id, str(count), "commit" if commit else "abort", *kv,
               timeout=timeout)


def fence(bootstrap: str, topic: str, transactional_id: str, timeout: float = 180.0) -> Result:
    """Two producers of one transactional id in one process: the second fences the first, whose
    commit fails (`first_commit` names the exception), then commits "survivor"."""
    return run("fence", bootstrap, topic, transactional_id, timeout=timeout)


def consume(bootstrap: str, topic: str, expected: int, timeout_ms: int = 60_000,
            group: str | None = None, props: dict | None = None) -> Result:
    """Read from the beginning until `expected` records (exit 0) or `timeout_ms` (exit 3). With a
    group, `committed` gives the offsets the group committed; `props` are client settings."""
    args = ["consume", bootstrap, topic, expected, timeout_ms] + ([group] if group else (["-"] if props else []))
    args += [f"{k}={v}" for k, v in (props or {}).items()]
    return run(*args, timeout=timeout_ms / 1000 + 120)


def committed(res: Result) -> dict[int, int] | None:
    for o in res.objects:
        if "committed" in o:
            return {int(k): v for k, v in o["committed"].items()}
    return None


def admin(bootstrap: str, command: str, topic: str, *args, timeout: float = 180.0) -> Result:
    """`create <topic> <partitions> <rf> [k=v...]`, `describe <topic>` or `configs <topic>`; the
    answer (or {"error", "message"}) is `objects[0]`."""
    return run("admin", bootstrap, command, topic, *args, timeout=timeout)


if __name__ == "__main__":   # python javaclient.py produce 127.0.0.1:9092 t 10 ...
    why = missing()
    if why:
        sys.exit(f"javaclient: {why}")
    r = run(*sys.argv[1:])
    for rec in r.records:
        print(json.dumps(rec.__dict__))
    for o in r.objects:
        print(json.dumps(o))
    sys.stderr.write(r.stderr)
    sys.exit(r.returncode)
