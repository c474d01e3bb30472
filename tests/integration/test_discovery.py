"""Discovery against a real router and real heartbeating node processes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from evospikenet import procs
from evospikenet.node_discovery import HeartbeatPublisher, NodeInfo, ZenohNodeDiscovery
from evospikenet.zenoh_comm import ZenohCommunicator
from support import wait_until

CLUSTER = "disc"
INTERVAL = 0.2


def start_node(processes, router, node_id, role="vision", interval=INTERVAL):
    return processes.python(
        "-m", "evospikenet", "heartbeat", "--id", node_id, "--role", role, "--cluster", CLUSTER,
        "--connect", router.endpoint, "--interval", str(interval), log_name=f"{node_id}.log",
    )


class Recorder:
    """Remembers when each node was first seen active and first seen inactive."""

    def __init__(self) -> None:
        self.active_at: dict[str, float] = {}
        self.inactive_at: dict[str, float] = {}
        self.lock = threading.Lock()

    def __call__(self, node_id: str, info: NodeInfo | None) -> None:
        now = time.time()
        with self.lock:
            if info is not None and info.status == "active":
                self.active_at.setdefault(node_id, now)
            elif info is not None and node_id in self.active_at:
                self.inactive_at.setdefault(node_id, now)


@pytest.fixture
def discovery(router):
    rec = Recorder()
    disc = ZenohNodeDiscovery(
        cluster=CLUSTER, connect=router.endpoint, timeout=2.0, cleanup_threshold=300,
        check_interval=0.1, on_change=rec,
    )
    disc.recorder = rec
    with disc:
        yield disc


def test_construction_only_configures():
    disc = ZenohNodeDiscovery(cluster=CLUSTER, connect="tcp/127.0.0.1:1")
    assert disc.comm is None and disc.nodes == {} and disc._monitor is None


def test_heartbeating_node_is_active_within_two_intervals_and_inactive_soon_after_sigkill(
    router, processes, discovery
):
    node = start_node(processes, router, "vision-0")
    wait_until(lambda: "vision-0" in discovery.recorder.active_at, 20, what="node seen active")
    info = discovery.nodes["vision-0"]
    seen_after = discovery.recorder.active_at["vision-0"] - info.started
    print(f"active {seen_after * 1000:.0f} ms after the node's session opened")
    assert seen_after < 2 * INTERVAL
    assert [n.node_id for n in discovery.get_active_nodes()] == ["vision-0"]
    assert [n.node_id for n in discovery.get_nodes_by_role("vision")] == ["vision-0"]

    procs.kill(node)
    killed = time.time()
    wait_until(lambda: discovery.nodes["vision-0"].status == "inactive", discovery.timeout + 1,
               what="killed node inactive")
    took = discovery.recorder.inactive_at["vision-0"] - killed
    print(f"inactive {took * 1000:.0f} ms after SIGKILL (heartbeat timeout {discovery.timeout}s)")
    assert took < 1.0  # the liveliness token goes with the process, long before the timeout
    assert discovery.get_active_nodes() == []


def test_a_hung_node_goes_inactive_after_the_heartbeat_timeout(router, processes, discovery):
    node = start_node(processes, router, "pfc-0", role="pfc")
    wait_until(lambda: "pfc-0" in discovery.recorder.active_at, 20, what="node seen active")
    os.kill(node.pid, signal.SIGSTOP)  # silent but its connection and token stay up
    stopped = time.time()
    try:
        wait_until(lambda: discovery.nodes["pfc-0"].status == "inactive",
                   discovery.timeout + 1, what="hung node inactive")
        took = discovery.recorder.inactive_at["pfc-0"] - stopped
        assert discovery.timeout - INTERVAL <= took <= discovery.timeout + 1
        assert discovery.nodes["pfc-0"].alive  # the timeout did it, not liveliness
    finally:
        os.kill(node.pid, signal.SIGCONT)
    wait_until(lambda: discovery.nodes["pfc-0"].status == "active", 5, what="node back")


def test_cleanup_removes_a_silent_node_and_keeps_it_with_auto_cleanup_off(router):
    def observer(auto):
        return ZenohNodeDiscovery(
            cluster=CLUSTER, connect=router.endpoint, timeout=0.3, cleanup_threshold=0.8,
            enable_auto_cleanup=auto, check_interval=0.1,
        )

    with (
        observer(True) as cleaning,
        observer(False) as keeping,
        ZenohCommunicator("vision-9", cluster=CLUSTER, connect=router.endpoint) as comm,
    ):
        beats = HeartbeatPublisher(comm, "vision", INTERVAL).start()
        wait_until(lambda: "vision-9" in cleaning.nodes and "vision-9" in keeping.nodes, 10,
                   what="node seen by both observers")
        beats.stop()  # silent from now on (the liveliness token stays)
        wait_until(lambda: "vision-9" not in cleaning.nodes, 5, what="node forgotten")
        assert cleaning.get_node_count() == 0
        # The monitor has run past the threshold on the other observer too: it still knows it.
        wait_until(lambda: keeping.nodes["vision-9"].status == "inactive", 5, what="inactive")
        assert keeping.check(now=time.time() + 3600) == []
        assert keeping.get_node_count() == 1
