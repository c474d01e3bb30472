"""NodeSynchronizer: replicas of one role run the same model state.

Each node puts a digest of its state dict in its heartbeat and serves the state itself on
``sync/<role>/<node_id>/state``. A starting node fetches the state from a healthy peer (and
verifies the digest before loading it); a node whose digest differs from the majority of its
role reports itself out of sync.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .logutil import log_event
from .protocol import ModelState, Status, to_torch
from .zenoh_comm import RequestError, ZenohCommunicator

log = logging.getLogger("evospikenet.model_sync")


def state_digest(tensors: Mapping[str, Any]) -> str:
    """A short hex digest over names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        arr = _as_numpy(tensors[name])
        digest.update(f"{name}|{arr.dtype.name}|{arr.shape}|".encode())
        digest.update(np.ascontiguousarray(arr).tobytes())
    return digest.hexdigest()[:16]


def majority_digest(digests: Iterable[str | None]) -> str | None:
    """The digest most replicas report; on a tie the smallest (so every node agrees)."""
    counts = Counter(d for d in digests if d)
    if not counts:
        return None
    best = max(counts.values())
    return min(d for d, n in counts.items() if n == best)


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    return value.detach().cpu().numpy()


def state_key(role: str, node_id: str) -> str:
    return f"sync/{role}/{node_id}/state"


class NodeSynchronizer:
    """Keeps one node's model in step with its role's replicas (see module docstring)."""

    def __init__(self, role: str, communicator: ZenohCommunicator, model: Any) -> None:
        self.role = role
        self.comm = communicator
        self.model = model
        self.in_sync = True
        self.synced_from: str | None = None
        self.digest = self.refresh()

    def refresh(self) -> str:
        """Recompute the digest (after the model changed)."""
        self.digest = state_digest(self.model.state_dict())
        return self.digest

    def serve(self) -> None:
        self.comm.serve(state_key(self.role, self.comm.node_id), self._state, expected=Status)

    def _state(self, request: Status) -> ModelState:
        tensors = {k: _as_numpy(v) for k, v in self.model.state_dict().items()}
        return ModelState(
            node_id=self.comm.node_id, role=self.role, digest=self.digest, tensors=tensors
        )

    def bootstrap(self, peers: Iterable[str], timeout: float = 5.0) -> str | None:
        """Load the state of the first healthy peer that serves a verifiable one."""
        for peer in peers:
            if peer == self.comm.node_id:
                continue
            try:
                reply = self.comm.request(
                    state_key(self.role, peer),
                    Status(node_id=self.comm.node_id, data={}),
                    timeout=timeout,
                )
            except (TimeoutError, RequestError) as exc:
                log_event(log, logging.INFO, "sync_peer_unavailable", peer=peer, error=exc)
                continue
            if not isinstance(reply, ModelState) or state_digest(reply.tensors) != reply.digest:
                log_event(log, logging.WARNING, "sync_digest_mismatch", peer=peer)
                continue
            self.model.load_state_dict({k: to_torch(v) for k, v in reply.tensors.items()})
            self.refresh()
            self.synced_from = peer
            log_event(log, logging.INFO, "model_synced", peer=peer, digest=self.digest)
            return peer
        return None

    def check(self, peer_digests: Iterable[str | None]) -> bool:
        """Compare with the role's majority (this node included); sets ``in_sync``."""
        majority = majority_digest([self.digest, *peer_digests])
        self.in_sync = majority is None or majority == self.digest
        return self.in_sync

    def heartbeat_fields(self) -> dict[str, Any]:
        return {"model_digest": self.digest, "in_sync": self.in_sync}
