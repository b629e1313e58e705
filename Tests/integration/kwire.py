"""kwire: just enough of the Kafka wire protocol, by hand, to talk to a broker over a raw socket.

The hostile tests need frames no well-behaved client will send (bad CRCs, truncated bodies,
absurd size prefixes, unknown keys), so they are built here byte by byte instead of through a
client library. Everything is big-endian ("network order") unless it is a varint.

Layouts used below (all from the public Kafka protocol guide):

  Frame (both directions)
    size            int32     number of bytes that follow
    payload         bytes[size]

  Request header v1 (non-flexible requests)
    api_key         int16
    api_version     int16
    correlation_id  int32
    client_id       nullable string (int16 length, -1 = null, then UTF-8 bytes)

  Request header v2 (flexible requests): v1 followed by
    tagged_fields   uvarint count (0 here) + tags
    NB: client_id stays a *non-compact* nullable string even in v2.

  Response header v0:  correlation_id int32
  Response header v1:  correlation_id int32, tagged_fields
    ApiVersions responses always use header v0 (KIP-511), whatever the request version.

  Compact types (flexible versions)
    compact string  uvarint (len + 1), bytes   (0 = null for nullable)
    compact array   uvarint (count + 1), items (0 = null)
    compact bytes   uvarint (len + 1), bytes
    tagged fields   uvarint count, then (uvarint tag, uvarint size, bytes) each

  Record batch, magic v2 ("records" field in Produce/Fetch)
    base_offset              int64
    batch_length             int32   bytes after this field
    partition_leader_epoch   int32
    magic                    int8    (2)
    crc                      uint32  CRC32C of everything from attributes to the end
    attributes               int16   bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control
    last_offset_delta        int32
    base_timestamp           int64
    max_timestamp            int64
    producer_id              int64   (-1 = none)
    producer_epoch           int16   (-1)
    base_sequence            int32   (-1)
    records_count            int32
    records                  Record[records_count]

  Record (inside a batch; lengths are zigzag varints)
    length          varint   bytes after this field
    attributes      int8     (unused, 0)
    timestamp_delta varlong
    offset_delta    varint
    key_length      varint   (-1 = null)
    key             bytes
    value_length    varint   (-1 = null)
    value           bytes
    headers_count   varint
    headers         (varint key_len, key utf-8, varint value_len (-1 = null), value) each
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------------------------
# CRC32C (Castagnoli), table driven, reflected polynomial 0x82F63B78.

def _make_crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "CRC32C self-check failed"

# ---------------------------------------------------------------------------------------------
# Primitive encoders.

def i8(v: int) -> bytes:
    return struct.pack(">b", v)


def i16(v: int) -> bytes:
    return struct.pack(">h", v)


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def u32(v: int) -> bytes:
    return struct.pack(">I", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def uvarint(v: int) -> bytes:
    assert v >= 0
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zigzag-encoded signed varint (works for 32- and 64-bit values)."""
    return uvarint((v << 1) ^ (v >> 63))


def string(s: str | None) -> bytes:
    """Classic nullable string: int16 length (-1 = null) + UTF-8."""
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def compact_bytes(b: bytes | None) -> bytes:
    if b is None:
        return uvarint(0)
    return uvarint(len(b) + 1) + b


def compact_array(items: list[bytes] | None) -> bytes:
    if items is None:
        return uvarint(0)
    return uvarint(len(items) + 1) + b"".join(items)


EMPTY_TAGS = uvarint(0)

# ---------------------------------------------------------------------------------------------
# Decoder.


class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"underflow: want {n} bytes at {self.pos}, have {self.remaining()}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def i16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        shift = 0
        out = 0
        while True:
            b = self.take(1)[0]
            out |= (b & 0x7F) << shift
            if not b & 0x80:
                return out
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def varint(self) -> int:
        v = self.uvarint()
        return (v >> 1) ^ -(v & 1)

    def string(self) -> str | None:
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def compact_bytes(self) -> bytes | None:
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1)

    def compact_array_len(self) -> int:
        n = self.uvarint()
        return -1 if n == 0 else n - 1

    def skip_tags(self) -> dict[int, bytes]:
        tags = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            tags[tag] = self.take(self.uvarint())
        return tags


