"""The offline metadata inspection commands against a real node's data dir.

One combined node (small snapshot threshold, so it writes snapshot files) gets topics created with
confluent-kafka's AdminClient and is stopped with SIGTERM. Then, with no process running:
`runnel metadata log --dir` decodes the metadata log record by record (type and offset filters,
JSON entries with their documented fields); `runnel metadata sql` counts the partitions that were
created (data dir = newest snapshot plus the log tail replayed, and a snapshot file alone);
`runnel metadata ls|cat|tree` browse the tree; `runnel metadata snapshot` summarizes; the shell
runs a piped script. Every command leaves the data dir byte for byte as it was. Errors (a path that
does not exist, a file that is not a snapshot, a snapshot whose content no longer matches its
checksum, a damaged SQLite file, an empty metadata directory) exit 1 with one sentence on stderr
and no crash dump.

Runnel only (skips under RUNNEL_PEER=tansu or external).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from nodes import runnel_bin
from util import admin, is_runnel, unique, wait_topic_ready, wait_until

pytestmark = pytest.mark.skipif(not is_runnel(), reason="inspects a Runnel data dir")

CRASH_MARKERS = ("Fatal error", "Stack dump", "Backtrace", "Current stack trace", "Illegal instruction",
                 "Segmentation fault", "PLEASE submit a bug report")

# Topic name -> partition count. Enough records to pass the snapshot threshold several times.
TOPIC_PARTITIONS = [1, 3, 2, 4, 1, 2, 3, 1, 2, 5, 1, 2]


def runnel(*args, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(runnel_bin()), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def ok(*args, **kw) -> subprocess.CompletedProcess:
    p = runnel(*args, **kw)
    assert p.returncode == 0, f"runnel {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}"
    return p


def ok_json(*args, **kw):
    return json.loads(ok(*args, "--json", **kw).stdout)


def one_sentence_failure(p: subprocess.CompletedProcess, *needles: str) -> str:
    assert p.returncode == 1, f"exit code {p.returncode}, want 1; stdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    for m in CRASH_MARKERS:
        assert m not in p.stderr, f"a crash, not an error message:\n{p.stderr}"
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"want one line on stderr, got:\n{p.stderr}"
    line = lines[0]
    assert line.startswith("runnel: ") and line.endswith("."), line
    for n in needles:
        assert n.lower() in line.lower(), f"{n!r} not in {line!r}"
    assert len(line) <= 400, line
    return line


def fingerprint(directory: Path) -> dict:
    """Every file under `directory` with its size and content hash."""
    out = {}
    for f in sorted(directory.rglob("*")):
        if f.is_file():
            out[str(f.relative_to(directory))] = (f.stat().st_size, hashlib.sha256(f.read_bytes()).hexdigest())
    return out


class Stopped:
    """A stopped node's data dir and what was created in it."""

    def __init__(self, data: Path, topics: dict[str, int], cluster_id: str):
        self.data = data
        self.metadata_dir = data / "__cluster_metadata-0"
        self.topics = topics
        self.cluster_id = cluster_id

    @property
    def partitions(self) -> int:
        return sum(self.topics.values())

    def snapshots(self) -> list[Path]:
        return sorted(self.metadata_dir.glob("*.checkpoint.sqlite"))


@pytest.fixture(scope="module")
def stopped(module_node_factory, tmp_path_factory) -> Stopped:
    node = module_node_factory({"metadata.log.max.record.bytes.between.snapshots": 1000})
    a = admin(node.bootstrap)
    from confluent_kafka.admin import NewTopic
    topics = {unique(f"meta{i}"): n for i, n in enumerate(TOPIC_PARTITIONS)}
    futures = a.create_topics([NewTopic(t, n, 1) for t, n in topics.items()], operation_timeout=30, request_timeout=30)
    for f in futures.values():
        f.result(30)
    for t, n in topics.items():
        wait_topic_ready(node.bootstrap, t, n, 30, a)
    wait_until(lambda: list((node.data_dir / "__cluster_metadata-0").glob("*.checkpoint.sqlite")), 30, 0.2,
               "the node to write a metadata snapshot")
    # The offline commands also read a running node's data dir (from a copy of its segments).
    live = runnel("metadata", "log", "--dir", node.data_dir, "--type", "TopicRecord", "--json")
    live_sql = runnel("metadata", "sql", node.data_dir, "SELECT count(*) AS n FROM partitions", "--json")
    assert node.stop() == 0, node.log_tail()
    stopped = Stopped(node.data_dir, topics, node.cluster_id)
    stopped.live = (live, live_sql)
    return stopped


