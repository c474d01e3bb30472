"""Messages/s and latency of the Zenoh fabric: ZenohCommunicator versus raw zenoh.

    python bench/fabric.py [--json PATH] [--quick]

Every case runs against a real router process (``python -m evospikenet router``) on
127.0.0.1, with publishers and subscribers in separate processes (this script re-invoked
with a hidden ``--role``). Children report through files in a temporary directory; no
message data goes through anything but Zenoh.

- ``1->1 throughput``: one publisher puts the same encoded ``Features`` (64 float32 spikes)
  as fast as it can for a fixed window; the subscriber counts what arrives. ``comm`` is
  ``ZenohCommunicator.publish(bytes)`` -> ``subscribe`` (decode + callback); ``raw`` is a
  declared publisher -> default-FIFO subscriber drained by a thread (``to_bytes`` only).
- ``1->1 ping-pong``: one ping at a time, round trip / 2 = one-way latency. ``comm`` encodes
  a Features, the echo decodes and re-publishes it, the pinger decodes the echo; ``raw``
  echoes the bytes.
- ``16 nodes``: 16 communicators (16 Zenoh sessions, 16 router clients) split over a few
  processes (``--mesh-procs``, 4 by default: 16 interpreters on 2 cores would mostly measure
  the scheduler). Each node publishes Features on ``spikes/<node>`` and subscribes to
  ``spikes/*``; delivery latency is receive time minus the embedded ``sent_at``
  (``time.time()``, one clock on one machine). A node's own messages are not counted, so
  a message published is up to 15 deliveries. Run at 25% and 100% of the target's offered
  load (100k deliveries/s: 417 msgs/s per node) and with every node flat out.

Columns: ``sent/s`` is messages published per second (pings for ping-pong), ``deliv/s``
messages received per second over all subscribers, ``loss%`` deliveries that never came.
Flat-out cases share 2 cores between publisher, router and subscribers: the publisher can
starve the subscriber, so their delivered rate is the sustained rate under overload.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from _report import write_report

from evospikenet import procs
from evospikenet.netutil import free_tcp_port
from evospikenet.protocol import Features, Keys, encode
from evospikenet.zenoh_comm import ZenohCommunicator, make_config

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "fabric.json"
CLUSTER = "bench"
KEYS = Keys(CLUSTER)
SPIKE_DIM = 64
TARGET_MSGS_PER_S = 100_000
TARGET_P95_MS = 50.0
READY_TIMEOUT_S = 30.0  # children give up on a start signal that never comes
START_DELAY_S = 0.3  # between "everyone is ready" and the start of the window
GRACE_S = 1.0  # subscribers keep draining this long after the window
CHILD_LIFETIME_S = 120.0  # hard bound on any child, whatever happens to the parent
MESH_LOADS = (0.25, 1.0, 0.0)  # offered load as a fraction of the target; 0 = flat out


# ------------------------------------------------------------------------------ payload


def spike_vector(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(SPIKE_DIM) < 0.2).astype(np.float32)


def features(task_id: int, node_id: str, vec: np.ndarray) -> Features:
    return Features(task_id=task_id, node_id=node_id, features=vec, sent_at=time.time())


# ------------------------------------------------------------------------------ child side
# Each role gets a JSON spec (plain config only) and a work directory: it writes
# ``<name>.ready`` once declared, waits for ``go`` (the window start time), and writes
# ``<name>.json`` with its figures.


def write_file(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_for_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def ready_and_wait(spec: dict[str, Any]) -> float:
    """Signal readiness, then return the window start time from the parent's ``go`` file."""
    work = Path(spec["dir"])
    write_file(work / f"{spec['name']}.ready", "1")
    if not wait_for_file(work / "go", READY_TIMEOUT_S):
        raise TimeoutError("no go signal from the parent")
    start = float((work / "go").read_text())
    time.sleep(max(0.0, start - time.time()))
    return start


