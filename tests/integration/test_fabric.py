"""ZenohCommunicator against a real router and a real second process."""

from __future__ import annotations

import queue
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import torch
import zenoh

from evospikenet import protocol
from evospikenet import zenoh_comm as zc
from evospikenet.protocol import Features
from evospikenet.zenoh_comm import PublishError, ZenohCommunicator
from support import wait_until

PEER = str(Path(__file__).with_name("fabric_peer.py"))
CLUSTER = "fabric"


def features(task_id: int, array) -> Features:
    return Features(task_id=task_id, node_id="tester", features=array, sent_at=time.time())


def awkward_floats() -> np.ndarray:
    """Values a lossy codec would change: NaN payloads, -0.0, infinities, subnormals."""
    rng = np.random.default_rng(7)
    arr = rng.standard_normal((4, 512)).astype(np.float32)
    arr[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
    arr[1, :2] = [np.float32(1e-45), np.finfo(np.float32).max]
    return arr


@pytest.fixture
def comm(router):
    with ZenohCommunicator("tester", cluster=CLUSTER, connect=router.endpoint) as c:
        yield c


@pytest.fixture
def peer(router, processes):
    proc = processes.python(PEER, router.endpoint, CLUSTER, "peer", log_name="peer.log")
    return proc


def wait_for_peer(comm: ZenohCommunicator) -> None:
    """The peer is up once its queryable answers (declarations take a moment to propagate)."""

    def answered():
        try:
            return comm.request("test/svc", features(0, np.zeros(1, np.float32)), timeout=0.5)
        except TimeoutError:
            return None

    wait_until(answered, 20, interval=0.1, what="peer queryable")


def echo_until_received(comm, got: queue.Queue, message, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        comm.publish("test/in", message)
        try:
            return got.get(timeout=0.2)
        except queue.Empty:
            continue
    raise AssertionError("no echo from the peer process")


def test_pubsub_between_processes_round_trips_tensors_bit_exact(comm, peer):
    got: queue.Queue = queue.Queue()
    comm.subscribe("test/out", got.put, expected=Features)
    wait_for_peer(comm)

    arr = awkward_floats()
    echoed = echo_until_received(comm, got, features(3, arr))
    assert echoed.task_id == 3
    assert echoed.features.dtype == np.float32 and echoed.features.shape == (4, 512)
    assert echoed.features.tobytes() == arr.tobytes()

    tensor = torch.linspace(-1, 1, 512, dtype=torch.float64)
    echoed = echo_until_received(comm, got, features(4, tensor))
    assert echoed.features.tobytes() == tensor.numpy().tobytes()
    assert torch.equal(protocol.to_torch(echoed.features), tensor)
    assert comm.counters.received >= 2 and comm.counters.sent >= 2


def test_request_reply_between_processes(comm, peer):
    wait_for_peer(comm)
    arr = awkward_floats()
    reply = comm.request("test/svc", features(41, arr), timeout=5.0)
    assert isinstance(reply, Features)
    assert reply.task_id == 42 and reply.node_id == "peer"
    assert reply.features.tobytes() == arr.tobytes()


def test_request_without_a_server_raises_timeout(comm):
    with pytest.raises(TimeoutError):
        comm.request("test/nobody", features(0, np.zeros(1, np.float32)), timeout=0.3)


def test_garbage_is_dropped_counted_and_the_receiver_keeps_working(router):
    good = features(1, np.ones(8, np.float32))
    bad_version = msgpack.packb({**protocol.to_dict(good), "v": 99}, use_bin_type=True)
    garbage = [b"\xc1\xc1\xc1", protocol.encode(good)[:-5], bad_version, b""]
    got: queue.Queue = queue.Queue()
    with (
        ZenohCommunicator("rx", cluster=CLUSTER, connect=router.endpoint) as rx,
        ZenohCommunicator("tx", cluster=CLUSTER, connect=router.endpoint) as tx,
    ):
        rx.subscribe("test/g", got.put, expected=Features)

        def received_good():
            tx.publish("test/g", good)
            try:
                return got.get(timeout=0.1)
            except queue.Empty:
                return None

        wait_until(received_good, 10, what="subscription ready")
        for payload in garbage:
            tx.publish("test/g", payload)
        tx.publish("test/g", good)
        assert got.get(timeout=5).task_id == 1
        wait_until(lambda: rx.counters.decode_errors == len(garbage), 5, what="decode errors")
        assert got.empty()


def test_garbage_does_not_crash_another_process(comm, peer):
    got: queue.Queue = queue.Queue()
    comm.subscribe("test/out", got.put, expected=Features)
    wait_for_peer(comm)
    for payload in (b"\x00" * 100, b"\x92\x01", msgpack.packb({"v": 1, "t": "features"})):
        comm.publish("test/in", payload)  # the peer fails to decode these and drops them
    assert echo_until_received(comm, got, features(9, np.arange(5.0))).task_id == 9
    assert comm.request("test/svc", features(1, np.zeros(2)), timeout=5).task_id == 2
    assert peer.poll() is None


def test_router_restart_is_survived_by_existing_publisher_and_subscriber(router):
    got: queue.Queue = queue.Queue()
    with (
        ZenohCommunicator("sub", cluster=CLUSTER, connect=router.endpoint) as sub,
        ZenohCommunicator("pub", cluster=CLUSTER, connect=router.endpoint) as pub,
    ):
        sub.subscribe("test/r", got.put, expected=Features)

        def exchanged(task_id: int):
            def attempt():
                try:
                    pub.publish("test/r", features(task_id, np.zeros(1, np.float32)))
                except PublishError:
                    return None  # published while the router is away: lost, by design
                try:
                    return got.get(timeout=0.1).task_id == task_id
                except queue.Empty:
                    return None

            return attempt

        wait_until(exchanged(1), 10, what="first exchange")
        router.restart()
        restarted = time.monotonic()
        wait_until(exchanged(2), 5, what="exchange after the router restart")
        print(f"messages flowed again {time.monotonic() - restarted:.2f}s after restart")
        wait_until(lambda: pub.counters.reconnects >= 1, 5, what="publisher reconnect counted")
        wait_until(lambda: sub.counters.reconnects >= 1, 5, what="subscriber reconnect counted")
        assert pub.connected and sub.connected


def test_connection_lost_flag_reopens_the_session_and_keeps_subscriptions(router):
    got: queue.Queue = queue.Queue()
    with (
        ZenohCommunicator("a", cluster=CLUSTER, connect=router.endpoint) as a,
        ZenohCommunicator("b", cluster=CLUSTER, connect=router.endpoint) as b,
    ):
        a.subscribe("test/h", got.put)
        first = a.session
        a._connection_lost = True
        assert not a.connected
        a.publish("test/other", features(0, np.zeros(1)))  # the next operation re-opens
        assert a.session is not first and first.is_closed()
        assert a.counters.reconnects == 1 and a.connected

        def delivered():
            b.publish("test/h", features(5, np.zeros(1)))
            try:
                return got.get(timeout=0.1).task_id == 5
            except queue.Empty:
                return None

        wait_until(delivered, 10, what="subscription re-declared on the new session")


class FlakySession:
    """The real session, except that the next ``fail`` puts raise like a broken transport."""

    def __init__(self, real, fail: int) -> None:
        self._real = real
        self.fail = fail
        self.puts = 0

    def _maybe_fail(self):
        self.puts += 1
        if self.fail > 0:
            self.fail -= 1
            raise zenoh.ZError("injected transport failure")

    def put(self, key, payload, **kw):
        self._maybe_fail()
        return self._real.put(key, payload, **kw)

    def declare_publisher(self, key, **kw):
        real_pub = self._real.declare_publisher(key, **kw)
        session = self

        class Pub:
            def put(self, payload, **kw):
                session._maybe_fail()
                return real_pub.put(payload, **kw)

            def undeclare(self):
                real_pub.undeclare()

        return Pub()

    def __getattr__(self, name):
        return getattr(self._real, name)


def assert_exponential(delays, base, factor, cap=float("inf")):
    for attempt, delay in enumerate(delays):
        nominal = min(cap, base * factor**attempt)
        assert nominal <= delay <= min(cap, nominal * (1 + zc.JITTER)) + 1e-9, (attempt, delay)


def test_transient_put_failures_are_retried_with_exponential_backoff(router, monkeypatch):
    sessions: list[FlakySession] = []
    real_open = zc.zenoh.open

    def flaky_open(config):
        sessions.append(FlakySession(real_open(config), fail=2))
        return sessions[-1]

    monkeypatch.setattr(zc.zenoh, "open", flaky_open)
    comm = ZenohCommunicator(
        "flaky", cluster=CLUSTER, connect=router.endpoint, max_retries=3, retry_delay=0.01
    )
    try:
        # The constructor's announce failed twice and went through on the third attempt.
        assert comm.counters.retries == 2 and comm.counters.sent == 1
        assert sessions[0].puts == 3
        assert_exponential(list(comm.retry_delays), 0.01, 2.0)

        slept: list[float] = []
        comm._sleep = slept.append
        comm.retry_delay, comm.backoff_factor, comm.max_delay = 1.0, 3.0, 5.0
        comm.retry_delays.clear()
        sessions[0].fail = 3
        comm.publish("test/x", features(0, np.zeros(1)))
        assert list(comm.retry_delays) == slept and len(slept) == 3
        assert_exponential(slept, 1.0, 3.0, cap=5.0)  # 1, 3, then capped at 5

        sessions[0].fail = 100
        comm.max_retries = 2
        with pytest.raises(PublishError, match=r"evospikenet/fabric/test/x.*3 attempts"):
            comm.publish("test/x", features(0, np.zeros(1)))
        assert comm.counters.send_errors == 1
    finally:
        comm.close()


def test_constructor_fails_clearly_when_no_router(free_port):
    with pytest.raises(ConnectionError, match=f"127.0.0.1:{free_port}"):
        ZenohCommunicator(
            "lonely", connect=f"tcp/127.0.0.1:{free_port}", max_retries=0, connect_timeout=0.3
        )
