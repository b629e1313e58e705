"""Kafka's connection limits and idle timeout on a real node, over raw sockets:

- `max.connections.per.ip.overrides` (and so `max.connections.per.ip`): clients connecting from
  127.0.0.2, allowed two connections, get two that answer ApiVersions; a third is closed as it
  arrives; once one of the two closes, a new one is taken again. Connections from 127.0.0.1 (the
  node's own, the test's admin) are not limited.
- `connections.max.idle.ms`: a connection that sends nothing is closed after it; one that keeps
  sending requests stays open past it.

Runnel only: the node's log names the refusal.
"""

from __future__ import annotations

import socket
import time

import pytest

import kwire
from util import is_runnel


@pytest.fixture(scope="module")
def limited(module_node_factory):
    if not is_runnel():
        pytest.skip("reads Runnel's log")
    return module_node_factory({"max.connections.per.ip.overrides": "127.0.0.2:2", "connections.max.idle.ms": 2000})


def connect_from(source: str, bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5, source_address=(source, 0))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def answers(s: socket.socket) -> bool:
    """Whether the connection answers an ApiVersions request (False once the node closed it)."""
    try:
        s.sendall(kwire.api_versions_request(0, 1))
        head = s.recv(4)
        return len(head) == 4
    except OSError:
        return False


def test_connections_per_address_are_limited(limited):
    first, second = connect_from("127.0.0.2", limited.bootstrap), connect_from("127.0.0.2", limited.bootstrap)
    try:
        assert answers(first) and answers(second)
        third = connect_from("127.0.0.2", limited.bootstrap)
        assert not answers(third), "a third connection from 127.0.0.2 was served"
        third.close()
        assert "127.0.0.2 already has 2 connections (max.connections.per.ip)" in limited.log_text()
        # 127.0.0.1 is not limited.
        others = [connect_from("127.0.0.1", limited.bootstrap) for _ in range(4)]
        assert all(answers(s) for s in others)
        for s in others:
            s.close()
        first.close()
        time.sleep(0.3)
        again = connect_from("127.0.0.2", limited.bootstrap)
        assert answers(again), "a freed slot was not given again"
        again.close()
    finally:
        first.close()
        second.close()


def test_idle_connections_are_closed(limited):
    idle = connect_from("127.0.0.1", limited.bootstrap)
    busy = connect_from("127.0.0.1", limited.bootstrap)
    try:
        assert answers(idle)
        idle.settimeout(8)
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            assert answers(busy), "a busy connection was closed"
            busy.recv(65536)   # the rest of the ApiVersions answer
            time.sleep(0.4)
        idle.recv(65536)       # the rest of its one answer
        assert idle.recv(1) == b"", "an idle connection stayed open past connections.max.idle.ms"
    finally:
        idle.close()
        busy.close()
