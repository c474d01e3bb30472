"""Raft consensus for the PFC group, on pysyncobj (we do not implement Raft ourselves).

:class:`RaftConsensus` replicates PFC decisions through a pysyncobj Raft group and applies
them to a :class:`~evospikenet.decision_log.DecisionLog`, whose task-id rule keeps the
committed sequence gapless and duplicate-free across leader changes.

No pickle between peers
-----------------------
Stock pysyncobj 0.3.17 pickles every TCP message (``tcp_connection.py``), every
``@replicated`` call it writes to the log (``syncobj.py`` ``replicated``), membership and
code-version commands, entries larger than one append batch (``transmission``) and, unless a
custom serializer is configured, the snapshot (``serializer.py``). Unpickling what a peer
sent runs the peer's code, which our protocol forbids. pysyncobj has no codec option, so this
module plugs in through its extension points plus overrides of three private methods
(``TcpConnection.__processParseMessage``, ``TcpServer.__onNewConnection``,
``SyncObj.__doApplyCommand``) of the pinned 0.3.17 (the version is checked at import):

* ``transportClass`` → :class:`_MsgpackTransport`, whose connections frame msgpack instead
  of pickle and drop the connection on any ``transmission`` message (the one message type
  pysyncobj would still feed to ``pickle.loads``). Proposals are capped below the append
  batch size so a correct leader never sends one.
* Log commands are ``b"\\x00" + msgpack`` written with ``SyncObj._applyCommand``; the apply
  hook ``SyncObj.__doApplyCommand`` is overridden to decode msgpack and to ignore
  membership/version commands instead of unpickling them. ``dynamicMembershipChange`` stays
  off because pysyncobj would unpickle every received entry to look for membership changes.
* Snapshots use the ``serializer``/``deserializer`` hooks: msgpack of
  :meth:`DecisionLog.to_state` plus the two boundary log entries. A snapshot file always
  exists (a temp dir without ``data_dir``) because pysyncobj pickles in-memory snapshots.

What remains pickled: the journal's small ``<journal>.meta`` file (commit index, term,
vote) written and read by this process only (``journal.py`` ``MetaStorer``); pysyncobj has no
hook for it. An attacker who can write the data dir can run code; one on the network cannot.

Timing
------
``heartbeat_interval`` → ``appendEntriesPeriod``; ``election_timeout`` → ``raftMinTimeout``,
with ``raftMaxTimeout = 2 × election_timeout`` (the randomised election window) and
``leaderFallbackTimeout = election_timeout`` (a leader that hears from no majority for that
long steps down, so a cut-off leader stops claiming leadership). The connection timeout is
``2 × election_timeout`` (pysyncobj requires ≥ ``raftMaxTimeout``), reconnects are tried
every ``election_timeout / 2``, and members ping every partner every ``election_timeout / 2``
so idle follower↔follower links survive that timeout (see ``_ping_partners``). Appends are
sent immediately on each proposal (pysyncobj's ``appendEntriesUseBatch=False``), so commit
latency is one round trip plus a tick rather than one append period; ``batch_appends=True``
restores pysyncobj's batching.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import msgpack
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.config import FAIL_REASON
from pysyncobj.dns_resolver import globalDnsResolver
from pysyncobj.node import Node
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import _COMMAND_TYPE, _RAFT_STATE
from pysyncobj.tcp_connection import TcpConnection
from pysyncobj.tcp_server import TcpServer
from pysyncobj.transport import TCPTransport
from pysyncobj.version import VERSION as _INSTALLED_VERSION

from evospikenet.decision_log import DecisionLog
from evospikenet.model_sync import NodeSynchronizer

__all__ = [
    "DecisionLog",
    "DecisionRejected",
    "NoQuorum",
    "NodeSynchronizer",
    "NotLeader",
    "RaftConsensus",
    "RaftError",
    "kubernetes_address_of",
]

logger = logging.getLogger(__name__)

# The overrides below reach into private methods of this exact release.
_PYSYNCOBJ_VERSION = "0.3.17"
if _INSTALLED_VERSION != _PYSYNCOBJ_VERSION:  # pragma: no cover
    raise ImportError(
        f"evospikenet.distributed_training needs pysyncobj=={_PYSYNCOBJ_VERSION} "
        f"(found {_INSTALLED_VERSION}): it replaces pysyncobj's pickle codec"
    )

RaftState = Literal["leader", "follower", "candidate", "no-quorum"]

DEFAULT_PORT = 7100
_APPEND_BATCH_BYTES = 2**16
# A proposal must stay below one append batch: bigger entries travel as a pickled
# "transmission", which our transport refuses.
MAX_DECISION_BYTES = _APPEND_BATCH_BYTES - 1024
_MAX_FRAME_BYTES = 16 * 2**20
_SNAPSHOT_VERSION = 1
_OP_DECISION = "decision"


# --------------------------------------------------------------------------- errors


class RaftError(Exception):
    """Base of the errors :meth:`RaftConsensus.propose` raises besides ``TimeoutError``."""


class NotLeader(RaftError):
    """This member is not the leader; ``leader`` is the known leader's node id, if any."""

    def __init__(self, leader: str | None, detail: str = "") -> None:
        self.leader = leader
        msg = f"not the Raft leader (leader: {leader or 'unknown'})"
        super().__init__(f"{msg}: {detail}" if detail else msg)


