"""The broker survives hostile and malformed traffic on raw sockets and keeps serving good clients.

Frames are built by hand (kwire.py). We send random bytes, truncated frames, a size prefix over
socket.request.max.bytes, an unknown API key and known keys at unsupported versions: the broker
must close such connections (as Kafka does) without crashing or hanging. ApiVersions at version 99
must be answered with UNSUPPORTED_VERSION (35) in the v0 response format listing ApiVersions' own
range (KIP-511), and the connection must stay usable. A Produce v9 batch with a corrupt CRC gets
CORRUPT_MESSAGE (2) and a batch over message.max.bytes gets MESSAGE_TOO_LARGE (10); neither is
appended. Throughout, a well-behaved confluent-kafka producer and consumer run in a thread; after
each attack they must make progress, and they must never see an error.
"""

from __future__ import annotations

import random
import struct
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

import kwire
from util import QUIET, create_topic, drain, known_deviation, unique, wait_until

SOCKET_MAX = 1_048_576
MESSAGE_MAX = 100 * 1024


class SideClient:
    """Produces a numbered message every few ms (acks=all) and consumes the same topic from the
    beginning, checking that values come back in order. Records every error it sees."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.topic = unique("side")
        create_topic(bootstrap, self.topic, 1)
        self.errors: list[str] = []
        self.acked = 0
        self.consumed = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="side-client", daemon=True)

    def _err(self, what: str, err) -> None:
        with self._lock:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {what}: {err}")

    def _run(self) -> None:
        prod = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 0,
                         "error_cb": lambda e: self._err("producer error_cb", e), **QUIET})
        cons = Consumer({"bootstrap.servers": self.bootstrap, "group.id": unique("side"),
                         "enable.auto.commit": False, "check.crcs": True,
                         "error_cb": lambda e: self._err("consumer error_cb", e), **QUIET})
        cons.assign([TopicPartition(self.topic, 0, -2)])

        def on_delivery(err, msg):
            if err is not None:
                self._err("delivery", err)
            else:
                with self._lock:
                    self.acked += 1

        seq = 0
        try:
            while not self._stop.is_set():
                prod.produce(self.topic, key=b"side", value=str(seq).encode(), on_delivery=on_delivery)
                seq += 1
                prod.poll(0)
                for m in cons.consume(num_messages=100, timeout=0.005):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self._err("consume", m.error())
                        continue
                    expected = self.consumed
                    if m.value() != str(expected).encode() or m.offset() != expected:
                        self._err("consume", f"got {m.value()!r}@{m.offset()}, expected {expected}")
                    with self._lock:
                        self.consumed += 1
                time.sleep(0.005)
            left = prod.flush(10)
            if left:
                self._err("flush", f"{left} messages unacknowledged at the end")
        except Exception as e:  # noqa: BLE001
            self._err("exception", repr(e))
        finally:
            cons.close()

    def start(self) -> "SideClient":
        self.thread.start()
        self.wait_progress(50, 30)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.acked, self.consumed

    def wait_progress(self, n: int = 20, timeout: float = 15.0) -> None:
        """Both the producer and the consumer advance by `n` messages from now."""
        a0, c0 = self.counts()
        wait_until(lambda: self.counts()[0] >= a0 + n and self.counts()[1] >= c0 + n, timeout, 0.05,
                   f"side client to advance {n} messages (from acked={a0} consumed={c0}; "
                   f"errors so far: {self.errors[:3]})")
        assert not self.errors, f"side client saw errors: {self.errors[:10]}"


@pytest.fixture(scope="module")
def node(module_node_factory):
    return module_node_factory({"socket.request.max.bytes": SOCKET_MAX, "message.max.bytes": MESSAGE_MAX})


@pytest.fixture(scope="module")
def side(node):
    s = SideClient(node.bootstrap).start()
    yield s
    s.stop()


@pytest.fixture
def healthy(node, side):
    """After the test body: broker process alive, a fresh connection works, side client advances."""
    yield
    assert node.is_alive(), f"broker died; log tail:\n{node.log_tail()}"
    assert kwire.api_versions_ok(node.bootstrap), "a fresh connection no longer gets ApiVersions answered"
    side.wait_progress()


def conn(node, timeout: float = 5.0) -> kwire.Conn:
    return kwire.Conn.to(node.bootstrap, timeout)


def assert_closed(c: kwire.Conn, what: str, timeout: float = 5.0) -> None:
    assert c.wait_closed(timeout), f"broker kept the connection open {timeout}s after {what}"


# ----------------------------------------------------------------------------------------------


def test_kwire_sanity(node, healthy):
    """Our hand-made frames are right: ApiVersions v0 and v3 get answered correctly."""
    with conn(node) as c:
        c.send(kwire.api_versions_request(0, 1))
        r = kwire.parse_api_versions_v0(c.recv_frame())
        assert (r.correlation_id, r.error_code, r.trailing) == (1, 0, 0)
        assert 18 in r.api_keys and 0 in r.api_keys
        c.send(kwire.api_versions_request(3, 2))
        p = c.recv_frame()
        rd = kwire.Reader(p)
        assert rd.i32() == 2            # response header v0 even for v3
        assert rd.i16() == 0


def test_random_bytes(node, healthy):
    rng = random.Random(7)
    # A plausible size prefix, then random bytes as the request. The api key is forced out of the
    # known range so the noise cannot happen to be a valid request.
    for i in range(5):
        body = struct.pack(">h", 20000 + i) + rng.randbytes(rng.randint(2, 300))
        with conn(node) as c:
            c.send(kwire.frame(body))
            assert_closed(c, f"random request #{i}")
    # Many connections spraying noise of random lengths and hanging up at once.
    for i in range(50):
        with conn(node) as c:
            try:
                c.send(rng.randbytes(rng.randint(0, 2000)))
            except OSError:
                pass
    # A huge size prefix followed by noise.
    with conn(node) as c:
        c.send(struct.pack(">i", 0x7A000000) + rng.randbytes(4096))
        with known_deviation(node, ("tansu",), "does not enforce a request size limit"):
            assert_closed(c, "a 2 GB size prefix and random bytes")


def test_truncated_frames(node, healthy):
    # Half a size prefix, then hang up.
    with conn(node) as c:
        c.send(b"\x00\x00")
    # Half a size prefix, then close our side: the broker must notice EOF and close too.
    with conn(node) as c:
        c.send(b"\x00\x00")
        c.half_close()
        assert_closed(c, "half a size prefix and EOF")
    # A frame announcing 100 bytes that delivers 50 and EOF.
    with conn(node) as c:
        c.send(struct.pack(">i", 100) + b"\x00\x12" + b"\x00" * 48)
        c.half_close()
        assert_closed(c, "a frame cut short by EOF")
    # Complete frames whose request header is cut short.
    for hdr in (b"", b"\x00", b"\x00\x12\x00", b"\x00\x12\x00\x00\x00\x00", b"\x00\x12\x00\x00\x00\x00\x00\x01\x00\x09ab"):
        with conn(node) as c:
            c.send(kwire.frame(hdr))
            assert_closed(c, f"a frame holding a truncated header {hdr.hex()}")
    # A Metadata v1 request whose topics array says 3 entries and holds none.
    with conn(node) as c:
        c.send(kwire.frame(kwire.request_header_v1(kwire.API_METADATA, 1, 5) + kwire.i32(3)))
        assert_closed(c, "a Metadata request with a truncated body")
    # A Produce v9 request whose records field claims more bytes than the frame holds.
    good = kwire.produce_v9_request(6, "nope", 0, kwire.record_batch([kwire.Rec(b"k", b"v")]))
    with conn(node) as c:
        c.send(kwire.frame(good[4:-20]))
        assert_closed(c, "a Produce request with a truncated record batch")


def test_size_prefix_over_socket_request_max_bytes(node, healthy):
    for size in (SOCKET_MAX + 1, 0x7FFFFFFF, -1, -0x80000000):
        with conn(node) as c:
            c.send(struct.pack(">i", size))     # and nothing else: the broker must not wait for it
            with known_deviation(node, ("tansu",), "does not enforce a request size limit"):
                assert_closed(c, f"a size prefix of {size} (limit {SOCKET_MAX})")


def test_unknown_api_key(node, healthy):
    for key in (32000, -1, 9999):
        with conn(node) as c:
            c.send(kwire.frame(kwire.request_header_v1(key, 0, 11) + b"\x00" * 8))
            assert_closed(c, f"a request with unknown api key {key}")


def test_known_key_unsupported_version(node, healthy):
    # Metadata v99 and Produce v99 (header v2: any version that high would be flexible).
    for key in (kwire.API_METADATA, kwire.API_PRODUCE):
        with conn(node) as c:
            c.send(kwire.frame(kwire.request_header_v2(key, 99, 12) + b"\x00" * 16))
            with known_deviation(node, ("tansu",), "answers or ignores unsupported versions"):
                assert_closed(c, f"api key {key} at version 99")


def test_api_versions_v99_gets_unsupported_version_in_v0_format(node, healthy):
    with conn(node) as c:
        c.send(kwire.api_versions_request(99, 13))
        payload = c.recv_frame()
        assert payload is not None, "broker closed instead of answering ApiVersions v99"
        with known_deviation(node, ("tansu",), "answers in the v3 format"):
            r = kwire.parse_api_versions_v0(payload)
            assert r.correlation_id == 13
            assert r.error_code == 35, f"error code {r.error_code}, want 35 UNSUPPORTED_VERSION"
            assert r.trailing == 0, f"{r.trailing} bytes after the v0 body: not the v0 format"
            assert 18 in r.api_keys, f"ApiVersions' own range missing from {r.api_keys}"
            lo, hi = r.api_keys[18]
            assert lo == 0 and hi >= 3, f"ApiVersions range {lo}..{hi}"
        # What clients do next: retry at a version the broker named, on the same connection.
        c.send(kwire.api_versions_request(3, 14))
        p = c.recv_frame()
        assert p is not None, "connection closed after the UNSUPPORTED_VERSION answer"
        rd = kwire.Reader(p)
        assert (rd.i32(), rd.i16()) == (14, 0)


@pytest.fixture(scope="module")
def raw_topic(node):
    t = unique("raw")
    create_topic(node.bootstrap, t, 1)
    return t


def produce_raw(node, topic: str, records: bytes, corr: int) -> kwire.ProducePartitionResult:
    with conn(node, 15) as c:
        c.send(kwire.produce_v9_request(corr, topic, 0, records))
        payload = c.recv_frame(15)
        assert payload is not None, "broker closed instead of answering Produce v9"
    got_corr, topics, _ = kwire.parse_produce_v9(payload)
    assert got_corr == corr
    assert list(topics) == [topic] and len(topics[topic]) == 1
    return topics[topic][0]


def test_produce_corrupt_crc(node, healthy, raw_topic):
    good = [kwire.Rec(b"k%d" % i, b"v%d" % i, [("h", b"x")]) for i in range(3)]
    r = produce_raw(node, raw_topic, kwire.record_batch(good), 21)
    assert r.error_code == 0, f"a valid hand-built batch was rejected with {r.error_code} {r.error_message}"
    first = r.base_offset
    # librdkafka re-checks our CRC (check.crcs) when it reads the batch back.
    msgs = drain(node.bootstrap, raw_topic, 1, first + 3, conf={"check.crcs": True})
    assert [(m.offset, m.key, m.value, m.headers) for m in msgs][-3:] == \
        [(first + i, b"k%d" % i, b"v%d" % i, [("h", b"x")]) for i in range(3)]
    with known_deviation(node, ("tansu",), "logs the CRC mismatch but appends the batch"):
        r = produce_raw(node, raw_topic, kwire.record_batch(good, corrupt_crc=True), 22)
        assert r.error_code == 2, f"corrupt CRC answered with error {r.error_code}, want 2 CORRUPT_MESSAGE"
        r = produce_raw(node, raw_topic, kwire.record_batch(good), 23)
        assert r.error_code == 0
        assert r.base_offset == first + 3, "the corrupt batch took offsets"
        msgs = drain(node.bootstrap, raw_topic, 1, first + 6, conf={"check.crcs": True})
        assert [(m.offset, m.key, m.value) for m in msgs][-6:] == \
            [(first + i, b"k%d" % (i % 3), b"v%d" % (i % 3)) for i in range(6)]


def test_produce_naming_one_partition_twice(node, healthy, raw_topic):
    """An acks=all Produce that names one partition twice gets an answer for each entry (the
    broker once trapped on the duplicate key while parking it for replication)."""
    batch = kwire.record_batch([kwire.Rec(b"dup", b"twice")])
    with conn(node, 15) as c:
        c.send(kwire.produce_v9_request(41, raw_topic, 0, batch, repeat=2))
        payload = c.recv_frame(15)
        assert payload is not None, "broker closed instead of answering"
    corr, topics, _ = kwire.parse_produce_v9(payload)
    assert corr == 41 and [p.error_code for p in topics[raw_topic]] == [0, 0], topics


def test_produce_over_message_max_bytes(node, healthy, raw_topic):
    rng = random.Random(10)
    big = kwire.record_batch([kwire.Rec(b"big", rng.randbytes(MESSAGE_MAX * 2))])
    assert len(big) < SOCKET_MAX
    with known_deviation(node, ("tansu",), "has no message.max.bytes"):
        r = produce_raw(node, raw_topic, big, 31)
        assert r.error_code == 10, f"oversized batch answered with {r.error_code}, want 10 MESSAGE_TOO_LARGE"
    # Just under the limit is fine.
    ok = kwire.record_batch([kwire.Rec(b"ok", rng.randbytes(MESSAGE_MAX - 200))])
    assert len(ok) <= MESSAGE_MAX
    r = produce_raw(node, raw_topic, ok, 32)
    assert r.error_code == 0, f"a {len(ok)}-byte batch (limit {MESSAGE_MAX}) was rejected with {r.error_code}"


def test_zz_side_client_never_failed(node, side):
    """Runs last: the well-behaved client never saw an error during the hostile phase."""
    side.wait_progress(50, 30)
    acked, consumed = side.counts()
    side.stop()
    assert not side.errors, f"side client errors: {side.errors[:10]}"
    # start() waited for 50 and the line above for 50 more; each attack's check added 20 more.
    assert acked >= 100 and consumed >= 100, f"side client made little progress: {acked} acked, {consumed} consumed"
    assert consumed <= acked + 1
    assert node.is_alive()
