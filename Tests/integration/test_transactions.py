"""Transactions, the coordinator's first steps: FindCoordinator for a transactional id and
InitProducerId with one, served by the transaction coordinator of the broker that leads the id's
`__transaction_state` partition (created on the first FindCoordinator, as Kafka does).

- confluent-kafka: a transactional producer's init_transactions() succeeds, and so does a second
  producer's with the same transactional id (which fences the first).
- By hand on the wire (kwire): FindCoordinator key type 1 names this broker; InitProducerId gives a
  new id epoch 0 and bumps it on every call; KIP-360 recovery with the current epoch bumps it, a
  wrong epoch is PRODUCER_FENCED from v4 on and INVALID_PRODUCER_EPOCH before; a timeout above
  transaction.max.timeout.ms is INVALID_TRANSACTION_TIMEOUT; and after a kill -9 and restart the
  coordinator reloads the id from `__transaction_state` and continues from the epoch it wrote.

Not here yet (not served by this build): AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
EndTxn and the markers, read_committed fetches.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

import kwire
from kwire import Reader, compact_string, frame, i8, i16, i32, i64, request_header_v1, request_header_v2, string
from util import QUIET, unique

TXN_PROPS = {
    "transaction.state.log.num.partitions": 4,
    "transaction.state.log.replication.factor": 1,
    "transaction.state.log.min.isr": 1,
    "transaction.max.timeout.ms": 120000,
}

API_FIND_COORDINATOR = 10
API_INIT_PRODUCER_ID = 22
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_PRODUCER_EPOCH = 47
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
PRODUCER_FENCED = 90
RETRIABLE = {COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS}


@pytest.fixture(scope="module")
def tnode(module_node_factory):
    return module_node_factory(TXN_PROPS)


def find_coordinator(bootstrap: str, transactional_id: str) -> tuple[int, int, str, int]:
    """FindCoordinator v1, key type 1: (error, node id, host, port)."""
    with kwire.Conn.to(bootstrap) as c:
        c.send(frame(request_header_v1(API_FIND_COORDINATOR, 1, 7) + string(transactional_id) + i8(1)))
        r = Reader(c.recv_frame())
        assert r.i32() == 7
        r.i32()  # throttle
        error = r.i16()
        r.string()  # error message
        return error, r.i32(), r.string(), r.i32()


def init_producer_id(bootstrap: str, transactional_id: str, producer_id: int = -1, epoch: int = -1,
                     timeout_ms: int = 60000, version: int = 4) -> tuple[int, int, int]:
    """InitProducerId v3+ (flexible) with a transactional id: (error, producer id, epoch)."""
    body = compact_string(transactional_id) + i32(timeout_ms) + i64(producer_id) + i16(epoch) + kwire.EMPTY_TAGS
    with kwire.Conn.to(bootstrap) as c:
        c.send(frame(request_header_v2(API_INIT_PRODUCER_ID, version, 9) + body))
        r = Reader(c.recv_frame())
        assert r.i32() == 9
        r.skip_tags()
        r.i32()  # throttle
        return r.i16(), r.i64(), r.i16()


def until_answered(call, timeout: float = 30.0):
    """Calls `call` until its error is not a retriable coordinator error (the topic being created,
    its partition being loaded, the first producer-id block on its way)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = call()
        if answer[0] not in RETRIABLE or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_confluent_init_transactions_and_a_second_instance(tnode):
    tid = unique("txn")
    first = Producer({"bootstrap.servers": tnode.bootstrap, "transactional.id": tid, **QUIET})
    first.init_transactions(60)
    second = Producer({"bootstrap.servers": tnode.bootstrap, "transactional.id": tid, **QUIET})
    second.init_transactions(60)
    # The coordinator gave the second instance the next epoch of the same producer id.
    error, pid, epoch = init_producer_id(tnode.bootstrap, tid)
    assert error == NONE and pid >= 0 and epoch == 2, (error, pid, epoch)
    first.flush(1)
    second.flush(1)


def test_coordinator_epochs_fencing_and_reload(tnode):
    tid = unique("txn")
    error, node_id, host, port = until_answered(lambda: find_coordinator(tnode.bootstrap, tid))
    assert error == NONE and f"{host}:{port}" == tnode.bootstrap, (error, node_id, host, port)

    error, pid, epoch = until_answered(lambda: init_producer_id(tnode.bootstrap, tid))
    assert (error, epoch) == (NONE, 0) and pid >= 0
    assert init_producer_id(tnode.bootstrap, tid) == (NONE, pid, 1), "a new instance bumps the epoch"
    # KIP-360: the producer names its current id and epoch and gets the next epoch.
    assert init_producer_id(tnode.bootstrap, tid, pid, 1) == (NONE, pid, 2)
    # An epoch that is neither the current nor the previous one is fenced, by version (KIP-588).
    assert init_producer_id(tnode.bootstrap, tid, pid, 7)[0] == PRODUCER_FENCED
    assert init_producer_id(tnode.bootstrap, tid, pid, 7, version=3)[0] == INVALID_PRODUCER_EPOCH
    assert init_producer_id(tnode.bootstrap, tid, timeout_ms=120001)[0] == INVALID_TRANSACTION_TIMEOUT

    # Every answer followed its write to __transaction_state: a restarted coordinator reloads it.
    tnode.kill9()
    tnode.restart()
    error, _, _, _ = until_answered(lambda: find_coordinator(tnode.bootstrap, tid), timeout=60)
    assert error == NONE
    assert until_answered(lambda: init_producer_id(tnode.bootstrap, tid, pid, 2), timeout=60) == (NONE, pid, 3)
    assert init_producer_id(tnode.bootstrap, tid, pid, 1)[0] == PRODUCER_FENCED