class NoQuorum(RaftError):
    """Fewer than a majority of the group is reachable, so nothing can be committed."""


class DecisionRejected(RaftError):
    """The decision log refused the proposal: its task id is not the next one."""

    def __init__(self, task_id: object, expected: int) -> None:
        self.task_id = task_id
        self.expected = expected
        super().__init__(f"decision task_id {task_id!r} rejected: next task id is {expected}")


# ------------------------------------------------------------------ address mapping

_ORDINAL = re.compile(r"(?:^|-)pfc-(\d+)$")


def kubernetes_address_of(
    cluster: str, namespace: str, port: int = DEFAULT_PORT
) -> Callable[[str], str]:
    """Map ``pfc-<i>`` / ``<cluster>-pfc-<i>`` to the pod's stable DNS name in the headless
    Service of the PFC StatefulSet: ``<cluster>-pfc-<i>.<cluster>-pfc.<ns>.svc:<port>``."""

    def address_of(node_id: str) -> str:
        match = _ORDINAL.search(node_id)
        if match is None:
            raise ValueError(
                f"cannot derive a PFC ordinal from node id {node_id!r} "
                "(expected 'pfc-<i>' or '<cluster>-pfc-<i>')"
            )
        i = int(match.group(1))
        return f"{cluster}-pfc-{i}.{cluster}-pfc.{namespace}.svc:{port}"

    return address_of


def _default_address_of(node_id: str) -> Callable[[str], str]:
    """Kubernetes mapping derived from our own pod name ``<cluster>-pfc-<i>``; the
    namespace comes from ``POD_NAMESPACE`` (downward API), else ``default``."""
    match = _ORDINAL.search(node_id)
    if match is None or match.start() == 0:
        raise ValueError(
            f"cannot derive the cluster name from node id {node_id!r}; "
            "pass address_of= (e.g. kubernetes_address_of(cluster, namespace))"
        )
    cluster = node_id[: match.start()]
    return kubernetes_address_of(cluster, os.environ.get("POD_NAMESPACE", "default"))


# ------------------------------------------------------------- msgpack wire codec


def _wire_default(obj: object) -> object:
    # getStatus() replies (utility messages) hold Node objects.
    if isinstance(obj, Node):
        return obj.id
    if isinstance(obj, set | frozenset):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__} on the Raft wire")


def _pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_wire_default)


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False)


