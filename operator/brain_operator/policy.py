"""Health, replacement and status policy: one pure decision shared by the operator and brainctl.

Backends (the kopf handlers with Kubernetes pods, brainctl with local processes) observe the
heartbeat table and their pods/processes, turn them into ``MemberObservation``s and ask this
module what to replace and what to write as status. Nothing here does I/O or reads a clock:
``now`` is always a parameter (epoch seconds), so every rule is unit-testable and both
backends behave identically.

The rules (DESIGN §5–6):

* A member is **active** while heartbeats arrive within ``heartbeat.timeoutSeconds``;
  **inactive** once that passes, or at once when its liveliness token disappears after it was
  heard; **unknown** while never heard; **failed** when its pod/process failed.
* A member is replaced when its pod/process **failed**, or when it is **silent**: no heartbeat
  for longer than the timeout (measured from its start when it was never heard) and it started
  longer ago than ``heartbeat.startupGraceSeconds``. A lost liveliness token alone marks a
  member inactive but does not replace it before the timeout: a router restart drops every
  token for about a second, and replacing the whole cluster for that would be wrong.
* At most one replacement per role is in flight.
* Majority guard: replacing a PFC member that is still *voting* (heard within the timeout
  and holding its liveliness token, even if its pod is reported failed) is a voluntary
  disruption, allowed only when the other voting members still form a majority. Replacing a
  member that is not voting (silent, or gone) is never a disruption: the group has already
  lost it, so it is always allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from brain_operator.spec import BrainClusterSpec, FieldError, HeartbeatSpec, SpecError

if TYPE_CHECKING:
    from evospikenet.protocol import Heartbeat

MemberState = Literal["active", "inactive", "unknown", "failed"]
ROLES = ("pfc", "vision")
REASON_FAILED = "failed"
REASON_SILENT = "silent"

# --------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class RaftView:
    """A PFC node's own view of Raft, as its heartbeat reports it."""

    state: str  # leader, follower or candidate
    term: int
    leader: str | None  # node id of the leader it follows, if any
    commit_index: int


@dataclass(frozen=True)
class MemberObservation:
    """What a backend knows about one node: its latest heartbeat plus its pod/process.

    ``last_heartbeat`` is when the last heartbeat was *received* (the observer's clock, so
    sender clock skew does not matter); ``started_at`` is when the pod/process was started.
    """

    node_id: str
    role: str
    last_heartbeat: float | None = None
    alive: bool = False
    started_at: float | None = None
    failed: bool = False
    raft: RaftView | None = None
    pod: str | None = None


