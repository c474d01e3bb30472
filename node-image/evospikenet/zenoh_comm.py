"""ZenohCommunicator: one node's connection to the BrainCluster fabric.

It owns a Zenoh session and everything declared on it, so that it can re-open the session
and re-declare the same subscriptions, queryables and liveliness tokens when the transport
to the router is lost. Callbacks run on threads this class owns (Zenoh FIFO handlers drained
by one thread per subscription), never on Zenoh's network threads: they may block briefly and
may call back into the communicator.

Keys passed to the public methods are relative to the cluster prefix
(``evospikenet/<cluster>/``).
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import zenoh

from . import protocol
from .logutil import RateLimiter, log_event
from .protocol import Announce, CodecError, Keys, Message

log = logging.getLogger("evospikenet.zenoh_comm")

DEFAULT_CONNECT = "tcp/127.0.0.1:7447"
JITTER = 0.1  # each backoff delay is stretched by up to 10% so that retries do not align


class PublishError(RuntimeError):
    """A put that still failed after every retry."""

    def __init__(self, key: str, attempts: int, cause: BaseException | None) -> None:
        super().__init__(f"put to {key!r} failed after {attempts} attempts: {cause}")
        self.key = key
        self.attempts = attempts


class RequestError(RuntimeError):
    """The queried node answered with an error."""


@dataclass
class Counters:
    """Traffic counters of one communicator (increments are not locked: figures, not money)."""

    sent: int = 0
    received: int = 0
    retries: int = 0
    reconnects: int = 0
    decode_errors: int = 0
    callback_errors: int = 0
    send_errors: int = 0


def endpoints(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Endpoints from a list or a comma-separated string (``ZENOH_CONNECT`` when None)."""
    if value is None:
        value = os.environ.get("ZENOH_CONNECT", DEFAULT_CONNECT)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    return [v for v in value if v]


def make_config(
    mode: str = "client",
    connect: str | list[str] | None = None,
    listen: str | list[str] | None = None,
    *,
    connect_timeout: float | None = 2.0,
    lease_ms: int | None = None,
) -> zenoh.Config:
    """A Zenoh config for our fabric: explicit endpoints, multicast scouting off."""
    if mode not in ("client", "peer", "router"):
        raise ValueError(f"mode must be client, peer or router, not {mode!r}")
    conf = zenoh.Config()
    conf.insert_json5("mode", json.dumps(mode))
    conf.insert_json5("scouting/multicast/enabled", "false")
    if mode != "router" or connect:
        conf.insert_json5("connect/endpoints", json.dumps(endpoints(connect)))
    if listen:
        conf.insert_json5("listen/endpoints", json.dumps(endpoints(listen)))
    if connect_timeout is not None and mode != "router":
        conf.insert_json5("connect/timeout_ms", str(int(connect_timeout * 1000)))
    if lease_ms is not None:
        conf.insert_json5("transport/link/tx/lease", str(int(lease_ms)))
    return conf


@dataclass
class _Entity:
    """Something declared on the session, remembered so it can be re-declared."""

    kind: str  # "sub" | "queryable" | "liveliness" | "token"
    key: str  # absolute key expression
    callback: Callable[..., Any] | None = None
    expected: type[Message] | None = None
    raw: bool = False
    after: Callable[[Any], None] | None = None
    handle: Any = None
    thread: threading.Thread | None = None