class _MsgpackTcpConnection(TcpConnection):
    """pysyncobj's TCP connection with msgpack frames instead of pickled ones."""

    def send(self, message: Any) -> None:
        if self.sendRandKey:
            message = (self.sendRandKey, message)
        data = _pack(message)
        if self.encryptor:
            data = self.encryptor.encrypt_at_time(data, int(time.monotonic()))
        self._TcpConnection__writeBuffer += struct.pack("i", len(data)) + data
        self._TcpConnection__trySendBuffer()

    def _TcpConnection__processParseMessage(self) -> Any:  # noqa: N802 (overrides private)
        buffer = self._TcpConnection__readBuffer
        if len(buffer) < 4:
            return None
        (length,) = struct.unpack("i", buffer[:4])
        if length < 0 or length > _MAX_FRAME_BYTES:
            logger.warning("event=raft_frame_refused reason=size bytes=%d", length)
            self.disconnect()
            return None
        if len(buffer) - 4 < length:
            return None
        data = buffer[4 : 4 + length]
        try:
            if self.encryptor:
                stamp = self.encryptor.extract_timestamp(data)
                if stamp < self.recvLastTimestamp:
                    raise ValueError("replayed frame")
                self.recvLastTimestamp = stamp
                data = self.encryptor.decrypt(data)
            message = _unpack(data)
            if self.recvRandKey:
                rand_key, message = message
                if rand_key != self.recvRandKey:
                    raise ValueError("wrong session key")
        except Exception as exc:
            logger.warning("event=raft_frame_refused reason=decode error=%r", exc)
            self.disconnect()
            return None
        if isinstance(message, dict) and "transmission" in message:
            # pysyncobj would pickle.loads() the reassembled entry.
            logger.warning("event=raft_frame_refused reason=pickled-transmission")
            self.disconnect()
            return None
        self._TcpConnection__readBuffer = buffer[4 + length :]
        return message


class _MsgpackTcpServer(TcpServer):
    """pysyncobj's TCP server, accepting connections as :class:`_MsgpackTcpConnection`."""

    def _TcpServer__onNewConnection(self, descr: int, event: int) -> None:  # noqa: N802
        if event & POLL_EVENT_TYPE.READ:
            try:
                sock, _addr = self._TcpServer__socket.accept()
                send_size = self._TcpServer__sendBufferSize
                recv_size = self._TcpServer__recvBufferSize
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_size)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_size)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(False)
                conn = _MsgpackTcpConnection(
                    poller=self._TcpServer__poller,
                    socket=sock,
                    timeout=self._TcpServer__connectionTimeout,
                    sendBufferSize=send_size,
                    recvBufferSize=recv_size,
                    keepalive=self._TcpServer__keepalive,
                )
                self._TcpServer__onNewConnectionCallback(conn)
            except OSError as exc:
                if exc.errno not in (socket.errno.EAGAIN, socket.errno.EWOULDBLOCK):
                    self.unbind()
                    return
        if event & POLL_EVENT_TYPE.ERROR:
            self.unbind()


class _MsgpackTransport(TCPTransport):
    """pysyncobj's TCP transport whose server and outgoing connections speak msgpack."""

    def _createServer(self) -> None:  # noqa: N802 (pysyncobj's name)
        conf = self._syncObj.conf
        if conf.bindAddress is not None:
            host, port = conf.bindAddress.rsplit(":", 1)
        else:
            host, port = self._selfNode.address.rsplit(":", 1)
            host = "::" if ":" in host else "0.0.0.0"  # noqa: S104 (peers dial the pod IP)
        if host not in ("0.0.0.0", "::"):  # noqa: S104
            host = globalDnsResolver().resolve(host)
        self._server = _MsgpackTcpServer(
            self._syncObj._poller,
            host,
            port,
            onNewConnection=self._onNewIncomingConnection,
            sendBufferSize=conf.sendBufferSize,
            recvBufferSize=conf.recvBufferSize,
            connectionTimeout=conf.connectionTimeout,
        )

    def addNode(self, node: Node) -> None:  # noqa: N802 (pysyncobj's name)
        self._nodes.add(node)
        self._nodeAddrToNode[node.address] = node
        if self._shouldConnect(node):
            conf = self._syncObj.conf
            conn = _MsgpackTcpConnection(
                poller=self._syncObj._poller,
                timeout=conf.connectionTimeout,
                sendBufferSize=conf.sendBufferSize,
                recvBufferSize=conf.recvBufferSize,
                keepalive=conf.tcp_keepalive,
            )
            conn.encryptor = self._syncObj.encryptor
            conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))
            conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
            conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
            self._connections[node] = conn