def report(spec: dict[str, Any], result: dict[str, Any]) -> None:
    write_file(Path(spec["dir"]) / f"{spec['name']}.json", json.dumps(result))


def communicator(spec: dict[str, Any], node_id: str) -> ZenohCommunicator:
    return ZenohCommunicator(node_id, cluster=CLUSTER, connect=spec["connect"], max_retries=5)


def raw_session(spec: dict[str, Any]) -> Any:
    import zenoh

    return zenoh.open(make_config("client", spec["connect"]))


def drain(sub: Any, on_sample: Callable[[Any], None]) -> threading.Thread:
    """A thread draining a default-FIFO subscriber (ends when the session closes)."""

    def run() -> None:
        import zenoh

        try:
            for sample in sub.handler:
                on_sample(sample)
        except zenoh.ZError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Tally:
    """Count received messages and the time of the last one (one writer thread)."""

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0

    def hit(self, _: Any = None) -> None:
        self.count += 1
        self.last = time.time()


def role_tp_pub(spec: dict[str, Any]) -> None:
    payload = encode(features(0, "pub", spike_vector()))
    key = "bench/tp"
    if spec["mode"] == "comm":
        comm = communicator(spec, "tp-pub")
        comm.publish(key, payload)  # declares the publisher before the window
        put: Callable[[], None] = lambda: comm.publish(key, payload)  # noqa: E731
        close = comm.close
    else:
        session = raw_session(spec)
        pub = session.declare_publisher(KEYS.abs(key))
        put = lambda: pub.put(payload)  # noqa: E731
        close = session.close
    try:
        start = ready_and_wait(spec)
        end = start + spec["window"]
        sent = 0
        while True:
            for _ in range(100):
                put()
            sent += 100
            if time.time() >= end:
                break
        report(spec, {"sent": sent, "seconds": time.time() - start})
    finally:
        close()


def role_tp_sub(spec: dict[str, Any]) -> None:
    tally = Tally()
    key = "bench/tp"
    if spec["mode"] == "comm":
        comm = communicator(spec, "tp-sub")
        comm.subscribe(key, tally.hit, expected=Features)
        close = comm.close
    else:
        session = raw_session(spec)
        sub = session.declare_subscriber(KEYS.abs(key))
        drain(sub, lambda s: tally.hit(s.payload.to_bytes()))
        close = session.close
    try:
        start = ready_and_wait(spec)
        time.sleep(max(0.0, start + spec["window"] + GRACE_S - time.time()))
        report(spec, {"received": tally.count, "last": tally.last, "start": start})
    finally:
        close()


def role_pong(spec: dict[str, Any]) -> None:
    """Echo every ping until the parent writes ``stop`` (or the lifetime bound)."""
    if spec["mode"] == "comm":
        comm = communicator(spec, "pong")
        comm.subscribe("bench/ping", lambda m: comm.publish("bench/pong", m), expected=Features)
        close = comm.close
    else:
        session = raw_session(spec)
        pub = session.declare_publisher(KEYS.abs("bench/pong"))
        sub = session.declare_subscriber(KEYS.abs("bench/ping"))
        drain(sub, lambda s: pub.put(s.payload.to_bytes()))
        close = session.close
    try:
        ready_and_wait(spec)
        wait_for_file(Path(spec["dir"]) / "stop", CHILD_LIFETIME_S)
    finally:
        close()