def test_reads_a_running_node(stopped):
    live, live_sql = stopped.live
    assert live.returncode == 0, live.stderr
    assert {e["fields"]["name"] for e in json.loads(live.stdout)} == set(stopped.topics)
    assert live_sql.returncode == 0, live_sql.stderr
    assert json.loads(live_sql.stdout) == [{"n": str(stopped.partitions)}]


def test_log_decodes_records(stopped):
    before = fingerprint(stopped.data)
    p = ok("metadata", "log", "--dir", stopped.data)
    header = p.stdout.splitlines()[0].split()
    assert header == ["OFFSET", "EPOCH", "TIMESTAMP", "TYPE", "FIELDS"]
    assert "RegisterBrokerRecord" in p.stdout
    assert "LeaderChangeMessage" in p.stdout
    for t in stopped.topics:
        assert f"name={t}" in p.stdout, f"TopicRecord of {t} missing"

    entries = ok_json("metadata", "log", "--dir", stopped.data)
    assert entries, "no entries"
    for e in entries:
        assert set(e) >= {"offset", "epoch", "timestamp", "control", "type", "typeId", "version", "fields"}, e
        assert "error" not in e, e
    offsets = [e["offset"] for e in entries]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    topic_records = [e for e in entries if e["type"] == "TopicRecord"]
    assert {e["fields"]["name"] for e in topic_records} == set(stopped.topics)
    assert all(e["typeId"] == 2 and not e["control"] and len(e["fields"]["topicId"]) == 22 for e in topic_records)
    partition_records = [e for e in entries if e["type"] == "PartitionRecord"]
    assert len(partition_records) == stopped.partitions
    assert all(e["fields"]["replicas"] == [1] and e["fields"]["leader"] == 1 for e in partition_records)
    leader_changes = [e for e in entries if e["type"] == "LeaderChangeMessage"]
    assert leader_changes and all(e["control"] and e["fields"]["leaderId"] == 1 for e in leader_changes)

    # Type filters (names, loose spelling, numbers) and an inclusive offset range.
    only = ok_json("metadata", "log", "--dir", stopped.data, "--type", "TopicRecord")
    assert [e["offset"] for e in only] == [e["offset"] for e in topic_records]
    loose = ok_json("metadata", "log", "--dir", stopped.data, "--type", "partition", "--type", "2")
    assert {e["type"] for e in loose} == {"TopicRecord", "PartitionRecord"}
    lo, hi = offsets[2], offsets[min(6, len(offsets) - 1)]
    ranged = ok_json("metadata", "log", "--dir", stopped.data, "--from", lo, "--to", hi)
    assert [e["offset"] for e in ranged] == [o for o in offsets if lo <= o <= hi]

    # The metadata log directory itself is accepted too.
    same = ok_json("metadata", "log", "--dir", stopped.metadata_dir)
    assert [e["offset"] for e in same] == offsets
    assert fingerprint(stopped.data) == before, "runnel metadata log changed the data dir"


def test_sql_counts_partitions(stopped):
    before = fingerprint(stopped.data)
    p = ok("metadata", "sql", stopped.data, "SELECT count(*) FROM partitions")
    assert p.stdout.splitlines()[0].strip() == "count(*)"
    assert p.stdout.splitlines()[1].strip() == str(stopped.partitions)
    rows = ok_json("metadata", "sql", stopped.data, "SELECT count(*) AS n FROM partitions")
    assert rows == [{"n": str(stopped.partitions)}]
    rows = ok_json("metadata", "sql", stopped.data, "SELECT name FROM topics ORDER BY name")
    assert [r["name"] for r in rows] == sorted(stopped.topics)
    rows = ok_json("metadata", "sql", stopped.data,
                   "SELECT topic_name, count(*) AS n, max(leader) AS leader FROM partitions GROUP BY topic_name")
    assert {r["topic_name"]: int(r["n"]) for r in rows} == stopped.topics
    # The node's controlled shutdown may have moved leadership away from its only replica (-1).
    assert {r["leader"] for r in rows} <= {"1", "-1"}
    # Writes are refused.
    p = runnel("metadata", "sql", stopped.data, "DELETE FROM topics")
    one_sentence_failure(p, "read-only")
    assert fingerprint(stopped.data) == before, "runnel metadata sql changed the data dir"


def test_sql_on_a_snapshot_file(stopped):
    snapshot = stopped.snapshots()[-1]
    end_offset = int(snapshot.name.split("-")[0])
    rows = ok_json("metadata", "sql", snapshot, "SELECT end_offset, cluster_id FROM snapshot")
    assert rows == [{"end_offset": str(end_offset), "cluster_id": stopped.cluster_id}]
    rows = ok_json("metadata", "sql", snapshot, "SELECT node_id FROM voters")
    assert rows == [{"node_id": "1"}]


