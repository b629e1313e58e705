"""Fixtures that run a real broker process for the integration tests (see nodes.py).

Every node gets a fresh temp dir and fresh ports, is formatted (`runnel format`) and started
(`runnel server server.properties`), and is considered up once its PLAINTEXT port accepts TCP
connections and answers an ApiVersions v0 request. Nodes are always torn down: SIGTERM, then
SIGKILL after a grace period, at fixture teardown, at session end and at interpreter exit; on
Linux each child also gets PR_SET_PDEATHSIG=SIGKILL so it dies with pytest even if pytest itself
is killed -9. A node that died without being told to fails the test that owned it.

Environment:
  RUNNEL_BIN            broker binary (default <repo>/.build/debug/runnel)
  RUNNEL_PEER=tansu     run Tansu instead (for developing the tests; Runnel-only tests skip)
  RUNNEL_PEER=external  use the running broker at RUNNEL_BOOTSTRAP (never stopped; tests that
                        restart or inspect files skip); RUNNEL_EXTERNAL_KIND names what it is
  TANSU_BIN             Tansu binary (default: `tansu` on PATH, in .venv, or /tmp/wheels/...)
  RUNNEL_START_TIMEOUT  seconds to wait for a node to accept connections (default 60)
  RUNNEL_NO_SKIPS=1     a skipped test fails instead (tools/test sets it: a missing tool must not
                        quietly drop an acceptance check)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nodes import _LIVE, Node, _kill_all, make_node  # noqa: E402,F401
from util import PEER, PEER_KIND, is_runnel  # noqa: E402


class NodeFactory:
    def __init__(self, tmp_path_factory):
        self.tmp = tmp_path_factory
        self.nodes: list[Node] = []

    def __call__(self, props: dict | None = None, start: bool = True, **kw) -> Node:
        props = dict(props or {})
        props.update({k.replace("_", "."): v for k, v in kw.items()})
        node = make_node(self.tmp.mktemp(PEER), props)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def close_all(self) -> list[str]:
        problems = []
        for n in self.nodes:
            if n.died_unexpectedly():
                problems.append(f"{n!r} died unexpectedly (exit {n.proc.returncode}); "
                                f"log tail:\n{n.log_tail()}")
            n.close()
        self.nodes.clear()
        return problems


@pytest.fixture
def node_factory(tmp_path_factory):
    """Call with server.properties overrides (dict or kwargs with '_' for '.') to get a running node
    that is torn down at the end of the test."""
    f = NodeFactory(tmp_path_factory)
    yield f
    problems = f.close_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def module_node_factory(tmp_path_factory):
    f = NodeFactory(tmp_path_factory)
    yield f
    problems = f.close_all()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def broker(module_node_factory) -> Node:
    """A default single-node broker shared by the tests of one module."""
    return module_node_factory()


@pytest.fixture
def require_runnel():
    if not is_runnel():
        pytest.skip(f"needs Runnel (running against {PEER_KIND})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _LIVE:
        for n in list(_LIVE):
            rep.sections.append((f"{n!r} log tail", n.log_tail(60)))


def pytest_sessionfinish(session, exitstatus):
    _kill_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("RUNNEL_NO_SKIPS") == "1" and is_runnel():
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped under RUNNEL_NO_SKIPS=1: {reason}"
