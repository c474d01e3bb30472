"""``brainctl``: a BrainCluster on this machine, and tools for its spec.

    brainctl up -f FILE [--duration S] [--detach]   run it (router + PFC + Vision processes)
    brainctl status [--cluster NAME] [--json]       the status the operator would write
    brainctl kill NODE_ID [--cluster NAME]          SIGKILL one node (it gets replaced)
    brainctl down [--cluster NAME]                  stop a detached cluster
    brainctl validate -f FILE                       the defaulted spec, or the field errors
    brainctl render -f FILE                         the Kubernetes manifests, as YAML
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import yaml

from evospikenet import procs
from evospikenet.logutil import setup_logging

from . import local
from .local import LocalError
from .spec import SpecError, load_file, validate

EXIT_USAGE = 2


class UserError(Exception):
    """Printed as one line, exit code 2."""


def _spec(path: str):
    try:
        return load_file(path)
    except SpecError as exc:
        text = "; ".join(str(exc).splitlines())
        raise UserError(text if text.startswith(path) else f"{path}: {text}") from None


# ------------------------------------------------------------------ up


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _show_plain(status, figures) -> None:
    from .view import summary_line

    print(summary_line(status, figures), flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    spec = _spec(args.file)
    _refuse_if_running(spec.name)
    if args.detach:
        return _up_detached(args, spec)
    from .supervisor import Supervisor

    stop = _stop_on_signals()
    supervisor = Supervisor(spec, router_port=args.port)
    try:
        supervisor.start()
    except LocalError as exc:
        raise UserError(str(exc)) from None
    try:
        if sys.stdout.isatty() and not args.plain:
            from rich.live import Live

            from .view import live_view

            with Live(refresh_per_second=4) as live:
                supervisor.run(stop, args.duration,
                               lambda s, f: live.update(live_view(spec.name, s, f)))
        else:
            print(f"cluster {spec.name}: router {supervisor.cluster.endpoint}, "
                  f"{spec.pfc.replicas} PFC, {spec.vision.replicas} Vision; "
                  f"state in {supervisor.cluster.dir}", flush=True)
            supervisor.run(stop, args.duration, _show_plain, refresh=2.0)
    finally:
        supervisor.stop()
    if not supervisor.ever_available:
        print(f"error: cluster {spec.name} never became Available "
              f"(logs in {supervisor.cluster.dir / 'logs'})", file=sys.stderr)
        return 1
    print(f"cluster {spec.name} stopped", flush=True)
    return 0


def _refuse_if_running(cluster: str) -> None:
    try:
        local.read_state(cluster)
    except LocalError:
        return
    raise UserError(f"cluster {cluster!r} is already running: brainctl down --cluster {cluster}")


def _up_detached(args: argparse.Namespace, spec) -> int:
    argv = [sys.executable, "-m", "brain_operator.cli", "up", "-f", args.file, "--plain"]
    if args.duration:
        argv += ["--duration", str(args.duration)]
    if args.port:
        argv += ["--port", str(args.port)]
    state_dir = local.state_dir(spec.name)
    state_dir.mkdir(parents=True, exist_ok=True)
    child = procs.spawn(argv, log_path=state_dir / "supervisor.log")
    deadline = time.monotonic() + args.wait
    from .supervisor import is_available

    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise UserError(f"cluster {spec.name} failed to start: see "
                            f"{state_dir / 'supervisor.log'}")
        try:
            state = local.read_state(spec.name)
        except LocalError:
            state = None
        if state and is_available(state.get("status") or {}):
            leader = (state["status"].get("leader") or {}).get("node")
            print(f"cluster {spec.name} is Available (leader {leader}); supervisor pid "
                  f"{child.pid}; stop it with: brainctl down --cluster {spec.name}")
            return 0
        time.sleep(0.2)
    print(f"error: cluster {spec.name} not Available within {args.wait:.0f}s; it keeps "
          f"running (brainctl status / brainctl down --cluster {spec.name})", file=sys.stderr)
    return 1


# ------------------------------------------------------------------ status, kill, down


def live_status(state: dict[str, Any], listen: float | None = None) -> dict[str, Any]:
    """The status object, built now from the cluster's heartbeats (plus replacement history
    from the supervisor's state file)."""
    from .monitor import ClusterMonitor
    from .policy import Replacement

    try:
        spec = validate(state["spec"])
    except (KeyError, SpecError) as exc:
        raise UserError(
            f"the state file of {state.get('cluster')} holds no valid spec: {exc}"
        ) from None
    monitor = ClusterMonitor(spec, state["endpoint"], observer_id=f"brainctl-{os.getpid()}")
    history = [Replacement(node_id=r["node"], role=r["role"], reason=r["reason"], at=r["at"],
                           message=r.get("message", "")) for r in state.get("replacements", [])]
    monitor.replacements_total = len(history)
    monitor.last_replacement = history[-1] if history else None
    wanted = set(spec.node_ids())
    window = listen if listen is not None else 2 * spec.heartbeat.interval_seconds + 0.5
    with monitor:
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            heard = {n for n, i in monitor.discovery.nodes.items() if i.seq >= 0}
            if wanted <= heard:
                break
            time.sleep(0.05)
        return monitor.build_status(monitor.members({}))


