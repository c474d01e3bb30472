"""``python -m evospikenet``: the processes a BrainCluster is made of.

- ``router``: a Zenoh router (router mode, multicast scouting off) until SIGINT/SIGTERM;
- ``node``: a brain node, ``--role vision`` or ``--role pfc`` (see ``nodes/``);
- ``heartbeat``: a heartbeat-only node (liveliness token + heartbeats), for demos and tests;
- ``demo``: a router and a few heartbeat nodes, printing the discovered node table.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from .logutil import log_event, setup_logging

log = logging.getLogger("evospikenet.cli")


def _env(name: str, default: str | None = None) -> str | None:
    """Flags may also come from environment variables (for pods): ``BRAIN_<NAME>``."""
    return os.environ.get("BRAIN_" + name.upper().replace("-", "_"), default)


def stop_event_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, so every command shuts down the same clean way."""
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def cmd_router(args: argparse.Namespace) -> int:
    from .router import run_router

    return run_router(args.listen, stop_event_on_signals(), lease_ms=args.lease_ms)


def cmd_heartbeat(args: argparse.Namespace) -> int:
    from .node_discovery import HeartbeatPublisher
    from .zenoh_comm import ZenohCommunicator

    stop = stop_event_on_signals()
    try:
        comm = ZenohCommunicator(
            args.id, cluster=args.cluster, connect=args.connect, role=args.role, max_retries=5
        )
    except (ConnectionError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with comm:
        beats = HeartbeatPublisher(comm, args.role, args.interval).start()
        log_event(log, logging.INFO, "node_started", node=args.id, role=args.role)
        stop.wait()
        beats.stop()
    log_event(log, logging.INFO, "node_stopped", node=args.id)
    return 0


def cmd_node(args: argparse.Namespace) -> int:
    from .nodes.config import config_from_args

    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = stop_event_on_signals()
    import torch

    torch.set_num_threads(max(1, config.torch_threads))
    if config.role == "vision":
        from .nodes.vision_node import VisionNode as node_class
    else:
        from .nodes.pfc_node import PFCNode as node_class
    try:
        node = node_class(config).start()
    except (ConnectionError, OSError, ValueError) as exc:
        print(f"error: {config.node_id}: {exc}", file=sys.stderr)
        return 2
    try:
        stop.wait()
    finally:
        node.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(
        nodes=args.nodes, duration=args.duration, cluster=args.cluster, stop=stop_event_on_signals()
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evospikenet", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--log-level", default=_env("log-level", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    router = sub.add_parser("router", help="run a Zenoh router")
    router.add_argument("--listen", default=_env("listen", "tcp/127.0.0.1:7447"))
    router.add_argument("--lease-ms", type=int, default=None, help="link lease (hung peers)")
    router.set_defaults(func=cmd_router)

    hb = sub.add_parser("heartbeat", help="run a heartbeat-only node")
    hb.add_argument("--id", default=_env("node-id"), required=_env("node-id") is None)
    hb.add_argument("--role", default=_env("role", "vision"))
    hb.add_argument("--cluster", default=_env("cluster", "default"))
    hb.add_argument("--connect", default=_env("connect"))
    hb.add_argument("--interval", type=float, default=float(_env("heartbeat-interval", "1.0")))
    hb.set_defaults(func=cmd_heartbeat)

    node = sub.add_parser("node", help="run a Vision or PFC brain node")
    from .nodes.config import add_node_arguments

    add_node_arguments(node)
    node.set_defaults(func=cmd_node)

    demo = sub.add_parser("demo", help="a router plus heartbeat nodes, printing the node table")
    demo.add_argument("--nodes", type=int, default=3)
    demo.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")
    demo.add_argument("--cluster", default="demo")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
