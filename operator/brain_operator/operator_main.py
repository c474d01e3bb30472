"""``python -m brain_operator``: run the brain operator (kopf) with the right flags.

Standalone kopf (no peering CRD): run one replica of the operator. Watches every namespace
unless ``--namespace`` is given (repeatable).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import kopf

from . import metrics
from .handlers import OperatorOptions  # importing handlers registers them with kopf
from .kube import NoCredentials, load_client

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brain_operator",
        description="Run the BrainCluster operator: reconciles BrainCluster resources into a "
        "Zenoh router, a PFC Raft group and a Vision pool, and keeps them healthy.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true",
        help="watch BrainClusters in every namespace (the default)",
    )
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], metavar="NAMESPACE",
        help="watch only this namespace (repeat for several; globs like 'team-*' work)",
    )
    parser.add_argument(
        "--liveness", default=DEFAULT_LIVENESS, metavar="URL",
        help=f"liveness endpoint the operator serves (default {DEFAULT_LIVENESS}); "
        "'none' disables it",
    )
    parser.add_argument(
        "--router-endpoint", default=OperatorOptions.router_endpoint, metavar="TEMPLATE",
        help="Zenoh endpoint of a cluster's router, with {name}, {namespace}, {port} "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--status-refresh", type=float, default=OperatorOptions.status_refresh_seconds,
        metavar="SECONDS",
        help="rewrite an unchanged status at least this often (default %(default)s)",
    )
    parser.add_argument(
        "--event-level", default=OperatorOptions.event_level,
        choices=["INFO", "WARNING", "ERROR"],
        help="lowest level posted as Kubernetes Events (default %(default)s)",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=int(os.environ.get("BRAIN_METRICS_PORT") or 0),
        metavar="PORT",
        help="serve Prometheus /metrics on this port (default $BRAIN_METRICS_PORT; 0 = off)",
    )
    parser.add_argument(
        "--log-format", default="full", choices=["full", "plain", "json"],
        help="operator log format (default %(default)s)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="more logs")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = OperatorOptions(
            router_endpoint=args.router_endpoint,
            status_refresh_seconds=args.status_refresh,
            event_level=args.event_level,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        load_client().close()  # fail fast, with one line, before kopf starts retrying
    except NoCredentials as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    kopf.configure(
        verbose=args.verbose,
        quiet=args.quiet,
        log_format=getattr(kopf.LogFormat, args.log_format.upper()),
    )
    liveness = None if args.liveness.lower() == "none" else args.liveness
    metrics.serve(args.metrics_port)
    try:
        kopf.run(
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            liveness_endpoint=liveness,
            memo=kopf.Memo(options=options),
        )
    except KeyboardInterrupt:
        return 0
    logging.getLogger("brain_operator").info("event=operator_stopped")
    return 0
