"""A heartbeat-only brain node whose Raft view the test controls (run as a real process).

It publishes real heartbeats with the real ``HeartbeatPublisher`` over a real Zenoh session,
and reads its ``raft`` field from a JSON file (``{"pfc-0": {"state": "leader", ...}}``) at
every beat, so a test can stage an election: kill the leader's process and rewrite the file
so that another member claims leadership in a higher term.

    python member.py --id pfc-0 --role pfc --cluster demo --connect tcp/127.0.0.1:7447 \
        --interval 0.2 --raft-file raft.json --pod demo-pfc-0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from evospikenet.cli import stop_event_on_signals
from evospikenet.node_discovery import HeartbeatPublisher
from evospikenet.zenoh_comm import ZenohCommunicator


def raft_fields(path: Path | None, node_id: str) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        views = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # mid-rewrite or absent: this beat carries no Raft view
    view = views.get(node_id)
    return {"raft": view} if isinstance(view, dict) else {}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--id", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--connect", required=True)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--raft-file", type=Path)
    parser.add_argument("--pod")
    args = parser.parse_args()
    stop = stop_event_on_signals()
    comm = ZenohCommunicator(
        args.id, cluster=args.cluster, connect=args.connect, role=args.role, max_retries=10
    )
    with comm:
        beats = HeartbeatPublisher(
            comm,
            args.role,
            args.interval,
            fields=lambda: raft_fields(args.raft_file, args.id),
            pod=args.pod,
        ).start()
        stop.wait()
        beats.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
