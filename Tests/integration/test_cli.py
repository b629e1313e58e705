"""The `runnel` command line fails clearly on bad input and starts on good input.

`runnel server` with a missing config file, a bad value (node.id=abc, log.segment.bytes=-5, ...)
or without a required key exits non-zero with one short sentence naming the file or key (no
crash dump); on a log dir that was never formatted it refuses and says to run `runnel format`;
an unknown key only earns a warning and the server still starts. `runnel format` writes
meta.properties with the cluster and node ids and rejects a malformed cluster id.

Runnel only (skips under RUNNEL_PEER=tansu).
"""

from __future__ import annotations

import subprocess

import pytest

from nodes import RunnelNode, port_accepts
from util import wait_until

pytestmark = pytest.mark.usefixtures("require_runnel")

CRASH_MARKERS = ("Fatal error", "Stack dump", "Backtrace", "Current stack trace", "Illegal instruction",
                 "Segmentation fault", "PLEASE submit a bug report")


@pytest.fixture
def fresh(tmp_path):
    return RunnelNode(tmp_path)


def run(argv, timeout=60, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, cwd=cwd)


def assert_one_sentence_failure(p: subprocess.CompletedProcess, *needles: str) -> str:
    err = (p.stderr + p.stdout).decode(errors="replace")
    assert p.returncode > 0, f"exit code {p.returncode} (want a plain non-zero exit); output:\n{err}"
    for m in CRASH_MARKERS:
        assert m not in err, f"looks like a crash, not an error message:\n{err}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "no error message at all"
    hits = [ln for ln in lines if all(n.lower() in ln.lower() for n in needles)]
    assert hits, f"no line names {needles!r}:\n{err}"
    assert len(hits[-1]) <= 400, f"error line too long: {hits[-1]!r}"
    assert len(lines) <= 10, f"{len(lines)} lines of output for one error:\n{err}"
    return hits[-1]


def server_with(node: RunnelNode, props: dict, drop: tuple[str, ...] = (), timeout=60):
    """Format with a good config, then start the server on a config with `props` changed and
    `drop` keys removed; returns the finished process (a server that keeps running is a failure)."""
    node.format()
    cfg = node.server_properties()
    cfg.update({k: str(v) for k, v in props.items()})
    for k in drop:
        cfg.pop(k, None)
    path = node.workdir / "bad.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in cfg.items()))
    try:
        return run([node.binary, "server", path], timeout=timeout, cwd=node.workdir)
    except subprocess.TimeoutExpired:
        pytest.fail(f"runnel server kept running with {props or ''} {('without ' + ','.join(drop)) if drop else ''}")


def test_missing_config_file(fresh, tmp_path):
    missing = tmp_path / "nope" / "server.properties"
    p = run([fresh.binary, "server", missing])
    assert_one_sentence_failure(p, str(missing.name))


@pytest.mark.parametrize("key,value", [
    ("node.id", "abc"),
    ("log.segment.bytes", "-5"),
    ("num.partitions", "zero"),
    ("auto.create.topics.enable", "maybe"),
    ("listeners", "PLAINTEXT//nohostport"),
])
def test_bad_value_names_the_key(fresh, key, value):
    p = server_with(fresh, {key: value})
    assert_one_sentence_failure(p, key)


@pytest.mark.parametrize("key", ["node.id", "process.roles"])
def test_missing_required_key(fresh, key):
    p = server_with(fresh, {}, drop=(key,))
    assert_one_sentence_failure(p, key)


def test_unformatted_log_dir_refuses(fresh):
    fresh.write_config()
    p = run([fresh.binary, "server", fresh.config_path], cwd=fresh.workdir)
    assert_one_sentence_failure(p, "runnel format")


def test_unknown_key_only_warns(fresh):
    fresh.props["runnel.test.unknown.key"] = "42"
    fresh.start()
    try:
        assert fresh.is_alive() and port_accepts(fresh.port)
        wait_until(lambda: "runnel.test.unknown.key" in fresh.log_text(), 10, 0.2,
                   "a warning naming the unknown key in the log")
    finally:
        rc = fresh.stop()
    assert rc == 0, f"SIGTERM exit code {rc}"


def test_format_writes_meta_properties(fresh):
    fresh.format()
    meta = fresh.data_dir / "meta.properties"
    assert meta.is_file(), f"no {meta}"
    props = dict(ln.split("=", 1) for ln in meta.read_text().splitlines()
                 if "=" in ln and not ln.lstrip().startswith("#"))
    assert props.get("cluster.id") == fresh.cluster_id, props
    assert props.get("node.id") == "1", props


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_format_rejects_bad_cluster_id(fresh, bad_id):
    fresh.write_config()
    p = run([fresh.binary, "format", "--config", fresh.config_path, "--cluster-id", bad_id])
    assert_one_sentence_failure(p, "cluster")
    assert not (fresh.data_dir / "meta.properties").exists()