def raft_view(data: Mapping[str, Any] | None) -> RaftView | None:
    """A heartbeat's ``raft`` map as a RaftView (None for Vision nodes or a malformed map)."""
    if not isinstance(data, Mapping):
        return None
    try:
        return RaftView(
            state=str(data["state"]),
            term=int(data["term"]),
            leader=None if data.get("leader") is None else str(data["leader"]),
            commit_index=int(data.get("commit_index", -1)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def observation_from_heartbeat(
    heartbeat: Heartbeat,
    *,
    received_at: float,
    alive: bool = True,
    failed: bool = False,
    started_at: float | None = None,
) -> MemberObservation:
    """The observation both backends build from a decoded heartbeat.

    ``started_at`` defaults to the heartbeat's own (the process's start); a backend that
    knows better (a pod's start time) passes it.
    """
    return MemberObservation(
        node_id=heartbeat.node_id,
        role=heartbeat.role,
        last_heartbeat=received_at,
        alive=alive,
        started_at=heartbeat.started_at if started_at is None else started_at,
        failed=failed,
        raft=raft_view(heartbeat.raft),
        pod=heartbeat.pod,
    )


# --------------------------------------------------------------------------------------------
# Member health


def quorum_size(n: int) -> int:
    """Members a Raft group of ``n`` needs to elect a leader and commit: a strict majority."""
    return n // 2 + 1


def member_state(obs: MemberObservation, heartbeat: HeartbeatSpec, now: float) -> MemberState:
    """active, inactive, unknown or failed (see the module docstring)."""
    if obs.failed:
        return "failed"
    if obs.last_heartbeat is None:
        return "unknown"
    if not obs.alive or now - obs.last_heartbeat > heartbeat.timeout_seconds:
        return "inactive"
    return "active"


def is_forgotten(obs: MemberObservation, heartbeat: HeartbeatSpec, now: float) -> bool:
    """True once a member has been silent for ``cleanupSeconds``: drop it from tables."""
    return obs.last_heartbeat is not None and now - obs.last_heartbeat > heartbeat.cleanup_seconds


def _is_voting(obs: MemberObservation, heartbeat: HeartbeatSpec, now: float) -> bool:
    """Still taking part in Raft as far as we can tell: heard recently and connected."""
    return (
        obs.alive
        and obs.last_heartbeat is not None
        and now - obs.last_heartbeat <= heartbeat.timeout_seconds
    )


def _node_key(node_id: str) -> tuple[str, int, str]:
    """Natural order: pfc-2 before pfc-10."""
    prefix, _, suffix = node_id.rpartition("-")
    return (prefix, int(suffix), node_id) if suffix.isdigit() else (node_id, -1, node_id)


def _by_id(
    members: Iterable[MemberObservation] | Mapping[str, MemberObservation],
) -> dict[str, MemberObservation]:
    items = members.values() if isinstance(members, Mapping) else members
    table: dict[str, MemberObservation] = {}
    for obs in items:
        if obs.node_id in table:
            raise ValueError(f"two observations for node {obs.node_id}")
        table[obs.node_id] = obs
    return table


# --------------------------------------------------------------------------------------------
# Replacement


@dataclass(frozen=True)
class Replacement:
    """A decision to replace ``node_id``: ``reason`` is failed or silent, ``message`` says why."""

    node_id: str
    role: str
    reason: str
    at: float
    message: str = ""


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


def replacement_for(
    obs: MemberObservation, role: str, heartbeat: HeartbeatSpec, now: float
) -> Replacement | None:
    """The replacement ``obs`` calls for on its own (ignoring in-flight limits and quorum)."""
    who = obs.pod or obs.node_id
    if obs.failed:
        return Replacement(obs.node_id, role, REASON_FAILED, now, f"{who} failed")
    age = None if obs.started_at is None else now - obs.started_at
    if age is not None and age <= heartbeat.startup_grace_seconds:
        return None
    timeout = heartbeat.timeout_seconds
    if obs.last_heartbeat is None:
        # Never heard: silence counts from the start; with no start time it cannot be measured.
        if age is None or age <= timeout:
            return None
        message = f"{who} sent no heartbeat in the {_seconds(age)} since it started"
    else:
        silence = now - obs.last_heartbeat
        if silence <= timeout:
            return None
        message = f"{who} sent no heartbeat for {_seconds(silence)}"
    message += f" (timeout {timeout:g}s)"
    if not obs.alive:
        message += "; its liveliness token is gone"
    return Replacement(obs.node_id, role, REASON_SILENT, now, message)


def _busy_roles(in_flight: Mapping[str, Replacement] | Iterable[str | Replacement]) -> set[str]:
    items = in_flight.values() if isinstance(in_flight, Mapping) else in_flight
    roles = set()
    for item in items:
        role = item.role if isinstance(item, Replacement) else item
        if role not in ROLES:
            raise ValueError(f"in_flight holds Replacements or roles {ROLES}, not {item!r}")
        roles.add(role)
    return roles


def _priority(obs: MemberObservation, now: float) -> tuple[int, float, tuple[str, int, str]]:
    """Failed members first, then the longest silent, then natural node order."""
    last = obs.last_heartbeat if obs.last_heartbeat is not None else obs.started_at
    silence = now - last if last is not None else 0.0
    return (0 if obs.failed else 1, -silence, _node_key(obs.node_id))


def plan_replacements(
    spec: BrainClusterSpec,
    members: Iterable[MemberObservation] | Mapping[str, MemberObservation],
    now: float,
    in_flight: Mapping[str, Replacement] | Iterable[str | Replacement] = (),
) -> list[Replacement]:
    """The replacements to start now: at most one per role not already busy, PFC first.

    ``in_flight`` is the replacements still under way (a mapping of anything to Replacement,
    or an iterable of Replacements or role names). Only desired members are replaced; a node
    left over from a scale-down is the backend's to remove.
    """
    busy = _busy_roles(in_flight)
    table = _by_id(members)
    heartbeat = spec.heartbeat
    plans = []
    for role, node_ids in (("pfc", spec.pfc_node_ids()), ("vision", spec.vision_node_ids())):
        if role in busy:
            continue
        observed = sorted(
            (table[n] for n in node_ids if n in table), key=lambda o: _priority(o, now)
        )
        voting = {o.node_id for o in observed if _is_voting(o, heartbeat, now)}
        for obs in observed:
            plan = replacement_for(obs, role, heartbeat, now)
            # A working voter may go only if the other voters still form a majority.
            needed_voter = (
                role == "pfc"
                and obs.node_id in voting
                and len(voting) - 1 < quorum_size(spec.pfc.replicas)
            )
            if plan is not None and not needed_voter:
                plans.append(plan)
                break
    return plans


# --------------------------------------------------------------------------------------------
# Leader


@dataclass(frozen=True)
class LeaderView:
    """The confirmed Raft leader."""

    node: str
    pod: str | None
    term: int
    commit_index: int


def elect_leader(
    members: Iterable[MemberObservation] | Mapping[str, MemberObservation],
    *,
    heartbeat: HeartbeatSpec | None = None,
    now: float | None = None,
    replicas: int | None = None,
) -> LeaderView | None:
    """The leader the PFC members' Raft views agree on, or None.

    Only active members count (with ``heartbeat`` and ``now``; without them, members that are
    heard, connected and not failed). The *majority term* is the highest term that at least a
    majority (of ``replicas``, default: the PFC members given) has reached; a leadership claim
    from a lower term is stale, and with no majority heard no leader is reported, since none
    can commit. Of the remaining claims the higher term wins; equal terms (stale data) go to
    the claim most members follow, then to natural node order.
    """
    table = _by_id(members)
    pfc = [o for o in table.values() if o.role == "pfc"]
    views = {o.node_id: o.raft for o in pfc if o.raft is not None and _counts(o, heartbeat, now)}
    needed = quorum_size(replicas if replicas is not None else len(pfc))
    if len(views) < needed:
        return None
    majority_term = sorted((v.term for v in views.values()), reverse=True)[needed - 1]
    claims = [n for n, v in views.items() if v.state == "leader" and v.term >= majority_term]
    if not claims:
        return None

    def rank(node_id: str) -> tuple[int, int, tuple[str, int, str]]:
        claim = views[node_id]
        followers = sum(w.term == claim.term and w.leader == node_id for w in views.values())
        return (-claim.term, -followers, _node_key(node_id))

    best = min(claims, key=rank)
    return LeaderView(best, table[best].pod, views[best].term, views[best].commit_index)


def _counts(obs: MemberObservation, heartbeat: HeartbeatSpec | None, now: float | None) -> bool:
    """Whether a member's Raft view is current enough to count for the leader."""
    if heartbeat is not None and now is not None:
        return member_state(obs, heartbeat, now) == "active"
    return obs.alive and not obs.failed and obs.last_heartbeat is not None


# --------------------------------------------------------------------------------------------
# Status


def rfc3339(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds (heartbeats are sub-second)."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _member_row(
    node_id: str, role: str, obs: MemberObservation | None, heartbeat: HeartbeatSpec, now: float
) -> dict[str, Any]:
    state = "unknown" if obs is None else member_state(obs, heartbeat, now)
    raft = obs.raft if obs is not None and role == "pfc" else None
    last = obs.last_heartbeat if obs is not None else None
    return {
        "name": node_id,
        "role": role,
        "pod": obs.pod if obs is not None else None,
        "state": state,
        "healthy": state == "active",
        "lastHeartbeat": rfc3339(last) if last is not None else None,
        "raftState": raft.state if raft else None,
        "term": raft.term if raft else None,
        "commitIndex": raft.commit_index if raft else None,
    }


def _condition(
    kind: str,
    holds: bool,
    reason: str,
    message: str,
    now: float,
    previous: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """A condition whose lastTransitionTime moves only when its status does."""
    status = "True" if holds else "False"
    before = previous.get(kind)
    since = rfc3339(now)
    if before and before.get("status") == status and before.get("lastTransitionTime"):
        since = before["lastTransitionTime"]
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }


def _previous_conditions(previous: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    conditions = (previous or {}).get("conditions") or []
    return {c["type"]: c for c in conditions if isinstance(c, Mapping) and "type" in c}


def _leader_status(
    leader: LeaderView | None, now: float, previous: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    if leader is None:
        return None
    before = (previous or {}).get("leader") or {}
    same = before.get("node") == leader.node and before.get("term") == leader.term
    since = before["since"] if same and before.get("since") else rfc3339(now)
    return {"node": leader.node, "pod": leader.pod, "term": leader.term, "since": since}


def _replacement_status(last: Replacement | None) -> dict[str, Any] | None:
    if last is None:
        return None
    return {
        "node": last.node_id,
        "role": last.role,
        "reason": last.reason,
        "message": last.message,
        "time": rfc3339(last.at),
    }


_RAN = frozenset({"Running", "Degraded", "QuorumLost"})


def _describe_unhealthy(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['name']} ({r['state']})" for r in rows if not r["healthy"])


Verdict = tuple[bool, str, str]  # a condition's (holds, reason, message)


def phase_of(available: bool, all_healthy: bool, has_run: bool) -> str:
    """Pending until first available; then Running, Degraded or QuorumLost."""
    if available:
        return "Running" if all_healthy else "Degraded"
    return "QuorumLost" if has_run else "Pending"


@dataclass(frozen=True)
class _Health:
    """The facts status is written from, computed once."""

    leader: LeaderView | None
    pfc_ready: str  # "2/3"
    vision_ready: str
    quorum: int
    has_quorum: bool
    unhealthy: str  # "pfc-2 (inactive), vision-0 (unknown)", empty when all healthy

    @property
    def available(self) -> bool:
        return self.has_quorum and self.leader is not None


def _verdicts(health: _Health, phase: str) -> tuple[str, Verdict, Verdict, Verdict]:
    """The one-line message and the Available, Progressing and Degraded verdicts."""
    counts = f"PFC {health.pfc_ready}, Vision {health.vision_ready} healthy"
    if not health.has_quorum:
        blocked: Verdict = (
            False,
            "NoQuorum",
            f"{health.pfc_ready} PFC members healthy; "
            f"a majority of {health.quorum} is needed to elect a leader and commit",
        )
    else:
        blocked = (False, "NoLeader", "a PFC majority is healthy but no leader is confirmed")
    if health.leader is not None and health.has_quorum:
        led = f"leader {health.leader.node} (term {health.leader.term})"
        available: Verdict = (
            True,
            "QuorumAndLeader",
            f"{led}; {health.pfc_ready} PFC members healthy (quorum {health.quorum})",
        )
        message = f"{led}; {counts}"
    else:
        available, message = blocked, f"{blocked[2]}; {counts}"
    if health.unhealthy:
        message += f"; unhealthy: {health.unhealthy}"
        progressing: Verdict = (True, "MembersNotReady", f"waiting for {health.unhealthy}")
    elif health.leader is None:
        progressing = (True, "ElectingLeader", "waiting for the PFC members to elect a leader")
    else:
        progressing = (False, "AllMembersReady", "every desired member is healthy")
    degraded: Verdict = {
        "Running": (False, "AllMembersHealthy", "every desired member is healthy"),
        "Pending": (False, "Starting", "the cluster has not been available yet"),
        "Degraded": (True, "MembersUnhealthy", f"unhealthy: {health.unhealthy}"),
    }.get(phase, (True, blocked[1], blocked[2]))
    return message, available, progressing, degraded


def _extra_members(
    table: Mapping[str, MemberObservation],
    desired: set[str],
    heartbeat: HeartbeatSpec,
    now: float,
) -> list[MemberObservation]:
    """Nodes still heard that the spec no longer wants (e.g. after a scale-down)."""
    extras = [
        o for n, o in table.items() if n not in desired and not is_forgotten(o, heartbeat, now)
    ]
    rank = {role: i for i, role in enumerate(ROLES)}
    return sorted(extras, key=lambda o: (rank.get(o.role, len(ROLES)), _node_key(o.node_id)))


def build_status(
    spec: BrainClusterSpec,
    members: Iterable[MemberObservation] | Mapping[str, MemberObservation],
    now: float,
    *,
    replacements_total: int,
    last_replacement: Replacement | None,
    observed_generation: int,
    previous: Mapping[str, Any] | None = None,
    vision_selector: str | None = None,
) -> dict[str, Any]:
    """The ``.status`` object, exactly as written (camelCase, JSON-serialisable).

    Phases: **Pending** until a PFC majority and a leader first exist; then **Running** when
    every desired member is healthy and there is a leader, **Degraded** when available but
    some desired member is unhealthy, **QuorumLost** when there is no healthy PFC majority or
    no leader. ``previous`` (the current status) keeps ``leader.since`` and the conditions'
    ``lastTransitionTime`` stable and remembers whether the cluster has ever run.
    ``vision_selector`` is the Vision pods' label selector, for the scale subresource.
    ``leader`` and ``replacements.last`` are null when there is none, so that a merge patch
    clears a stale value.
    """
    heartbeat = spec.heartbeat
    table = _by_id(members)
    pfc_ids, vision_ids = spec.pfc_node_ids(), spec.vision_node_ids()
    pfc_rows = [_member_row(n, "pfc", table.get(n), heartbeat, now) for n in pfc_ids]
    vision_rows = [_member_row(n, "vision", table.get(n), heartbeat, now) for n in vision_ids]
    extras = _extra_members(table, {*pfc_ids, *vision_ids}, heartbeat, now)
    pfc_ready = sum(r["healthy"] for r in pfc_rows)
    vision_ready = sum(r["healthy"] for r in vision_rows)
    health = _Health(
        leader=elect_leader(
            [table[n] for n in pfc_ids if n in table],
            heartbeat=heartbeat,
            now=now,
            replicas=spec.pfc.replicas,
        ),
        pfc_ready=f"{pfc_ready}/{spec.pfc.replicas}",
        vision_ready=f"{vision_ready}/{spec.vision.replicas}",
        quorum=quorum_size(spec.pfc.replicas),
        has_quorum=pfc_ready >= quorum_size(spec.pfc.replicas),
        unhealthy=_describe_unhealthy(pfc_rows + vision_rows),
    )
    has_run = (previous or {}).get("phase") in _RAN
    phase = phase_of(health.available, not health.unhealthy, has_run)
    message, available, progressing, degraded = _verdicts(health, phase)
    before = _previous_conditions(previous)
    vision: dict[str, Any] = {"desired": spec.vision.replicas, "ready": vision_ready}
    if vision_selector is not None:
        vision["selector"] = vision_selector
    return {
        "phase": phase,
        "message": message,
        "observedGeneration": observed_generation,
        "pfcReady": health.pfc_ready,
        "visionReady": health.vision_ready,
        "leader": _leader_status(health.leader, now, previous),
        "pfc": {"desired": spec.pfc.replicas, "ready": pfc_ready, "quorum": health.quorum},
        "vision": vision,
        "members": pfc_rows
        + vision_rows
        + [_member_row(o.node_id, o.role, o, heartbeat, now) for o in extras],
        "replacements": {
            "total": replacements_total,
            "last": _replacement_status(last_replacement),
        },
        "conditions": [
            _condition("Available", *available, now, before),
            _condition("Progressing", *progressing, now, before),
            _condition("Degraded", *degraded, now, before),
        ],
    }


def failed_status(
    errors: SpecError | Iterable[FieldError | str],
    observed_generation: int,
    *,
    now: float,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The status for a spec that failed validation: phase Failed, the errors in the message.

    Only these keys are written, so a merge patch leaves the last observed members and leader
    in place (the running pods are untouched until the spec is fixed).
    """
    items = errors.errors if isinstance(errors, SpecError) else list(errors)
    message = "invalid spec: " + "; ".join(str(e) for e in items)
    before = _previous_conditions(previous)
    return {
        "phase": "Failed",
        "message": message,
        "observedGeneration": observed_generation,
        "conditions": [
            _condition("Available", False, "InvalidSpec", message, now, before),
            _condition("Progressing", False, "InvalidSpec", message, now, before),
            _condition("Degraded", True, "InvalidSpec", message, now, before),
        ],
    }
