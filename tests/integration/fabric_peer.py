"""A second process for fabric tests: echoes messages and answers requests.

Usage: python fabric_peer.py ENDPOINT CLUSTER NODE_ID
- every message on ``test/in`` is published again, unchanged, on ``test/out``;
- requests on ``test/svc`` are answered with the same Features, ``task_id + 1``;
- prints ``ready`` once declared, then runs until SIGTERM; on stdin-less exit prints stats.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading

from evospikenet.protocol import Features
from evospikenet.zenoh_comm import ZenohCommunicator


def main() -> int:
    endpoint, cluster, node_id = sys.argv[1:4]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ZenohCommunicator(node_id, cluster=cluster, connect=endpoint) as comm:
        comm.subscribe("test/in", lambda msg: comm.publish("test/out", msg))
        comm.serve(
            "test/svc",
            lambda req: dataclasses.replace(req, task_id=req.task_id + 1, node_id=node_id),
            expected=Features,
        )
        print("ready", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