def cmd_status(args: argparse.Namespace) -> int:
    state = _state(args.cluster)
    status = live_status(state)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        from .decision_stats import DecisionFigures
        from .view import summary_line

        figures = DecisionFigures(**state["decisions"]) if state.get("decisions") else \
            DecisionFigures(0, -1, 0.0, None, None, None)
        print(summary_line(status, figures))
        for m in status["members"]:
            print(f"  {m['name']:<10} {m['role']:<7} {m['state']:<9} raft={m.get('raftState')}"
                  f" term={m.get('term')} last={m.get('lastHeartbeat')}")
    return 0


def _state(cluster: str | None) -> dict[str, Any]:
    try:
        return local.read_state(cluster)
    except LocalError as exc:
        raise UserError(str(exc)) from None


def cmd_kill(args: argparse.Namespace) -> int:
    state = _state(args.cluster)
    node = state["nodes"].get(args.node_id)
    if node is None:
        raise UserError(f"no node {args.node_id!r} in cluster {state['cluster']} "
                        f"(nodes: {', '.join(sorted(state['nodes']))})")
    pid = node["pid"]
    if not local.pid_alive(pid):
        raise UserError(f"node {args.node_id} (pid {pid}) is not running")
    os.killpg(pid, signal.SIGKILL)  # each node runs in its own process group (pgid = pid)
    print(f"killed {args.node_id} (pid {pid}); the supervisor will replace it")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state = _state(args.cluster)
    pid = state["supervisor_pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and local.pid_alive(pid):
        time.sleep(0.1)
    if local.pid_alive(pid):
        raise UserError(f"the supervisor (pid {pid}) did not stop within 30 s")
    print(f"cluster {state['cluster']} stopped")
    return 0


# ------------------------------------------------------------------ validate, render


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _spec(args.file)
    print(yaml.safe_dump(spec.raw, sort_keys=False), end="")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .render import render_yaml

    spec = _spec(args.file)
    print(render_yaml(spec, args.namespace or spec.namespace), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brainctl", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2],
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "WARNING"))
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run a BrainCluster on this machine")
    up.add_argument("-f", "--file", required=True)
    up.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    up.add_argument("--detach", action="store_true", help="run in the background")
    up.add_argument("--wait", type=float, default=120.0,
                    help="with --detach: seconds to wait for Available")
    up.add_argument("--port", type=int, default=None, help="router port (default: a free one)")
    up.add_argument("--plain", action="store_true", help="plain lines instead of a live view")
    up.set_defaults(func=cmd_up)

    for name, func, text in (("status", cmd_status, "status of a running cluster"),
                             ("down", cmd_down, "stop a detached cluster")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--cluster", default=None)
        if name == "status":
            p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    kill = sub.add_parser("kill", help="SIGKILL one node (for demos and tests)")
    kill.add_argument("node_id")
    kill.add_argument("--cluster", default=None)
    kill.set_defaults(func=cmd_kill)

    for name, func, text in (("validate", cmd_validate, "print the defaulted spec"),
                             ("render", cmd_render, "print the Kubernetes manifests")):
        p = sub.add_parser(name, help=text)
        p.add_argument("-f", "--file", required=True)
        if name == "render":
            p.add_argument("--namespace", default=None)
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