class ZenohCommunicator:
    """Publish, subscribe, request and serve on one cluster's keys, surviving router restarts."""

    def __init__(
        self,
        node_id: str,
        *,
        cluster: str = "default",
        connect: str | list[str] | None = None,
        mode: str = "client",
        max_retries: int = 3,
        retry_delay: float = 0.1,
        backoff_factor: float = 2.0,
        max_delay: float = 5.0,
        role: str = "node",
        namespace: str = protocol.NAMESPACE,
        connect_timeout: float = 2.0,
        listen: str | list[str] | None = None,
        announce: bool = True,
    ) -> None:
        self.node_id = protocol.check_name("node id", node_id)
        self.role = role
        self.keys = Keys(cluster, namespace)
        self.mode = mode
        self.connect = endpoints(connect)
        self.listen = listen
        self.connect_timeout = connect_timeout
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.backoff_factor = backoff_factor
        self.max_delay = max_delay
        self.counters = Counters()
        self.retry_delays: deque[float] = deque(maxlen=256)  # for tests and diagnostics
        self.started_at = time.time()
        self._sleep = time.sleep
        self._warn_limit = RateLimiter(5.0)
        self._lock = threading.RLock()
        self._entities: list[_Entity] = []
        self._publishers: dict[str, Any] = {}
        self._generation = 0
        self._closed = False
        # Set by a detected transport failure (see _on_transport) or by hand: the next
        # operation re-opens the session first.
        self._connection_lost = False
        self._transport_lost = False
        self._session: Any = None
        self._transport_listener: Any = None
        self._open_with_retry()
        if announce:
            self.announce()

    # ---------------------------------------------------------------- session lifecycle

    def _config(self) -> zenoh.Config:
        return make_config(
            self.mode, self.connect, self.listen, connect_timeout=self.connect_timeout
        )

    def _open_with_retry(self) -> None:
        attempt = 0
        while True:
            try:
                self._session = zenoh.open(self._config())
                break
            except zenoh.ZError as exc:
                if attempt >= self.max_retries:
                    raise ConnectionError(
                        f"cannot reach the Zenoh router at {','.join(self.connect)} after "
                        f"{attempt + 1} attempts: {exc}"
                    ) from exc
                self._backoff(attempt)
                attempt += 1
        self._watch_transport()

    def _watch_transport(self) -> None:
        if self.mode != "client":
            return
        self._generation += 1
        gen = self._generation
        self._transport_listener = self._session.info.declare_transport_events_listener(
            zenoh.handlers.Callback(lambda event: self._on_transport(gen, event))
        )

    def _on_transport(self, generation: int, event: Any) -> None:
        # Runs on a Zenoh thread: only flip flags and counters here, never call Zenoh.
        if generation != self._generation or self._closed:
            return
        if event.kind == zenoh.SampleKind.DELETE:
            self._transport_lost = True
            self._connection_lost = True
        elif self._transport_lost:
            # Zenoh re-established the link by itself and re-declared our entities.
            self._transport_lost = False
            self._connection_lost = False
            self.counters.reconnects += 1
            log_event(log, logging.INFO, "zenoh_reconnected", node=self.node_id, how="native")

    def _ensure_session(self) -> None:
        if self._closed:
            raise RuntimeError(f"communicator {self.node_id} is closed")
        if self._connection_lost:
            with self._lock:
                if self._connection_lost:
                    self._reopen()

    def _reopen(self) -> None:
        """Open a fresh session, re-declare everything on it, then drop the old one."""
        old = self._session
        try:
            new = zenoh.open(self._config())
        except zenoh.ZError as exc:
            raise ConnectionError(f"re-opening the Zenoh session failed: {exc}") from exc
        self._session = new
        self._publishers.clear()
        self._connection_lost = False
        self._transport_lost = False
        self._watch_transport()
        for entity in self._entities:
            self._declare(entity)  # the old drain thread ends when the old session closes
        try:
            old.close()
        except zenoh.ZError:
            pass
        self.counters.reconnects += 1
        log_event(log, logging.INFO, "zenoh_reconnected", node=self.node_id, how="reopen")

    @property
    def connected(self) -> bool:
        """True while the session is open and (in client mode) linked to a router."""
        session = self._session
        if self._closed or session is None or session.is_closed() or self._connection_lost:
            return False
        if self.mode == "client":
            return bool(session.info.routers_zid())
        return True

    @property
    def session(self) -> Any:
        """The current Zenoh session (changes when the communicator re-opens it)."""
        return self._session

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            threads = [e.thread for e in self._entities if e.thread is not None]
            for entity in self._entities:
                try:
                    entity.handle.undeclare()
                except (zenoh.ZError, AttributeError):
                    pass
            self._entities.clear()
            self._publishers.clear()
            try:
                self._session.close()
            except zenoh.ZError:
                pass
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)

    def __enter__(self) -> ZenohCommunicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        return asdict(self.counters)

    # ---------------------------------------------------------------- the retry path

    def _backoff(self, attempt: int) -> float:
        """Sleep ``retry_delay * backoff_factor**attempt`` (capped, with jitter); return it."""
        nominal = self.retry_delay * self.backoff_factor**attempt
        delay = min(self.max_delay, nominal * (1.0 + random.uniform(0.0, JITTER)))
        self.retry_delays.append(delay)
        self._sleep(delay)
        return delay

    def _put(self, key: str, op: Callable[[], None]) -> None:
        """Run one put through retries with exponential backoff; PublishError when exhausted."""
        attempt = 0
        while True:
            try:
                self._ensure_session()
                op()
                self.counters.sent += 1
                return
            except (zenoh.ZError, ConnectionError) as exc:
                session = self._session
                if session is not None and session.is_closed() and not self._closed:
                    self._connection_lost = True
                if attempt >= self.max_retries:
                    self.counters.send_errors += 1
                    raise PublishError(key, attempt + 1, exc) from exc
                self.counters.retries += 1
                self._backoff(attempt)
                attempt += 1

    def _publisher(self, key: str) -> Any:
        pub = self._publishers.get(key)
        if pub is None:
            with self._lock:
                pub = self._publishers.get(key)
                if pub is None:
                    pub = self._session.declare_publisher(key)
                    self._publishers[key] = pub
        return pub

    # ---------------------------------------------------------------- public operations

    def announce(self) -> None:
        """Tell the cluster this node exists (``discovery/announce``), with retries."""
        key = self.keys.abs(Keys.ANNOUNCE)
        payload = protocol.encode(
            Announce(
                node_id=self.node_id,
                role=self.role,
                started_at=self.started_at,
                host=socket.gethostname(),
                metadata={"pid": os.getpid()},
            )
        )
        self._put(key, lambda: self._session.put(key, payload))

    def publish(self, key: str, message: Message | bytes) -> None:
        """Publish a message (or raw bytes) on a relative key; raises PublishError."""
        payload = message if isinstance(message, (bytes, bytearray)) else protocol.encode(message)
        full = self.keys.abs(key)
        self._put(full, lambda: self._publisher(full).put(payload))

    def subscribe(
        self,
        key: str,
        callback: Callable[[Any], None],
        *,
        expected: type[Message] | None = None,
        raw: bool = False,
    ) -> None:
        """Call ``callback(message)`` for every valid message on a relative key expression.

        Malformed messages are dropped and counted in ``decode_errors``; with ``raw`` the
        callback gets the payload bytes undecoded.
        """
        self._add(_Entity("sub", self.keys.abs(key), callback, expected, raw))

    def serve(
        self,
        key: str,
        handler: Callable[[Any], Message | bytes],
        *,
        expected: type[Message] | None = None,
        after: Callable[[Any], None] | None = None,
    ) -> None:
        """Answer requests on a relative key: ``handler(request) -> reply`` (a queryable).

        ``after(reply)``, if given, runs once the reply is on its way, for work the requester
        should not wait for.
        """
        self._add(_Entity("queryable", self.keys.abs(key), handler, expected, after=after))

    def request(self, key: str, message: Message | bytes, timeout: float = 5.0) -> Any:
        """Send a query and return the first decoded reply, or raise TimeoutError."""
        self._ensure_session()
        payload = message if isinstance(message, (bytes, bytearray)) else protocol.encode(message)
        full = self.keys.abs(key)
        replies = self._session.get(full, payload=payload, timeout=timeout)
        self.counters.sent += 1
        error: str | None = None
        for reply in replies:
            sample = reply.ok
            if sample is None:
                error = reply.err.payload.to_bytes().decode("utf-8", "replace")
                continue
            self.counters.received += 1
            try:
                return protocol.decode(sample.payload.to_bytes())
            except CodecError as exc:
                self._count_decode_error(full, exc)
                error = f"malformed reply: {exc}"
        if error is not None and error != "Timeout":
            raise RequestError(f"{full}: {error}")
        raise TimeoutError(f"no reply on {full} within {timeout}s")

    def declare_token(self, key: str) -> None:
        """Hold a liveliness token on a relative key for as long as this session lives."""
        self._add(_Entity("token", self.keys.abs(key)))

    def watch_liveliness(self, key: str, callback: Callable[[str, bool], None]) -> None:
        """``callback(relative_key, alive)`` for existing and future tokens matching ``key``."""
        self._add(_Entity("liveliness", self.keys.abs(key), callback))

    # ---------------------------------------------------------------- declarations

    def _add(self, entity: _Entity) -> None:
        self._ensure_session()
        with self._lock:
            self._declare(entity)
            self._entities.append(entity)

    def _declare(self, entity: _Entity) -> None:
        session = self._session
        if entity.kind == "token":
            entity.handle = session.liveliness().declare_token(entity.key)
            return
        if entity.kind == "sub":
            entity.handle = session.declare_subscriber(entity.key)
            target = self._on_sample
        elif entity.kind == "liveliness":
            entity.handle = session.liveliness().declare_subscriber(entity.key, history=True)
            target = self._on_liveliness
        else:
            entity.handle = session.declare_queryable(entity.key)
            target = self._on_query
        entity.thread = threading.Thread(
            target=self._drain,
            args=(entity, entity.handle, target),
            name=f"zenoh-{entity.kind}-{entity.key}",
            daemon=True,
        )
        entity.thread.start()

    def _drain(self, entity: _Entity, handle: Any, target: Callable[[_Entity, Any], None]) -> None:
        try:
            for item in handle.handler:
                target(entity, item)
        except zenoh.ZError:
            pass  # the channel closes with the session: this drain thread is done

    def _count_decode_error(self, key: str, exc: Exception) -> None:
        self.counters.decode_errors += 1
        suppressed = self._warn_limit.allow("decode:" + key)
        if suppressed is not None:
            log_event(
                log, logging.WARNING, "message_dropped", node=self.node_id, key=key,
                error=exc, suppressed=suppressed, total=self.counters.decode_errors,
            )

    def _callback_failed(self, entity: _Entity, exc: Exception) -> None:
        self.counters.callback_errors += 1
        suppressed = self._warn_limit.allow("callback:" + entity.key)
        if suppressed is not None:
            log.warning(
                "event=callback_failed node=%s key=%s suppressed=%d",
                self.node_id, entity.key, suppressed, exc_info=exc,
            )

    def _on_sample(self, entity: _Entity, sample: Any) -> None:
        self.counters.received += 1
        payload = sample.payload.to_bytes()
        if entity.raw:
            message = payload
        else:
            try:
                message = protocol.decode(payload, entity.expected)
            except CodecError as exc:
                self._count_decode_error(str(sample.key_expr), exc)
                return
        try:
            entity.callback(message)  # type: ignore[misc]
        except Exception as exc:  # one bad callback must not stop the subscription
            self._callback_failed(entity, exc)

    def _on_liveliness(self, entity: _Entity, sample: Any) -> None:
        rel = self.keys.rel(str(sample.key_expr))
        try:
            entity.callback(rel, sample.kind == zenoh.SampleKind.PUT)  # type: ignore[misc]
        except Exception as exc:
            self._callback_failed(entity, exc)

    def _on_query(self, entity: _Entity, query: Any) -> None:
        with query:  # dropping the query tells the requester that no more replies follow
            self.counters.received += 1
            payload = query.payload.to_bytes() if query.payload is not None else b""
            try:
                request = protocol.decode(payload, entity.expected)
            except CodecError as exc:
                self._count_decode_error(entity.key, exc)
                query.reply_err(f"bad request: {exc}".encode())
                return
            try:
                reply = entity.callback(request)  # type: ignore[misc]
                data = reply if isinstance(reply, (bytes, bytearray)) else protocol.encode(reply)
            except Exception as exc:
                self._callback_failed(entity, exc)
                query.reply_err(f"handler failed: {type(exc).__name__}".encode())
                return
            query.reply(query.key_expr, data)
            self.counters.sent += 1
        if entity.after is not None:
            try:
                entity.after(reply)
            except Exception as exc:
                self._callback_failed(entity, exc)


_REEXPORTS = ("ZenohNodeDiscovery", "NodeInfo", "HeartbeatPublisher")


def __getattr__(name: str) -> Any:
    # Discovery is defined in node_discovery (which builds on this module); re-exported here
    # lazily so that importing either module first works.
    if name in _REEXPORTS:
        from . import node_discovery

        return getattr(node_discovery, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Counters",
    "PublishError",
    "RequestError",
    "ZenohCommunicator",
    "make_config",
    "endpoints",
    *_REEXPORTS,
]