# ------------------------------------------------------------------ SyncObj adapter


class _DecisionSyncObj(SyncObj):
    """SyncObj whose log commands are msgpack, applied by ``apply_payload``."""

    def __init__(
        self,
        self_address: str,
        partner_addresses: list[str],
        conf: SyncObjConf,
        apply_payload: Callable[[bytes, int], Any],
    ) -> None:
        # Set before SyncObj.__init__: its tick thread may replay the journal at once.
        self._apply_payload = apply_payload
        super().__init__(
            self_address, partner_addresses, conf=conf, transportClass=_MsgpackTransport
        )

    def _SyncObj__doApplyCommand(self, command: bytes) -> Any:  # noqa: N802
        kind = command[0] if command else None
        if kind == _COMMAND_TYPE.REGULAR:
            # pysyncobj increments raftLastApplied right after this call returns.
            return self._apply_payload(bytes(command[1:]), self.raftLastApplied + 1)
        if kind != _COMMAND_TYPE.NO_OP:
            logger.warning("event=raft_command_ignored type=%r", kind)
        return None


class StateMachine(Protocol):
    """What :class:`RaftConsensus` needs from its state machine (``DecisionLog`` fits)."""

    @property
    def last_task_id(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def decisions(self) -> list[dict[str, Any]]: ...
    def apply(self, decision: dict[str, Any]) -> bool: ...
    def reset(self) -> None: ...
    def to_state(self) -> dict[str, Any]: ...
    def restore(self, state: dict[str, Any]) -> None: ...


_PING = {"type": "evospikenet_ping"}
_STOPPED = -1  # our own fail reason: stop() while a proposal waited


class _Waiter:
    """One blocking proposal waiting for pysyncobj's commit callback (tick thread)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.result: Any = None
        self.error: int | None = None

    def on_result(self, result: Any, error: int) -> None:
        self.result, self.error = result, error
        self.event.set()


_STATE_NAMES = {
    _RAFT_STATE.LEADER: "leader",
    _RAFT_STATE.FOLLOWER: "follower",
    _RAFT_STATE.CANDIDATE: "candidate",
}


class RaftConsensus:
    """One member of the PFC Raft group, replicating decisions into a decision log.

    ``peers`` are node ids (``node_id`` may be among them); ``address_of`` maps an id to
    ``"host:port"`` (default: :func:`kubernetes_address_of` derived from a node id like
    ``<cluster>-pfc-<i>`` and ``$POD_NAMESPACE``). Construction binds and resolves nothing;
    :meth:`start` binds the port, :meth:`stop` releases it. Call :meth:`start` from a thread
    that outlives the member: pysyncobj's tick thread exits when its creating thread does.

    With ``data_dir``, Raft term, vote, log (``<node_id>.journal``) and snapshots
    (``<node_id>.dump``) persist there, so a restarted member keeps its place; without it the
    member rejoins empty and catches up from the leader.
    """

    def __init__(
        self,
        node_id: str,
        peers: list[str],
        heartbeat_interval: float = 1.0,
        election_timeout: float = 2.0,
        *,
        address_of: Callable[[str], str] | None = None,
        state_machine: StateMachine | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        batch_appends: bool = False,
        snapshot_entries: int = 1000,
        snapshot_seconds: float = 300.0,
    ) -> None:
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, got {heartbeat_interval}")
        if election_timeout <= 3 * heartbeat_interval:
            raise ValueError(
                f"election_timeout ({election_timeout}) must exceed 3 × heartbeat_interval "
                f"({heartbeat_interval}) so followers do not elect between heartbeats"
            )
        self.node_id = node_id
        self.peers = sorted({*peers, node_id})
        self.heartbeat_interval = heartbeat_interval
        self.election_timeout = election_timeout
        self._address_of = address_of
        self._sm: StateMachine = state_machine if state_machine is not None else DecisionLog()
        self._data_dir = os.fspath(data_dir) if data_dir is not None else None
        self._batch_appends = batch_appends
        self._snapshot_entries = max(2, snapshot_entries)
        self._snapshot_seconds = snapshot_seconds
        self._lock = threading.Lock()
        self._sync: _DecisionSyncObj | None = None
        self._tmp_dir: str | None = None
        self._addr_to_id: dict[str, str] = {}
        self._leaderless_since: float | None = None
        self._noop_index: int | None = None
        self._next_ping = 0.0
        self._pending: set[_Waiter] = set()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Create the pysyncobj member: bind the port and begin talking to the partners."""
        if self._sync is not None:
            raise RuntimeError(f"raft member {self.node_id} already started")
        address_of = self._address_of or _default_address_of(self.node_id)
        addresses = {peer: address_of(peer) for peer in self.peers}
        if len(set(addresses.values())) != len(addresses):
            raise ValueError(f"peers share an address: {addresses}")
        self._addr_to_id = {addr: peer for peer, addr in addresses.items()}
        if self._data_dir is not None:
            os.makedirs(self._data_dir, exist_ok=True)
            base = self._data_dir
            journal: str | None = os.path.join(base, f"{self.node_id}.journal")
        else:
            # pysyncobj pickles in-memory snapshots; a file lets our msgpack hook run.
            self._tmp_dir = base = tempfile.mkdtemp(prefix=f"raft-{self.node_id}-")
            journal = None
        conf = self._conf(journal, os.path.join(base, f"{self.node_id}.dump"))
        with self._lock:
            self._sm.reset()  # rebuilt from journal, snapshot or leader
        self._leaderless_since = time.monotonic()
        self._noop_index = None
        self._next_ping = 0.0
        partners = [addresses[p] for p in self.peers if p != self.node_id]
        sync = _DecisionSyncObj(addresses[self.node_id], partners, conf, self._apply_payload)
        try:
            sync.waitBinded()
        except Exception as exc:
            sync.destroy_synchronous()
            self._cleanup_tmp()
            raise OSError(
                f"raft member {self.node_id} cannot bind {addresses[self.node_id]}"
            ) from exc
        sync.addOnTickCallback(self._on_tick)
        self._sync = sync
        logger.info(
            "event=raft_started node=%s address=%s partners=%s",
            self.node_id,
            addresses[self.node_id],
            ",".join(partners),
        )

    def stop(self) -> None:
        """Destroy the member, close its connections and release its port."""
        sync, self._sync = self._sync, None
        if sync is None:
            return
        sync.destroy_synchronous()
        for waiter in list(self._pending):
            waiter.on_result(None, _STOPPED)
        self._cleanup_tmp()
        logger.info("event=raft_stopped node=%s", self.node_id)

    def __enter__(self) -> RaftConsensus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._sync is not None

    def _cleanup_tmp(self) -> None:
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None

    def _conf(self, journal_file: str | None, dump_file: str) -> SyncObjConf:
        election = self.election_timeout
        return SyncObjConf(
            appendEntriesPeriod=self.heartbeat_interval,
            raftMinTimeout=election,
            raftMaxTimeout=2 * election,
            leaderFallbackTimeout=election,
            connectionTimeout=2 * election,
            connectionRetryTime=election / 2,
            # The tick is the timer resolution for heartbeats and elections.
            autoTickPeriod=min(0.05, max(0.002, self.heartbeat_interval / 4)),
            appendEntriesUseBatch=self._batch_appends,
            appendEntriesBatchSizeBytes=_APPEND_BATCH_BYTES,
            # Fail fast without a leader instead of queueing a write that may commit later.
            commandsWaitLeader=False,
            dynamicMembershipChange=False,
            journalFile=journal_file,
            fullDumpFile=dump_file,
            serializer=self._write_snapshot,
            deserializer=self._read_snapshot,
            logCompactionMinEntries=self._snapshot_entries,
            logCompactionMinTime=self._snapshot_seconds,
            useFork=False,
            bindRetryTime=0.2,
            maxBindRetries=10,
            # A restarted pod may come back with a new IP behind the same DNS name.
            dnsCacheTime=5.0,
            dnsFailCacheTime=1.0,
            onStateChanged=self._on_state_changed,
        )

    # ------------------------------------------------------------ pysyncobj hooks
    # All of these run on pysyncobj's tick thread.

    def _apply_payload(self, payload: bytes, index: int) -> tuple[bool, int] | None:
        try:
            command = _unpack(payload)
            decision = command["decision"] if command.get("op") == _OP_DECISION else None
        except Exception as exc:
            logger.warning("event=raft_entry_malformed index=%d error=%r", index, exc)
            return None
        if not isinstance(decision, dict):
            logger.warning("event=raft_entry_malformed index=%d", index)
            return None
        with self._lock:
            accepted = self._sm.apply(decision)
        if not accepted:
            logger.info(
                "event=raft_decision_refused index=%d task_id=%r next=%d",
                index,
                decision.get("task_id"),
                self._sm.last_task_id + 1,
            )
        return accepted, index

    def _write_snapshot(self, file_name: str, data: tuple[Any, Any, Any]) -> None:
        last_entry, prev_entry, cluster = data
        with self._lock:
            state = self._sm.to_state()
        snapshot = {
            "version": _SNAPSHOT_VERSION,
            "entries": [list(last_entry), list(prev_entry)],
            "cluster": sorted(node.id if isinstance(node, Node) else str(node) for node in cluster),
            "state": state,
        }
        with open(file_name, "wb") as f:
            f.write(_pack(snapshot))
            f.flush()
            os.fsync(f.fileno())

    def _read_snapshot(self, file_name: str) -> tuple[Any, Any, Any]:
        with open(file_name, "rb") as f:
            snapshot = _unpack(f.read())
        if not isinstance(snapshot, dict) or snapshot.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unsupported raft snapshot in {file_name}")
        last_entry, prev_entry = (tuple(e) for e in snapshot["entries"])
        with self._lock:
            self._sm.restore(snapshot["state"])
        logger.info(
            "event=raft_snapshot_loaded node=%s index=%d last_task_id=%d",
            self.node_id,
            last_entry[1],
            self._sm.last_task_id,
        )
        return last_entry, prev_entry, list(snapshot["cluster"])

    def _on_state_changed(self, old: int, new: int) -> None:
        sync = self._sync
        if new == _RAFT_STATE.LEADER and sync is not None:
            # pysyncobj appends its no-op right after this callback; every entry before it
            # is committed once the no-op is applied.
            self._noop_index = sync._SyncObj__raftLog[-1][1] + 1
        else:
            self._noop_index = None
        logger.info(
            "event=raft_state node=%s from=%s to=%s",
            self.node_id,
            _STATE_NAMES.get(old, old),
            _STATE_NAMES.get(new, new),
        )

    def _on_tick(self) -> None:
        sync = self._sync
        if sync is None:
            return
        now = time.monotonic()
        if sync._getLeader() is None:
            if self._leaderless_since is None:
                self._leaderless_since = now
        else:
            self._leaderless_since = None
        if now >= self._next_ping:
            self._next_ping = now + self.election_timeout / 2
            self._ping_partners(sync)

    def _ping_partners(self, sync: _DecisionSyncObj) -> None:
        """Keep follower↔follower links alive.

        pysyncobj only sends leader↔follower traffic and drops a connection on the first
        send after ``connectionTimeout`` without reads. Without these pings the link between
        two followers looks dead exactly when one of them asks the other for its vote after
        the leader died, and the election is lost for one more round (seen in bench/raft.py:
        failover 3.6 s instead of ~1 s at election_timeout 1.0). pysyncobj ignores message
        types it does not know.
        """
        transport = sync._SyncObj__transport
        for node in sync.otherNodes:
            if sync.isNodeConnected(node):
                transport.send(node, _PING)

    # --------------------------------------------------------------- Raft view

    def _require(self) -> _DecisionSyncObj:
        sync = self._sync
        if sync is None:
            raise RuntimeError(f"raft member {self.node_id} is not started")
        return sync

    def _raw_status(self) -> dict[str, Any]:
        sync = self._require()
        for _ in range(5):
            try:
                return sync.getStatus()
            except RuntimeError:  # a set changed size under us on the tick thread
                time.sleep(0.001)
        return sync.getStatus()

    def _id_of(self, node: Node | None) -> str | None:
        if node is None:
            return None
        return self._addr_to_id.get(node.id, node.id)

    def _state_from(self, raw: dict[str, Any]) -> RaftState:
        """Derived from ``getStatus()``:

        * ``leader`` — pysyncobj state is leader (a leader that hears from no majority for
          ``election_timeout`` steps down by itself);
        * ``no-quorum`` — not leader and either ``has_quorum`` is false (this member plus
          the partners it is connected to are not a majority of the group) or no leader has
          been known for more than ``2 × raftMaxTimeout`` (= 4 × ``election_timeout``);
        * otherwise ``candidate`` or ``follower`` as pysyncobj reports.
        """
        if raw["state"] == _RAFT_STATE.LEADER:
            return "leader"
        if not raw["has_quorum"]:
            return "no-quorum"
        since = self._leaderless_since
        if raw["leader"] is None and since is not None:
            if time.monotonic() - since > 4 * self.election_timeout:
                return "no-quorum"
        return "candidate" if raw["state"] == _RAFT_STATE.CANDIDATE else "follower"

    @property
    def state(self) -> RaftState:
        """``leader``, ``follower``, ``candidate`` or ``no-quorum`` (see :meth:`_state_from`)."""
        return self._state_from(self._raw_status())

    @property
    def is_leader(self) -> bool:
        return self._require()._isLeader()

    @property
    def leader(self) -> str | None:
        """Node id of the leader this member knows of (itself when leader), or None."""
        return self._id_of(self._require()._getLeader())

    @property
    def term(self) -> int:
        return self._require().raftCurrentTerm

    @property
    def commit_index(self) -> int:
        return self._require().raftCommitIndex

    @property
    def last_applied(self) -> int:
        return self._require().raftLastApplied

    @property
    def leader_ready(self) -> bool:
        """Leader that has applied every entry committed before its term, so
        ``last_task_id + 1`` is the task id to propose next."""
        sync = self._require()
        noop = self._noop_index
        return sync._isLeader() and noop is not None and sync.raftLastApplied >= noop

    @property
    def decisions(self) -> list[dict[str, Any]]:
        """Committed decisions applied on this member, oldest first (the kept tail)."""
        with self._lock:
            return self._sm.decisions

    @property
    def last_task_id(self) -> int:
        with self._lock:
            return self._sm.last_task_id

    def status(self) -> dict[str, Any]:
        """Plain-data Raft view for heartbeats, status queries and ``brainctl``."""
        raw = self._raw_status()
        peers = {
            self._addr_to_id.get(key.removeprefix("partner_node_status_server_"), key): value == 2
            for key, value in raw.items()
            if key.startswith("partner_node_status_server_")
        }
        with self._lock:
            last_task_id, count = self._sm.last_task_id, self._sm.count
        return {
            "node_id": self.node_id,
            "state": self._state_from(raw),
            "term": raw["raft_term"],
            "leader": self._id_of(raw["leader"]),
            "commit_index": raw["commit_idx"],
            "last_applied": raw["last_applied"],
            "last_task_id": last_task_id,
            "decisions_count": count,
            "peers": dict(sorted(peers.items())),
        }

    # ------------------------------------------------------------------ writes

    def propose(self, decision: dict[str, Any], timeout: float = 5.0) -> int:
        """Commit ``decision`` to the replicated log; return its Raft log index.

        Raises ``NotLeader`` (with the known leader) on a follower, ``NoQuorum`` when no
        majority is reachable, ``DecisionRejected`` when its task id is not the next one and
        ``TimeoutError`` when it is not committed within ``timeout``. Once the entry was
        handed to Raft, an exception means the outcome is unknown (it may still commit);
        retrying with the same task id is safe because the decision log refuses duplicates.
        """
        sync = self._require()
        task_id = decision.get("task_id") if isinstance(decision, dict) else None
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise ValueError(f"decision needs an int task_id, got {task_id!r}")
        try:
            payload = _pack({"op": _OP_DECISION, "decision": decision})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"decision is not plain msgpack data: {exc}") from exc
        if len(payload) > MAX_DECISION_BYTES:
            raise ValueError(f"decision is {len(payload)} bytes, limit {MAX_DECISION_BYTES}")

        deadline = time.monotonic() + timeout
        self._check_can_write(sync)
        # A new leader learns what its predecessor committed only when its own no-op commits.
        while not self.leader_ready:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"leader {self.node_id} not caught up within {timeout}s")
            self._check_can_write(sync)
            time.sleep(min(0.002, self.heartbeat_interval / 4))
        expected = self.last_task_id + 1
        if task_id < expected:  # applied state only grows: can never be accepted
            raise DecisionRejected(task_id, expected)

        waiter = _Waiter()
        self._pending.add(waiter)
        try:
            sync._applyCommand(payload, waiter.on_result, _COMMAND_TYPE.REGULAR)
            if not waiter.event.wait(max(0.0, deadline - time.monotonic())):
                if not sync.hasQuorum:
                    raise NoQuorum(f"task {task_id} not committed: lost the majority")
                raise TimeoutError(f"task {task_id} not committed within {timeout}s")
        finally:
            self._pending.discard(waiter)
        result, error = waiter.result, waiter.error
        if error == _STOPPED:
            raise NotLeader(None, "member stopped")
        if error == FAIL_REASON.SUCCESS:
            if result is None:
                raise DecisionRejected(task_id, self.last_task_id + 1)
            accepted, index = result
            if not accepted:
                raise DecisionRejected(task_id, self.last_task_id + 1)
            return int(index)
        raise self._error_for(error, task_id)

    def _check_can_write(self, sync: _DecisionSyncObj) -> None:
        raw = self._raw_status()
        state = self._state_from(raw)
        if state == "no-quorum":
            raise NoQuorum(f"{self.node_id} cannot reach a majority of {len(self.peers)}")
        if state != "leader":
            raise NotLeader(self._id_of(raw["leader"]))
        if not raw["has_quorum"]:
            raise NoQuorum(f"leader {self.node_id} cannot reach a majority of {len(self.peers)}")

    def _error_for(self, error: int, task_id: int) -> Exception:
        if error == FAIL_REASON.QUEUE_FULL:
            return TimeoutError(f"task {task_id}: pysyncobj command queue full")
        if error == FAIL_REASON.MISSING_LEADER:
            return NotLeader(None, "no leader known")
        if error in (FAIL_REASON.NOT_LEADER, FAIL_REASON.LEADER_CHANGED, FAIL_REASON.DISCARDED):
            return NotLeader(self.leader, f"leadership changed before task {task_id} committed")
        if error == FAIL_REASON.REQUEST_DENIED:
            return DecisionRejected(task_id, self.last_task_id + 1)
        return TimeoutError(f"task {task_id}: outcome unknown (pysyncobj reason {error})")

    def __repr__(self) -> str:
        return f"RaftConsensus(node_id={self.node_id!r}, peers={self.peers!r})"