def test_ls_cat_tree(stopped):
    p = ok("metadata", "ls", stopped.data, "/topics")
    assert sorted(p.stdout.split()) == sorted(f"{t}/" for t in stopped.topics)
    p = ok("metadata", "ls", stopped.data)
    assert p.stdout.split() == ["brokers/", "topics/", "configs/", "features", "producerIds", "acls/", "scram/", "clientQuotas/", "quorum"]

    listing = ok_json("metadata", "ls", stopped.data, "/topics")
    assert {e["name"] for e in listing} == set(stopped.topics)
    for e in listing:
        assert set(e) == {"name", "path", "directory", "children"}
        assert e["path"] == f"/topics/{e['name']}" and e["directory"] is True
        assert e["children"] == stopped.topics[e["name"]]

    topic = max(stopped.topics, key=stopped.topics.get)
    n = stopped.topics[topic]
    p = ok("metadata", "cat", stopped.data, f"/topics/{topic}/{n - 1}")
    assert "leader:" in p.stdout and "isr:" in p.stdout
    cat = ok_json("metadata", "cat", stopped.data, f"/topics/{topic}/../{topic}/0")
    assert cat["path"] == f"/topics/{topic}/0"
    assert cat["fields"]["leader"] in (1, -1) and cat["fields"]["replicas"] == [1] and cat["fields"]["isr"] == [1]
    assert cat["fields"]["partition"] == 0
    broker = ok_json("metadata", "cat", stopped.data, "/brokers/1")["fields"]
    assert broker["id"] == 1 and any(ep.startswith("PLAINTEXT://") for ep in broker["endpoints"])
    quorum = ok_json("metadata", "cat", stopped.data, "/quorum")["fields"]
    assert quorum == {"clusterId": stopped.cluster_id, "voters": [1]}

    tree = ok_json("metadata", "tree", stopped.data, "/topics")
    assert tree["path"] == "/topics"
    assert {c["name"]: len(c["children"]) for c in tree["children"]} == stopped.topics
    p = ok("metadata", "tree", stopped.data, f"/topics/{topic}")
    assert p.stdout.splitlines()[0].startswith(f"{topic}/")
    assert len(p.stdout.splitlines()) == 1 + n

    one_sentence_failure(runnel("metadata", "ls", stopped.data, "/topics/no-such-topic"), "/topics/no-such-topic", "does not exist")
    one_sentence_failure(runnel("metadata", "cat", stopped.data, "/topics"), "directory")


def test_snapshot_summary(stopped):
    summary = ok_json("metadata", "snapshot", stopped.data)
    fields = {"source", "kind", "snapshotFile", "clusterId", "endOffset", "epoch", "recordCount", "replayedLogRecords",
              "lastContainedTimestamp", "voters", "brokers", "fencedBrokers", "topics", "partitions", "configResources",
              "configEntries", "acls", "scramCredentials", "features", "nextProducerId"}
    assert set(summary) == fields
    assert summary["kind"] == "dataDir"
    assert summary["clusterId"] == stopped.cluster_id
    assert summary["topics"] == len(stopped.topics)
    assert summary["partitions"] == stopped.partitions
    assert summary["brokers"] == 1 and summary["voters"] == [1]
    assert summary["snapshotFile"] == str(stopped.snapshots()[-1])
    log = ok_json("metadata", "log", "--dir", stopped.data)
    assert summary["endOffset"] == log[-1]["offset"] + 1
    assert summary["epoch"] == log[-1]["epoch"]

    snapshot = stopped.snapshots()[-1]
    file_summary = ok_json("metadata", "snapshot", snapshot)
    assert set(file_summary) == fields
    assert file_summary["kind"] == "snapshot" and file_summary["replayedLogRecords"] == 0
    assert file_summary["endOffset"] == int(snapshot.name.split("-")[0])
    assert file_summary["epoch"] == int(snapshot.name.split("-")[1].split(".")[0])
    assert file_summary["clusterId"] == stopped.cluster_id
    assert file_summary["partitions"] <= stopped.partitions

    p = ok("metadata", "snapshot", stopped.data)
    assert f"ClusterId:" in p.stdout and stopped.cluster_id in p.stdout
    assert any(ln.split() == ["Partitions:", str(stopped.partitions)] for ln in p.stdout.splitlines()), p.stdout