# ---------------------------------------------------------------------------------------------
# Frames and headers.

def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def request_header_v1(api_key: int, api_version: int, correlation_id: int,
                      client_id: str | None = "kwire") -> bytes:
    return i16(api_key) + i16(api_version) + i32(correlation_id) + string(client_id)


def request_header_v2(api_key: int, api_version: int, correlation_id: int,
                      client_id: str | None = "kwire") -> bytes:
    return request_header_v1(api_key, api_version, correlation_id, client_id) + EMPTY_TAGS


API_PRODUCE = 0
API_METADATA = 3
API_API_VERSIONS = 18
API_FETCH = 1

# ---------------------------------------------------------------------------------------------
# Record batches.


@dataclass
class Rec:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_delta: int = 0


def encode_record(offset_delta: int, r: Rec) -> bytes:
    body = bytearray()
    body += i8(0)                               # attributes
    body += varint(r.timestamp_delta)
    body += varint(offset_delta)
    if r.key is None:
        body += varint(-1)
    else:
        body += varint(len(r.key)) + r.key
    if r.value is None:
        body += varint(-1)
    else:
        body += varint(len(r.value)) + r.value
    body += varint(len(r.headers))
    for hk, hv in r.headers:
        kb = hk.encode()
        body += varint(len(kb)) + kb
        if hv is None:
            body += varint(-1)
        else:
            body += varint(len(hv)) + hv
    return varint(len(body)) + bytes(body)


