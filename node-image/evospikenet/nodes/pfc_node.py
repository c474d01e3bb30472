"""The PFC node: a Raft member; as leader it runs the decision loop of DESIGN §3."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from ..distributed_training import DecisionRejected, NoQuorum, NotLeader, RaftConsensus
from ..logutil import RateLimiter, log_event
from ..model_sync import NodeSynchronizer
from ..pfc import PFCDecisionEngine
from ..protocol import Decision, FeatureRequest, Features, Keys, Status
from ..zenoh_comm import PublishError, RequestError
from .config import NodeConfig
from .runtime import NodeRuntime

log = logging.getLogger("evospikenet.pfc_node")


def rotation(nodes: Sequence[str], cursor: int) -> list[str]:
    """Round robin: every node once, starting at ``cursor`` (mod the count)."""
    if not nodes:
        return []
    start = cursor % len(nodes)
    return [*nodes[start:], *nodes[:start]]


def address_resolver(config: NodeConfig) -> Callable[[str], str]:
    """Node id → "host:port": the explicit map, else the template (``{node}``, ``{ordinal}``)."""
    if config.raft_addresses:
        return config.raft_addresses.__getitem__
    template = config.raft_address_template or ""

    namespace = os.environ.get("POD_NAMESPACE", "default")

    def resolve(node_id: str) -> str:
        ordinal = node_id.rsplit("-", 1)[-1]
        return template.format(
            node=node_id, ordinal=ordinal, cluster=config.cluster, namespace=namespace
        )

    return resolve


class PFCNode:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.engine = PFCDecisionEngine(
            size=config.pfc_size, num_modules=config.num_modules, n_heads=config.n_heads,
            time_steps=config.time_steps, input_size=config.vision_size, seed=config.seed,
        )
        self.raft = RaftConsensus(
            config.node_id, list(config.peers),
            heartbeat_interval=config.raft_heartbeat_interval,
            election_timeout=config.election_timeout,
            address_of=address_resolver(config),
            data_dir=config.data_dir,
        )
        self.runtime = NodeRuntime(config, self._fields)
        self.engine.communicator = self.runtime.comm
        self.runtime.ready = lambda: self.raft.running
        self.cursor = 0
        self.committed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warn = RateLimiter(5.0)
        reg = self.runtime.registry
        self._decisions = Counter("brain_decisions", "Decisions committed here as leader",
                                  registry=reg)
        self._latency = Histogram(
            "brain_decision_seconds", "Feature request to committed decision",
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), registry=reg,
        )
        self._term = Gauge("brain_raft_term", "Raft term", registry=reg)
        self._leader = Gauge("brain_raft_is_leader", "1 on the Raft leader", registry=reg)
        self._commit = Gauge("brain_raft_commit_index", "Raft commit index", registry=reg)

    # ------------------------------------------------------------ views

    def raft_view(self) -> dict[str, Any]:
        if not self.raft.running:
            return {"state": "candidate", "term": 0, "leader": None, "commit_index": 0}
        status = self.raft.status()
        self._term.set(status["term"])
        self._leader.set(1 if status["state"] == "leader" else 0)
        self._commit.set(status["commit_index"])
        return {
            "state": status["state"], "term": status["term"], "leader": status["leader"],
            "commit_index": status["commit_index"], "last_task_id": status["last_task_id"],
        }

    def _fields(self) -> dict[str, Any]:
        return {"raft": self.raft_view(), "decisions": self.raft.last_task_id + 1}

    def on_status(self, request: Status) -> Status:
        """The Raft view; with ``{"decisions": true}`` also the committed tail of the log."""
        data = self.raft.status() if self.raft.running else {"state": "stopped"}
        if request.data.get("decisions") and self.raft.running:
            data["decisions"] = self.raft.decisions
        return Status(node_id=self.config.node_id, data=data)

    # ------------------------------------------------------------ the decision loop

    def vision_nodes(self) -> list[str]:
        return sorted(n.node_id for n in self.runtime.discovery.get_active_nodes()
                      if n.role == "vision")

    def tick(self) -> str:
        """One decision attempt; returns what happened (for logs and tests)."""
        if not self.raft.is_leader:
            return "not-leader"
        task_id = self.raft.last_task_id + 1
        candidates = rotation(self.vision_nodes(), self.cursor)
        if not candidates:
            return "no-vision"
        for tried, node in enumerate(candidates):
            requested = time.time()
            try:
                reply = self.runtime.comm.request(
                    Keys.vision_features(node),
                    FeatureRequest(task_id=task_id, seed=self.config.seed,
                                   requester=self.config.node_id, sent_at=requested),
                    timeout=self.config.request_timeout,
                )
            except (TimeoutError, RequestError, RuntimeError) as exc:
                self._warn_once("vision_request_failed", node=node, task=task_id, error=exc)
                continue
            if not isinstance(reply, Features) or reply.task_id != task_id:
                self._warn_once("vision_reply_mismatch", node=node, task=task_id)
                continue
            self.cursor += tried + 1
            return self._decide_and_commit(task_id, node, reply, requested)
        return "vision-unavailable"

    def _decide_and_commit(self, task_id: int, node: str, reply: Features, requested: float
                           ) -> str:
        featured = time.time()
        choice = self.engine.decide(reply.features)
        record = {
            "task_id": task_id, "module": choice["module"], "probs": choice["probs"],
            "entropy": choice["entropy"], "vision_node": node, "leader": self.config.node_id,
            "term": self.raft.term,
            "timestamps": {"requested": requested, "features": featured},
        }
        try:
            self.raft.propose(record, timeout=max(1.0, 4 * self.config.election_timeout))
        except (NotLeader, NoQuorum) as exc:
            self._warn_once("propose_refused", task=task_id, error=type(exc).__name__)
            return "no-quorum" if isinstance(exc, NoQuorum) else "not-leader"
        except DecisionRejected:
            return "rejected"  # another leader committed this task id first
        except TimeoutError:
            return "timeout"
        committed = time.time()
        self.committed += 1
        self._decisions.inc()
        self._latency.observe(committed - requested)
        record["timestamps"]["committed"] = committed
        try:
            self.runtime.comm.publish(Keys.DECISIONS, Decision(**record))
        except PublishError as exc:
            self._warn_once("decision_publish_failed", task=task_id, error=exc)
        return "committed"

    def _warn_once(self, event: str, **fields: Any) -> None:
        if self._warn.allow(event) is not None:
            log_event(log, logging.WARNING, event, node=self.config.node_id, **fields)

    def _loop(self) -> None:
        period = 1.0 / self.config.decision_rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive any single bad tick
                log.exception("event=decision_tick_failed node=%s", self.config.node_id)
            next_at = max(next_at + period, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    # ------------------------------------------------------------ lifecycle

    def start(self) -> PFCNode:
        self.raft.start()  # from the main thread: pysyncobj's ticker lives as long as it
        comm = self.runtime.comm
        comm.serve(Keys.pfc_status(self.config.node_id), self.on_status, expected=Status)
        self.runtime.start_model_sync(NodeSynchronizer("pfc", comm, self.engine))
        self.runtime.start()
        self._thread = threading.Thread(target=self._loop, name="decisions", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.runtime.close()
        self.raft.stop()
