"""The Vision node: answers feature requests with spike features (DESIGN §3.2)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from prometheus_client import Counter, Histogram

from ..logutil import log_event
from ..model_sync import NodeSynchronizer
from ..protocol import FeatureRequest, Features, Keys
from ..vision import VisualModule
from ..zenoh_comm import PublishError
from .config import NodeConfig
from .runtime import NodeRuntime

log = logging.getLogger("evospikenet.vision_node")


class VisionNode:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.model = VisualModule(
            size=config.vision_size, time_steps=config.time_steps, seed=config.seed
        )
        self.runtime = NodeRuntime(config, self._fields)
        self.model.communicator = self.runtime.comm
        self.served = 0
        reg = self.runtime.registry
        self._requests = Counter(
            "brain_feature_requests", "Feature requests answered", registry=reg
        )
        self._encode = Histogram(
            "brain_encode_seconds", "Vision encode time",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1), registry=reg,
        )
        self._lock = threading.Lock()  # one encode at a time: the model keeps no per-call state

    def _fields(self) -> dict[str, Any]:
        return {"served": self.served}

    def on_request(self, request: FeatureRequest) -> Features:
        start = time.perf_counter()
        with self._lock:
            vector = self.model.encode(request.task_id, request.seed)
        elapsed = time.perf_counter() - start
        features = Features(
            task_id=request.task_id, node_id=self.config.node_id, features=vector,
            sent_at=time.time(), encode_ms=elapsed * 1000,
        )
        self.served += 1
        self._requests.inc()
        self._encode.observe(elapsed)
        return features

    def publish_spikes(self, features: Features) -> None:
        """After the reply went out: share the features with every other subscriber."""
        try:
            self.runtime.comm.publish(Keys.SPIKES_VISION, features)
        except PublishError as exc:
            log_event(log, logging.WARNING, "spikes_publish_failed", error=exc)

    def start(self) -> VisionNode:
        comm = self.runtime.comm
        comm.serve(Keys.vision_features(self.config.node_id), self.on_request,
                   expected=FeatureRequest, after=self.publish_spikes)
        self.runtime.start_model_sync(NodeSynchronizer("vision", comm, self.model))
        self.runtime.start()
        return self

    def close(self) -> None:
        self.runtime.close()