def test_shell_runs_a_script(stopped):
    topic = sorted(stopped.topics)[0]
    script = "\n".join([
        "ls /topics", "cd /topics", "pwd", f"cat {topic}/0", "cd ..", "pwd", "cd /nowhere",
        "sql SELECT count(*) AS n FROM partitions", "frobnicate", "history", "exit", "ls /never-run",
    ]) + "\n"
    p = runnel("metadata", "shell", stopped.data, input=script)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    for t in stopped.topics:
        assert f"{t}/" in out
    assert out.count("/topics") == 1 and "/" in out
    assert any(ln.startswith("leader:") and ln.split()[-1] in ("1", "-1") for ln in out)
    assert str(stopped.partitions) in [ln.strip() for ln in out]
    history = [ln.split(None, 1)[1] for ln in out if ln[:5].strip().isdigit() and "  " in ln]
    assert history[:3] == ["ls /topics", "cd /topics", "pwd"] and history[-1] == "history"
    err = p.stderr.splitlines()
    assert len(err) == 2, p.stderr
    assert "/nowhere does not exist" in err[0]
    assert "unknown command" in err[1]
    assert "never-run" not in p.stdout + p.stderr


def test_errors_are_one_sentence(stopped, tmp_path):
    missing = tmp_path / "no-such-dir"
    for args in (["log", "--dir", missing], ["snapshot", missing], ["ls", missing, "/"], ["cat", missing, "/quorum"],
                 ["tree", missing], ["sql", missing, "SELECT 1"], ["shell", missing]):
        one_sentence_failure(runnel("metadata", *args), str(missing), "does not exist")

    # A file that is not a snapshot.
    text = tmp_path / "server.properties"
    text.write_text("node.id=1\n")
    for args in (["snapshot", text], ["ls", text, "/"], ["sql", text, "SELECT 1"], ["sql", "--no-verify", text, "SELECT 1"]):
        one_sentence_failure(runnel("metadata", *args), str(text), "not a Runnel snapshot")
    one_sentence_failure(runnel("metadata", "log", "--dir", text), str(text), "not a directory")

    # An SQLite file that is not a snapshot.
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    one_sentence_failure(runnel("metadata", "snapshot", other), str(other), "not a Runnel snapshot")

    # A snapshot whose content was changed: the checksum no longer matches.
    snapshot = stopped.snapshots()[-1]
    tampered = tmp_path / snapshot.name
    shutil.copy(snapshot, tampered)
    with sqlite3.connect(tampered) as db:
        db.execute("UPDATE partitions SET leader = 42")
    for args in (["snapshot", tampered], ["cat", tampered, "/quorum"], ["sql", tampered, "SELECT 1"]):
        one_sentence_failure(runnel("metadata", *args), str(tampered), "corrupt", "checksum")
    # ... though it can still be queried on purpose.
    rows = ok_json("metadata", "sql", "--no-verify", tampered, "SELECT DISTINCT leader FROM partitions")
    assert rows == [{"leader": "42"}]

    # A snapshot damaged byte-wise (its pages overwritten).
    damaged = tmp_path / ("damaged-" + snapshot.name)
    data = bytearray(snapshot.read_bytes())
    for i in range(100, len(data), 7):
        data[i] = 0xA5
    damaged.write_bytes(bytes(data))
    line = one_sentence_failure(runnel("metadata", "snapshot", damaged), str(damaged))
    assert any(w in line.lower() for w in ("corrupt", "malformed", "not a valid", "not a runnel snapshot")), line

    # A data dir whose newest snapshot is corrupt is refused, naming the snapshot.
    copy = tmp_path / "data-copy"
    shutil.copytree(stopped.data, copy)
    newest = sorted((copy / "__cluster_metadata-0").glob("*.checkpoint.sqlite"))[-1]
    with sqlite3.connect(newest) as db:
        db.execute("UPDATE topics SET name = 'renamed' WHERE rowid = (SELECT min(rowid) FROM topics)")
    one_sentence_failure(runnel("metadata", "snapshot", copy), str(newest), "corrupt")

    # Empty directories: neither a data dir nor a metadata log; a metadata log dir with nothing in it.
    empty = tmp_path / "empty"
    empty.mkdir()
    one_sentence_failure(runnel("metadata", "log", "--dir", empty), str(empty), "neither")
    one_sentence_failure(runnel("metadata", "snapshot", empty), str(empty), "neither")
    (empty / "__cluster_metadata-0").mkdir()
    one_sentence_failure(runnel("metadata", "log", "--dir", empty), "no metadata log segments")
    one_sentence_failure(runnel("metadata", "snapshot", empty), str(empty), "no metadata")

    # A record type that does not exist.
    one_sentence_failure(runnel("metadata", "log", "--dir", stopped.data, "--type", "NoSuchRecord"), "NoSuchRecord")
