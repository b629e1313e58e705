"""Feature levels the Kafka way (KIP-584, KIP-778): `runnel format --release-version` sets the
metadata.version a new cluster starts at, `runnel features upgrade|downgrade` (as kafka-features)
moves it on the running cluster through UpdateFeatures, and every broker and controller reports the
finalized level in ApiVersions v3.

- A 3+3 cluster formatted at --release-version 3.7 reports metadata.version 19 (3.7-IV4) on every
  broker and controller (raw ApiVersions v3: supported 7-21, finalized 19) and in
  `runnel features describe`.
- `upgrade --release-version 3.9 --dry-run` changes nothing; without it every node reports 21
  within a few seconds, and still does after the active controller is stopped.
- Kafka 3.9's refusals, as INVALID_UPDATE_VERSION with Kafka's messages: a downgrade across a
  level that changed metadata records (safe or --unsafe), a level no node runs (22), a feature
  no node supports (group.version); a safe downgrade (3.9 to 3.8) goes through on the new active
  controller, and the upgrade back too.
- Every controller registers (KIP-919, RegisterControllerRecord with its supported range), and
  UpdateFeatures is checked against those ranges.
- `--bootstrap-controller` works as kafka-features': describe from a controller, a dry-run
  downgrade that finds the active controller past a standby.
- The Java client's Admin.describeFeatures shows the supported and finalized ranges, and
  Admin.updateFeatures gets InvalidUpdateVersionException for level 22.
- `runnel format` refuses an unknown or unsupported release version in one sentence.
- What gates on metadata.version reads the live level: a node formatted at 3.4 refuses SCRAM
  credentials until it is upgraded to 3.5-IV2.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

import javaclient
import kwire
from cluster import active_controller, running_cluster
from nodes import RunnelNode, runnel_bin
from util import wait_until


def runnel(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(runnel_bin()), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def features(bootstrap: str) -> tuple[dict, dict, int]:
    """ApiVersions v3 on the wire: (supported {name: (min, max)}, finalized {name: level}, epoch)."""
    with kwire.Conn.to(bootstrap) as c:
        c.send(kwire.api_versions_request(3, 77))
        payload = c.recv_frame()
    assert payload is not None, f"{bootstrap} closed the connection"
    r = kwire.Reader(payload)
    assert r.i32() == 77                      # response header v0, as ApiVersions always answers
    assert r.i16() == 0, "ApiVersions error"
    for _ in range(r.compact_array_len()):
        r.i16(), r.i16(), r.i16()
        r.skip_tags()
    r.i32()                                   # throttle
    tags = r.skip_tags()
    supported, finalized, epoch = {}, {}, -1
    if 0 in tags:
        t = kwire.Reader(tags[0])
        for _ in range(t.compact_array_len()):
            name = t.compact_string()
            supported[name] = (t.i16(), t.i16())
            t.skip_tags()
    if 1 in tags:
        epoch = kwire.Reader(tags[1]).i64()
    if 2 in tags:
        t = kwire.Reader(tags[2])
        for _ in range(t.compact_array_len()):
            name = t.compact_string()
            high, low = t.i16(), t.i16()
            assert low == high, (name, low, high)
            finalized[name] = high
            t.skip_tags()
    return supported, finalized, epoch


def levels(nodes) -> dict[int, int | None]:
    return {n.node_id: features(n.bootstrap)[1].get("metadata.version") for n in nodes if n.is_alive()}


@pytest.fixture
def cluster37(tmp_path):
    with running_cluster(tmp_path, format_args=["--release-version", "3.7"]) as nodes:
        yield nodes


def test_upgrade_moves_metadata_version_on_every_node(cluster37):
    controllers, brokers = cluster37
    nodes = controllers + brokers
    wait_until(lambda: set(levels(nodes).values()) == {19}, timeout=20, what="every node at 3.7-IV4 (19)")
    for n in nodes:
        supported, finalized, epoch = features(n.bootstrap)
        assert supported == {"metadata.version": (7, 21), "transaction.version": (0, 2)}, (n.node_id, supported)
        assert "transaction.version" not in finalized, "a 3.x release predates transactions v2"
        assert epoch >= 0
    bootstrap = brokers[0].bootstrap
    p = runnel("features", "describe", "--bootstrap-server", bootstrap)
    assert p.returncode == 0, p.stderr
    assert "\tFinalizedVersionLevel: 3.7-IV4\t" in p.stdout, p.stdout

    p = runnel("features", "upgrade", "--bootstrap-server", bootstrap, "--release-version", "3.9", "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "metadata.version can be upgraded to 21."
    time.sleep(0.5)
    assert set(levels(nodes).values()) == {19}, "a dry run changes nothing"

    started = time.monotonic()
    p = runnel("features", "upgrade", "--bootstrap-server", bootstrap, "--release-version", "3.9")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "metadata.version was upgraded to 21."
    assert features(bootstrap)[1]["metadata.version"] == 21, "the answering broker already shows it"
    wait_until(lambda: set(levels(nodes).values()) == {21}, timeout=10, what="every node at 3.9-IV0 (21)")
    print(f"upgrade to every node reporting 21: {time.monotonic() - started:.2f}s")
    p = runnel("features", "describe", "--bootstrap-server", brokers[2].bootstrap)
    assert "\tFinalizedVersionLevel: 3.9-IV0\t" in p.stdout, p.stdout

    # Kafka 3.9 refuses a downgrade across a level that changed the records, unsafe or not.
    p = runnel("features", "downgrade", "--bootstrap-server", bootstrap, "--metadata", "3.7-IV0")
    assert p.returncode == 1
    assert p.stdout.strip() == (
        "Could not downgrade metadata.version to 15. Invalid metadata.version 15. Refusing to perform the "
        "requested downgrade because it might delete metadata information. Retry using UNSAFE_DOWNGRADE if you "
        "want to force the downgrade to proceed."), p.stdout
    assert "1 out of 1 operation(s) failed." in p.stderr
    p = runnel("features", "downgrade", "--bootstrap-server", bootstrap, "--metadata", "3.7-IV0", "--unsafe")
    assert p.returncode == 1
    assert "Unsafe metadata downgrade is not supported in this version." in p.stdout, p.stdout
    p = runnel("features", "upgrade", "--bootstrap-server", bootstrap, "--metadata", "3.8")
    assert p.returncode == 1
    assert "Can't downgrade the version of this feature without setting the upgrade type" in p.stdout, p.stdout
    p = runnel("features", "upgrade", "--bootstrap-server", bootstrap, "--feature", "metadata.version=22")
    assert p.returncode == 1
    assert "Invalid update version 22 for feature metadata.version. Local controller" in p.stdout, p.stdout
    assert "only supports versions 7-21" in p.stdout, p.stdout
    p = runnel("features", "upgrade", "--bootstrap-server", bootstrap, "--feature", "group.version=1")
    assert p.returncode == 1
    assert "does not support this feature." in p.stdout, p.stdout
    p = runnel("features", "upgrade", "--bootstrap-server", bootstrap, "--release-version", "4.0")
    assert p.returncode != 0 and "nknown release version 4.0" in p.stderr, p.stderr
    assert set(levels(nodes).values()) == {21}, "refusals change nothing"

    # The level lives in the metadata log: a new active controller has it and can change it.
    # Every controller registered itself (KIP-919) with the range the upgrade was checked against.
    old = active_controller(controllers)
    controllers[old - 1].stop()
    p = runnel("metadata", "log", "--dir", str(controllers[old - 1].data_dir), "--type", "RegisterControllerRecord",
               "--json")
    assert p.returncode == 0, p.stderr
    registered = {e["fields"]["controllerId"]: e["fields"]["features"] for e in json.loads(p.stdout)}
    assert set(registered) == {1, 2, 3}, p.stdout
    assert all(f == [{"name": "metadata.version", "minSupportedVersion": 7, "maxSupportedVersion": 21},
                     {"name": "transaction.version", "minSupportedVersion": 0, "maxSupportedVersion": 2}]
               for f in registered.values()), registered
    wait_until(lambda: active_controller(controllers) not in (old, -1), timeout=20, what="a new active controller")
    assert set(levels(nodes).values()) == {21}
    p = runnel("features", "downgrade", "--bootstrap-server", bootstrap, "--metadata", "3.8")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "metadata.version was downgraded to 20."
    wait_until(lambda: set(levels(nodes).values()) == {20}, timeout=10, what="every live node at 3.8-IV0 (20)")
    p = runnel("features", "upgrade", "--bootstrap-server", bootstrap, "--release-version", "3.9")
    assert p.returncode == 0, p.stdout + p.stderr
    controllers[old - 1].start()
    wait_until(lambda: set(levels(nodes).values()) == {21} and len(levels(nodes)) == 6, timeout=30,
               what="every node, the restarted controller too, at 21")

    # kafka-features --bootstrap-controller: any controller describes; a standby listed first
    # answers UpdateFeatures NOT_CONTROLLER and the tool asks the active one.
    active = active_controller(controllers)
    ordered = sorted(controllers, key=lambda c: c.node_id == active)
    quorum = ",".join(f"127.0.0.1:{c.port}" for c in ordered)
    p = runnel("features", "describe", "--bootstrap-controller", quorum)
    assert p.returncode == 0, p.stderr
    assert "\tFinalizedVersionLevel: 3.9-IV0\t" in p.stdout, p.stdout
    p = runnel("features", "downgrade", "--bootstrap-controller", quorum, "--release-version", "3.8", "--dry-run")
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "metadata.version can be downgraded to 20."
    p = runnel("features", "describe", "--bootstrap-controller", quorum, "--bootstrap-server", bootstrap)
    assert p.returncode == 1 and "exactly one of --bootstrap-server and --bootstrap-controller" in p.stderr, p.stderr

    if javaclient.missing():
        pytest.skip(f"Java client part: {javaclient.missing()}")
    r = javaclient.run("features", bootstrap, "describe")
    assert r.ok, r.explain()
    (desc,) = r.objects
    assert desc["supported"] == {"metadata.version": [7, 21], "transaction.version": [0, 2]}
    assert desc["finalized"] == {"metadata.version": [21, 21]}
    assert desc["epoch"] >= 0
    r = javaclient.run("features", bootstrap, "update", "metadata.version", "22", "UPGRADE")
    assert not r.ok
    assert r.objects[0]["error"] == "InvalidUpdateVersionException", r.objects
    r = javaclient.run("features", bootstrap, "update", "metadata.version", "21", "UPGRADE", "dry-run")
    assert r.ok, r.explain() + str(r.objects)


@pytest.mark.parametrize("args,message", [
    (["--release-version", "3.1"], "metadata.version 2 is not supported"),
    (["--release-version", "2.8"], "Unknown release version 2.8"),
    (["--release-version", "nope"], "Unknown release version nope"),
    (["--feature", "metadata.version=40"], "metadata.version 40 is not supported"),
    (["--feature", "group.version=1"], "Unsupported feature group.version"),
    (["--release-version", "3.7", "--feature", "metadata.version=19"], "metadata.version is given twice"),
])
def test_format_refuses_bad_release_versions(tmp_path, args, message):
    node = RunnelNode(tmp_path / "n")
    node.write_config()
    p = runnel("format", "--config", str(node.config_path), f"--cluster-id={node.cluster_id}", *args)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], p.stderr
    assert not (node.data_dir / "meta.properties").exists(), "nothing is formatted"


def test_scram_follows_the_live_level(tmp_path):
    """A single node formatted at 3.4 refuses SCRAM credentials (they came with 3.5-IV2) until
    metadata.version is upgraded, without a restart."""
    node = RunnelNode(tmp_path / "n")
    node.format_args = ["--release-version", "3.4"]
    node.start()
    try:
        wait_until(lambda: features(node.bootstrap)[1].get("metadata.version") == 8, timeout=20,
                   what="metadata.version 3.4-IV0 (8)")
        scram = ["user", "scram", "set", "alice", "--mechanism", "SCRAM-SHA-256", "--password", "pw-alice-1",
                 "--bootstrap-server", node.bootstrap]
        p = runnel(*scram)
        assert p.returncode == 1 and "does not support SCRAM" in p.stderr, p.stdout + p.stderr
        p = runnel("features", "upgrade", "--bootstrap-server", node.bootstrap, "--metadata", "3.5-IV2")
        assert p.returncode == 0, p.stdout + p.stderr
        assert features(node.bootstrap)[1]["metadata.version"] == 11
        p = runnel(*scram)
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        node.close()