class PingPong:
    """One outstanding ping: ``send(seq)`` then wait for the echo that matches it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.event = threading.Event()
        self.seq = -1
        self.received_ns = 0
        self.vec = spike_vector()
        self.payloads: dict[int, bytes] = {}
        self.raw = spec["mode"] == "raw"
        if not self.raw:
            self.comm = communicator(spec, "ping")
            self.comm.subscribe("bench/pong", self._on_message, expected=Features)
            self.send = self._send_comm
            self.close = self.comm.close
        else:
            self.session = raw_session(spec)
            self.pub = self.session.declare_publisher(KEYS.abs("bench/ping"))
            sub = self.session.declare_subscriber(KEYS.abs("bench/pong"))
            drain(sub, self._on_sample)
            self.send = self._send_raw
            self.close = self.session.close

    def _matched(self) -> None:
        self.received_ns = time.perf_counter_ns()
        self.event.set()

    def _on_message(self, msg: Features) -> None:
        if msg.task_id == self.seq:
            self._matched()

    def _on_sample(self, sample: Any) -> None:
        if sample.payload.to_bytes() == self.payloads.get(self.seq):
            self._matched()

    def _send_comm(self, seq: int) -> None:
        self.comm.publish("bench/ping", features(seq, "ping", self.vec))

    def _send_raw(self, seq: int) -> None:
        self.pub.put(self.payloads[seq])

    def round_trip(self, seq: int, timeout: float) -> float | None:
        """Round-trip time in seconds, or None when the echo did not come in time."""
        if self.raw:  # encoded before the clock starts: raw measures the fabric alone
            self.payloads = {seq: encode(features(seq, "ping", self.vec))}
        self.event.clear()
        self.seq = seq
        start = time.perf_counter_ns()
        self.send(seq)
        if not self.event.wait(timeout):
            return None
        return (self.received_ns - start) / 1e9


def role_ping(spec: dict[str, Any]) -> None:
    pp = PingPong(spec)
    try:
        ready_and_wait(spec)
        seq = 0
        deadline = time.monotonic() + 10.0
        while pp.round_trip(seq, 0.2) is None:  # the echo side may still be subscribing
            seq += 1
            if time.monotonic() > deadline:
                raise TimeoutError("no echo from the pong process")
        for _ in range(50):  # warm-up
            seq += 1
            pp.round_trip(seq, 1.0)
        rtts: list[float] = []
        lost = 0
        deadline = time.monotonic() + spec["budget"]
        while len(rtts) + lost < spec["samples"] and time.monotonic() < deadline:
            seq += 1
            rtt = pp.round_trip(seq, 1.0)
            if rtt is None:
                lost += 1
            else:
                rtts.append(rtt)
            time.sleep(spec["gap"])
        report(spec, {"rtts": rtts, "lost": lost})
    finally:
        pp.close()


class MeshNode:
    """One of the 16 nodes: a communicator publishing spikes/<id>, subscribed to spikes/*."""

    def __init__(self, spec: dict[str, Any], node_id: str) -> None:
        self.node_id = node_id
        self.latencies: list[float] = []
        self.own = 0
        self.last = 0.0
        self.sent = 0
        self.key = f"spikes/{node_id}"
        self.comm = communicator(spec, node_id)
        self.comm.subscribe("spikes/*", self._on_message, expected=Features)

    def _on_message(self, msg: Features) -> None:
        now = time.time()
        if msg.node_id == self.node_id:
            self.own += 1
            return
        self.latencies.append(now - msg.sent_at)
        self.last = now

    def publish(self, vec: np.ndarray) -> None:
        self.comm.publish(self.key, features(self.sent, self.node_id, vec))
        self.sent += 1


def publish_mesh(nodes: list[MeshNode], start: float, window: float, rate: float) -> None:
    """Publish from every node until the window ends: ``rate`` per node per s, 0 = flat out."""
    vec = spike_vector()
    end = start + window
    while (now := time.time()) < end:
        if rate <= 0:
            for _ in range(10):
                for node in nodes:
                    node.publish(vec)
            continue
        due = int((now - start) * rate)
        for node in nodes:
            for _ in range(max(0, due - node.sent)):
                node.publish(vec)
        time.sleep(0.002)


def role_mesh(spec: dict[str, Any]) -> None:
    nodes: list[MeshNode] = []
    try:
        for node_id in spec["ids"]:
            nodes.append(MeshNode(spec, node_id))
        start = ready_and_wait(spec)
        publish_mesh(nodes, start, spec["window"], spec["rate"])
        time.sleep(max(0.0, start + spec["window"] + GRACE_S - time.time()))
        lat = np.asarray([x for n in nodes for x in n.latencies], dtype=np.float64)
        lat.tofile(Path(spec["dir"]) / f"{spec['name']}.lat")
        report(
            spec,
            {
                "sent": sum(n.sent for n in nodes),
                "received": len(lat),
                "own": sum(n.own for n in nodes),
                "last": max((n.last for n in nodes), default=0.0),
            },
        )
    finally:
        for node in nodes:
            node.comm.close()


ROLES: dict[str, Callable[[dict[str, Any]], None]] = {
    "tp-pub": role_tp_pub,
    "tp-sub": role_tp_sub,
    "pong": role_pong,
    "ping": role_ping,
    "mesh": role_mesh,
}


def run_role(role: str, spec_json: str) -> int:
    spec = json.loads(spec_json)
    # A bound that holds even if the parent dies without stopping us.
    timer = threading.Timer(CHILD_LIFETIME_S, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    ROLES[role](spec)
    return 0


# ------------------------------------------------------------------------------ parent side


@dataclass(frozen=True)
class Plan:
    window: float
    samples: int
    nodes: int
    mesh_procs: int

    @property
    def target_rate_per_node(self) -> float:
        """Publish rate per node that offers TARGET deliveries/s (each goes to nodes-1)."""
        return TARGET_MSGS_PER_S / (self.nodes * (self.nodes - 1))


@dataclass(frozen=True)
class CaseResult:
    case: str
    mode: str
    seconds: float
    sent: int
    received: int
    sent_per_s: float
    delivered_per_s: float
    loss_pct: float
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    samples: int = 0


def percentiles_ms(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1e3
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99)}


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM us when the parent dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


PREEXEC = _die_with_parent if sys.platform.startswith("linux") else None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt meanwhile, so that ``finally`` stops children."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Children:
    """The child processes of one case, all stopped by process group on exit."""

    def __init__(self, connect: str, work: Path) -> None:
        self.connect = connect
        self.work = work
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def spawn(self, role: str, name: str, **spec: Any) -> None:
        spec = {"connect": self.connect, "dir": str(self.work), "name": name, **spec}
        argv = [sys.executable, str(Path(__file__).resolve()), "--role", role]
        proc = procs.spawn(
            [*argv, "--spec", json.dumps(spec)],
            log_path=self.work / f"{name}.log",
            preexec_fn=PREEXEC,
        )
        self.procs.append((name, proc))

    def start(self) -> float:
        """Wait until every child is ready, then tell them when the window starts."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name, proc in self.procs:
            while not (self.work / f"{name}.ready").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"child {name} did not get ready: {self.log_tail(name)}")
                time.sleep(0.01)
        start = time.time() + START_DELAY_S
        write_file(self.work / "go", repr(start))
        return start

    def result(self, name: str, timeout: float) -> dict[str, Any]:
        path = self.work / f"{name}.json"
        proc = dict(self.procs)[name]
        deadline = time.monotonic() + timeout
        while not path.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"child {name} gave no result: {self.log_tail(name)}")
            time.sleep(0.01)
        return json.loads(path.read_text())

    def log_tail(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        for _, proc in self.procs:
            procs.stop(proc)


def case_dir(root: Path, name: str) -> Path:
    path = root / name
    path.mkdir()
    return path


def run_throughput(connect: str, root: Path, mode: str, window: float) -> CaseResult:
    with Children(connect, case_dir(root, f"tp-{mode}")) as kids:
        kids.spawn("tp-sub", "sub", mode=mode, window=window)
        kids.spawn("tp-pub", "pub", mode=mode, window=window)
        kids.start()
        timeout = window + GRACE_S + 10.0
        pub, sub = kids.result("pub", timeout), kids.result("sub", timeout)
    span = max(pub["seconds"], sub["last"] - sub["start"])
    return CaseResult(
        case="1->1 throughput",
        mode=mode,
        seconds=span,
        sent=pub["sent"],
        received=sub["received"],
        sent_per_s=pub["sent"] / pub["seconds"],
        delivered_per_s=sub["received"] / span,
        loss_pct=100.0 * (1 - sub["received"] / max(1, pub["sent"])),
    )


def run_pingpong(connect: str, root: Path, mode: str, samples: int) -> CaseResult:
    work = case_dir(root, f"pp-{mode}")
    with Children(connect, work) as kids:
        kids.spawn("pong", "pong", mode=mode)
        kids.spawn("ping", "ping", mode=mode, samples=samples, gap=0.001, budget=15.0)
        kids.start()
        started = time.monotonic()
        ping = kids.result("ping", 40.0)
        seconds = time.monotonic() - started
        write_file(work / "stop", "1")
    one_way = np.asarray(ping["rtts"]) / 2
    total = len(one_way) + ping["lost"]
    return CaseResult(
        case="1->1 ping-pong one-way",
        mode=mode,
        seconds=seconds,
        sent=total,
        received=len(one_way),
        sent_per_s=total / seconds,
        delivered_per_s=len(one_way) / seconds,
        loss_pct=100.0 * ping["lost"] / max(1, total),
        samples=len(one_way),
        **percentiles_ms(one_way),
    )


def run_mesh(connect: str, root: Path, plan: Plan, load: float) -> CaseResult:
    """The mesh at ``load`` times the target's offered load (0 = every node flat out)."""
    nodes, nprocs, window = plan.nodes, plan.mesh_procs, plan.window
    rate = load * plan.target_rate_per_node
    label = "flat" if rate <= 0 else f"{load:g}"
    ids = [f"n{i:02d}" for i in range(nodes)]
    groups = [ids[i::nprocs] for i in range(nprocs)]
    with Children(connect, case_dir(root, f"mesh-{label}")) as kids:
        for i, group in enumerate(groups):
            kids.spawn("mesh", f"mesh{i}", ids=group, window=window, rate=rate)
        start = kids.start()
        parts = [kids.result(f"mesh{i}", window + GRACE_S + 20.0) for i in range(nprocs)]
        lat = np.concatenate(
            [np.fromfile(kids.work / f"mesh{i}.lat", dtype=np.float64) for i in range(nprocs)]
        )
    sent = sum(p["sent"] for p in parts)
    received = sum(p["received"] for p in parts)
    span = max(window, max(p["last"] for p in parts) - start)
    expected = sent * (nodes - 1)
    what = "flat out" if rate <= 0 else f"{load:.0%} load"
    return CaseResult(
        case=f"{nodes} nodes {what}",
        mode="comm",
        seconds=span,
        sent=sent,
        received=received,
        sent_per_s=sent / window,
        delivered_per_s=received / span,
        loss_pct=100.0 * (1 - received / max(1, expected)),
        samples=len(lat),
        **percentiles_ms(lat),
    )


def start_router(root: Path) -> tuple[subprocess.Popen, str]:
    port = free_tcp_port()
    endpoint = f"tcp/127.0.0.1:{port}"
    argv = procs.python_module("evospikenet", "router", "--listen", endpoint)
    proc = procs.spawn(argv, log_path=root / "router.log", preexec_fn=PREEXEC)
    if not procs.wait_for_port("127.0.0.1", port, timeout=15.0):
        procs.stop(proc)
        raise RuntimeError(f"router did not listen on {endpoint}")
    return proc, endpoint


def run_all(plan: Plan, root: Path) -> list[CaseResult]:
    router, connect = start_router(root)
    try:
        results = []
        for mode in ("comm", "raw"):
            results.append(run_throughput(connect, root, mode, plan.window))
        for mode in ("comm", "raw"):
            results.append(run_pingpong(connect, root, mode, plan.samples))
        for load in MESH_LOADS:
            results.append(run_mesh(connect, root, plan, load))
        return results
    finally:
        procs.stop(router)


def fmt(value: float | None, spec: str) -> str:
    """``value`` formatted with ``spec``, or a dash as wide as the spec's width."""
    if value is not None:
        return format(value, spec)
    width = spec.split(".")[0]
    return format("-", f">{width}") if width else "-"


def format_table(results: Sequence[CaseResult]) -> str:
    header = (
        f"{'case':<26}{'mode':<6}{'sent/s':>10}{'deliv/s':>10}{'loss%':>7}"
        f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    )
    rows = [
        f"{r.case:<26}{r.mode:<6}{r.sent_per_s:>10.0f}{r.delivered_per_s:>10.0f}"
        f"{r.loss_pct:>7.1f}{fmt(r.p50_ms, '9.3f')}{fmt(r.p95_ms, '9.3f')}"
        f"{fmt(r.p99_ms, '9.3f')}"
        for r in results
    ]
    return "\n".join([header, "-" * len(header), *rows])


def target_summary(results: Sequence[CaseResult], nodes: int) -> dict[str, Any]:
    at_target = next(r for r in results if r.case == f"{nodes} nodes 100% load")
    flat = next(r for r in results if r.case == f"{nodes} nodes flat out")
    return {
        "target_msgs_per_s": TARGET_MSGS_PER_S,
        "target_p95_ms": TARGET_P95_MS,
        "offered_case": at_target.case,
        "measured_msgs_per_s_at_target_load": at_target.delivered_per_s,
        "measured_p95_ms_at_target_load": at_target.p95_ms,
        "measured_msgs_per_s_flat_out": flat.delivered_per_s,
        "measured_p95_ms_flat_out": flat.p95_ms,
    }


def format_target(summary: dict[str, Any]) -> str:
    return (
        f"target: {summary['target_msgs_per_s']} msg/s cluster-wide, "
        f"P95 < {summary['target_p95_ms']:.0f} ms\n"
        f"measured at target load ({summary['offered_case']}): "
        f"{summary['measured_msgs_per_s_at_target_load']:.0f} msg/s, "
        f"P95 {fmt(summary['measured_p95_ms_at_target_load'], '.2f')} ms\n"
        f"measured flat out: {summary['measured_msgs_per_s_flat_out']:.0f} msg/s, "
        f"P95 {fmt(summary['measured_p95_ms_flat_out'], '.2f')} ms"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument("--window", type=float, default=None, help="seconds per window (3)")
    parser.add_argument("--samples", type=int, default=None, help="ping-pong samples (1000)")
    parser.add_argument("--nodes", type=int, default=16, help="nodes in the mesh case")
    parser.add_argument("--mesh-procs", type=int, default=4, help="processes hosting the nodes")
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", default="{}", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    window = args.window if args.window is not None else (1.0 if args.quick else 3.0)
    samples = args.samples if args.samples is not None else (200 if args.quick else 1000)
    return Plan(window, samples, args.nodes, min(args.mesh_procs, args.nodes))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role:
        return run_role(args.role, args.spec)
    plan = make_plan(args)
    if plan.window <= 0 or plan.samples < 1 or plan.nodes < 2 or plan.mesh_procs < 1:
        print("error: need --window > 0, --samples >= 1, --nodes >= 2, --mesh-procs >= 1",
              file=sys.stderr)
        return 2
    with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-fabric-") as tmp:
        results = run_all(plan, Path(tmp))
    summary = target_summary(results, plan.nodes)
    print(format_table(results))
    print(format_target(summary))
    write_report(
        args.json, "fabric", zenoh=metadata.version("eclipse-zenoh"),
        plan=asdict(plan) | {"target_rate_per_node": plan.target_rate_per_node},
        target=summary, results=[asdict(r) for r in results],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