def record_batch(records: list[Rec], base_offset: int = 0, base_timestamp: int | None = None,
                 attributes: int = 0, corrupt_crc: bool = False, producer_id: int = -1,
                 producer_epoch: int = -1, base_sequence: int = -1) -> bytes:
    """A magic v2 batch, uncompressed unless `attributes` says otherwise (the caller then
    supplies already-compressed record bytes, which this helper does not do). A producer id,
    epoch and base sequence make it idempotent; attributes bit 4 (0x10) transactional."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    encoded = b"".join(encode_record(i, r) for i, r in enumerate(records))
    max_ts = base_timestamp + max((r.timestamp_delta for r in records), default=0)
    after_crc = (
        i16(attributes)
        + i32(len(records) - 1)                 # last_offset_delta
        + i64(base_timestamp)
        + i64(max_ts)
        + i64(producer_id)
        + i16(producer_epoch)
        + i32(base_sequence)
        + i32(len(records))
        + encoded
    )
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    after_length = i32(0) + i8(2) + u32(crc) + after_crc   # leader epoch, magic, crc, rest
    return i64(base_offset) + i32(len(after_length)) + after_length


@dataclass
class Batch:
    """One magic v2 batch as read back (uncompressed only)."""
    base_offset: int
    attributes: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    # (offset, key, value) of each record
    records: list[tuple[int, bytes | None, bytes | None]]

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & 0x10)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & 0x20)


def read_batches(data: bytes | None) -> list[Batch]:
    """The batches of a Fetch answer's records field, in order (a partial batch at the end, as a
    broker may send, is dropped). Compressed batches are not decoded."""
    out: list[Batch] = []
    r = Reader(data or b"")
    while r.remaining() >= 12:
        base_offset = r.i64()
        length = r.i32()
        if length > r.remaining():
            break
        b = Reader(r.take(length))
        b.i32()  # partition leader epoch
        assert b.i8() == 2, "magic v2 only"
        b.u32()  # crc
        attributes = b.i16()
        assert attributes & 0x07 == 0, "compressed batches are not decoded here"
        b.i32()  # last offset delta
        b.i64()
        b.i64()
        producer_id, producer_epoch, base_sequence, count = b.i64(), b.i16(), b.i32(), b.i32()
        records = []
        for _ in range(count):
            rec = Reader(b.take(b.varint()))
            rec.i8()
            rec.varint()  # timestamp delta
            offset_delta = rec.varint()
            key_length = rec.varint()
            key = None if key_length < 0 else rec.take(key_length)
            value_length = rec.varint()
            value = None if value_length < 0 else rec.take(value_length)
            records.append((base_offset + offset_delta, key, value))
        out.append(Batch(base_offset, attributes, producer_id, producer_epoch, base_sequence, records))
    return out


# ---------------------------------------------------------------------------------------------
# Requests.

def api_versions_request(version: int, correlation_id: int, client_id: str = "kwire") -> bytes:
    """ApiVersions at any version. v3+ is flexible: header v2, body = client software name and
    version as compact strings + tags. For versions above the broker's range (e.g. 99) the
    broker must still parse the header (as v2) and answer UNSUPPORTED_VERSION in v0 format."""
    if version >= 3:
        body = compact_string("kwire") + compact_string("1.0") + EMPTY_TAGS
        return frame(request_header_v2(API_API_VERSIONS, version, correlation_id, client_id) + body)
    return frame(request_header_v1(API_API_VERSIONS, version, correlation_id, client_id))


def produce_v9_request(correlation_id: int, topic: str, partition: int, records: bytes | None,
                       acks: int = -1, timeout_ms: int = 10_000, repeat: int = 1,
                       transactional_id: str | None = None, version: int = 9) -> bytes:
    """Produce v9 (first flexible version):
         transactional_id  compact nullable string
         acks              int16
         timeout_ms        int32
         topic_data        compact array of
           name              compact string
           partition_data    compact array of
             index             int32
             records           compact nullable bytes
             tags
           tags
         tags
    v10 to v12 have the same request layout (`version`); v12 is transactions v2's: a
    transactional batch adds its partition to the transaction (KIP-890 part 2).
    """
    assert 9 <= version <= 12
    partition_data = i32(partition) + compact_bytes(records) + EMPTY_TAGS
    # `repeat` names the partition that many times (a malformed request Kafka still answers).
    topic_data = compact_string(topic) + compact_array([partition_data] * repeat) + EMPTY_TAGS
    body = compact_string(transactional_id) + i16(acks) + i32(timeout_ms) + compact_array([topic_data]) + EMPTY_TAGS
    return frame(request_header_v2(API_PRODUCE, version, correlation_id) + body)


@dataclass
class FetchPart:
    """One partition of a Fetch request: where to read from and how much."""
    partition: int
    fetch_offset: int = 0
    max_bytes: int = 1 << 20
    current_leader_epoch: int = -1


def fetch_request(correlation_id: int, topics: dict[str | bytes, list[FetchPart]], session_id: int = 0,
                  session_epoch: int = -1, forgotten: dict[str | bytes, list[int]] | None = None,
                  max_wait_ms: int = 0, min_bytes: int = 1, max_bytes: int = 50 << 20,
                  version: int = 12, isolation_level: int = 0) -> bytes:
    """Fetch v12 (flexible, topics by name) or v13 (topics by 16-byte id: pass bytes keys), a
    consumer's (replica_id -1), with the KIP-227 session fields:
         replica_id        int32
         max_wait_ms       int32
         min_bytes         int32
         max_bytes         int32
         isolation_level   int8
         session_id        int32
         session_epoch     int32
         topics            compact array of
           topic             compact string (v12) | topic_id uuid (v13)
           partitions        compact array of
             partition, current_leader_epoch int32, fetch_offset int64, last_fetched_epoch int32,
             log_start_offset int64, partition_max_bytes int32, tags
           tags
         forgotten_topics  compact array of
           topic             compact string (v12) | topic_id uuid (v13)
           partitions        compact array of int32
           tags
         rack_id           compact string
         tags
    """
    assert version in (12, 13)

    def topic_field(t) -> bytes:
        return t if version >= 13 else compact_string(t)

    topic_items = []
    for t, parts in topics.items():
        items = [i32(p.partition) + i32(p.current_leader_epoch) + i64(p.fetch_offset) + i32(-1) + i64(-1)
                 + i32(p.max_bytes) + EMPTY_TAGS for p in parts]
        topic_items.append(topic_field(t) + compact_array(items) + EMPTY_TAGS)
    forgotten_items = [topic_field(t) + compact_array([i32(p) for p in parts]) + EMPTY_TAGS
                       for t, parts in (forgotten or {}).items()]
    body = (i32(-1) + i32(max_wait_ms) + i32(min_bytes) + i32(max_bytes) + i8(isolation_level) + i32(session_id)
            + i32(session_epoch) + compact_array(topic_items) + compact_array(forgotten_items)
            + compact_string("") + EMPTY_TAGS)
    return frame(request_header_v2(API_FETCH, version, correlation_id) + body)


# ---------------------------------------------------------------------------------------------
# Responses.


@dataclass
class ApiVersionsV0:
    correlation_id: int
    error_code: int
    api_keys: dict[int, tuple[int, int]]
    trailing: int      # bytes left after the v0 body (0 for a true v0 answer)


def parse_api_versions_v0(payload: bytes) -> ApiVersionsV0:
    """Response header v0 + ApiVersions body v0:
         correlation_id int32 | error_code int16 | api_keys int32 count + (int16 key, int16 min, int16 max)
    """
    r = Reader(payload)
    corr = r.i32()
    err = r.i16()
    n = r.i32()
    if n < 0 or n > 1000:
        raise ValueError(f"implausible api_keys count {n}")
    keys = {}
    for _ in range(n):
        k = r.i16()
        keys[k] = (r.i16(), r.i16())
    return ApiVersionsV0(corr, err, keys, r.remaining())


@dataclass
class ProducePartitionResult:
    index: int
    error_code: int
    base_offset: int
    log_append_time_ms: int
    log_start_offset: int
    record_errors: list[tuple[int, str | None]]
    error_message: str | None


def parse_produce_v9(payload: bytes) -> tuple[int, dict[str, list[ProducePartitionResult]], int]:
    """Response header v1 (correlation_id, tags) + Produce v9 body:
         responses compact array of
           name compact string
           partition_responses compact array of
             index int32, error_code int16, base_offset int64, log_append_time_ms int64,
             log_start_offset int64,
             record_errors compact array of (batch_index int32, message compact nullable string, tags)
             error_message compact nullable string
             tags
           tags
         throttle_time_ms int32
         tags
    Returns (correlation_id, {topic: [partition results]}, throttle_time_ms)."""
    r = Reader(payload)
    corr = r.i32()
    r.skip_tags()
    out: dict[str, list[ProducePartitionResult]] = {}
    for _ in range(max(r.compact_array_len(), 0)):
        name = r.compact_string()
        parts = []
        for _ in range(max(r.compact_array_len(), 0)):
            idx = r.i32()
            err = r.i16()
            base = r.i64()
            lat = r.i64()
            lso = r.i64()
            rec_errs = []
            for _ in range(max(r.compact_array_len(), 0)):
                bi = r.i32()
                msg = r.compact_string()
                r.skip_tags()
                rec_errs.append((bi, msg))
            emsg = r.compact_string()
            r.skip_tags()
            parts.append(ProducePartitionResult(idx, err, base, lat, lso, rec_errs, emsg))
        r.skip_tags()
        out[name] = parts
    throttle = r.i32()
    r.skip_tags()
    return corr, out, throttle


@dataclass
class FetchPartitionResult:
    partition: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: bytes | None
    # (producer id, first offset) of each aborted transaction in range (read_committed only)
    aborted_transactions: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class FetchResult:
    correlation_id: int
    error_code: int
    session_id: int
    # (topic name for v12, topic id bytes for v13) -> partitions in answer order
    topics: dict[str | bytes, list[FetchPartitionResult]]

    def partitions(self) -> set[tuple[str | bytes, int]]:
        return {(t, p.partition) for t, parts in self.topics.items() for p in parts}


def parse_fetch(payload: bytes, version: int = 12) -> FetchResult:
    """A Fetch v12/v13 response (header v1):
         throttle_time_ms int32, error_code int16, session_id int32,
         responses compact array of
           topic compact string (v12) | topic_id uuid (v13)
           partitions compact array of
             partition_index int32, error_code int16, high_watermark int64, last_stable_offset int64,
             log_start_offset int64, aborted_transactions compact nullable array of (producer_id
             int64, first_offset int64, tags), preferred_read_replica int32, records compact
             nullable bytes, tags
           tags
         tags
    """
    r = Reader(payload)
    corr = r.i32()
    r.skip_tags()
    r.i32()
    error = r.i16()
    session_id = r.i32()
    topics: dict[str | bytes, list[FetchPartitionResult]] = {}
    for _ in range(r.compact_array_len()):
        topic = r.take(16) if version >= 13 else r.compact_string()
        parts = topics.setdefault(topic, [])
        for _ in range(r.compact_array_len()):
            index, code, hw, lso, log_start = r.i32(), r.i16(), r.i64(), r.i64(), r.i64()
            aborted = []
            for _ in range(max(r.compact_array_len(), 0)):
                aborted.append((r.i64(), r.i64()))
                r.skip_tags()
            r.i32()
            records = r.compact_bytes()
            r.skip_tags()
            parts.append(FetchPartitionResult(index, code, hw, lso, log_start, records, aborted))
        r.skip_tags()
    r.skip_tags()
    return FetchResult(corr, error, session_id, topics)


# ---------------------------------------------------------------------------------------------
# A raw connection.


class Conn:
    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @classmethod
    def to(cls, bootstrap: str, timeout: float = 5.0) -> "Conn":
        host, port = bootstrap.rsplit(":", 1)
        return cls(host, int(port), timeout)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def half_close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n: int, deadline: float) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"timed out with {len(buf)}/{n} bytes")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def recv_frame(self, timeout: float = 10.0) -> bytes | None:
        """The next response payload (without its size prefix), or None if the peer closed."""
        deadline = time.monotonic() + timeout
        head = self._recv_exact(4, deadline)
        if head is None:
            return None
        (size,) = struct.unpack(">i", head)
        if size < 0 or size > 256 * 1024 * 1024:
            raise ValueError(f"implausible response size {size}")
        body = self._recv_exact(size, deadline)
        if body is None:
            raise ValueError(f"connection closed inside a {size}-byte response frame")
        return body

    def fetch(self, correlation_id: int, topics, **kwargs) -> FetchResult:
        """Sends a Fetch (see `fetch_request`) and reads its answer."""
        version = kwargs.get("version", 12)
        self.send(fetch_request(correlation_id, topics, **kwargs))
        payload = self.recv_frame()
        if payload is None:
            raise ValueError("the broker closed the connection instead of answering a Fetch")
        return parse_fetch(payload, version)

    def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the peer closes (EOF or reset) within `timeout`, discarding anything it sends."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError):
                return True
            if not chunk:
                return True


def api_versions_ok(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if an ApiVersions v0 round trip succeeds with error_code 0."""
    try:
        with Conn.to(bootstrap, timeout) as c:
            c.send(api_versions_request(0, 4242))
            payload = c.recv_frame(timeout)
            if payload is None:
                return False
            resp = parse_api_versions_v0(payload)
            return resp.correlation_id == 4242 and resp.error_code == 0
    except (OSError, ValueError, TimeoutError):
        return False
