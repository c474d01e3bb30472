"""brain_operator.policy: member health, replacement, leader and status (pure, table-driven)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from brain_operator import spec
from brain_operator.policy import (
    LeaderView,
    MemberObservation,
    RaftView,
    Replacement,
    build_status,
    elect_leader,
    failed_status,
    is_forgotten,
    member_state,
    observation_from_heartbeat,
    plan_replacements,
    quorum_size,
    raft_view,
    rfc3339,
)

NOW = 1_700_000_000.0
TIMEOUT = 5.0
GRACE = 30.0
OLD = 1000.0  # seconds since start: well past the startup grace


def cluster(pfc: int = 3, vision: int = 2) -> spec.BrainClusterSpec:
    return spec.validate(
        {
            "apiVersion": spec.API_VERSION,
            "kind": spec.KIND,
            "metadata": {"name": "demo"},
            "spec": {
                "pfc": {"replicas": pfc},
                "vision": {"replicas": vision},
                "heartbeat": {"timeoutSeconds": TIMEOUT, "startupGraceSeconds": GRACE},
            },
        }
    )


HB = cluster().heartbeat


def node(
    node_id: str,
    *,
    ago: float | None = 0.5,
    alive: bool = True,
    age: float | None = OLD,
    failed: bool = False,
    raft: RaftView | None = None,
) -> MemberObservation:
    """An observation ``ago`` seconds after its last heartbeat (None: never heard)."""
    return MemberObservation(
        node_id=node_id,
        role=node_id.split("-")[0],
        last_heartbeat=None if ago is None else NOW - ago,
        alive=alive,
        started_at=None if age is None else NOW - age,
        failed=failed,
        raft=raft,
        pod=f"demo-{node_id}",
    )


def pfc(
    index: int, state: str = "follower", term: int = 1, leader: str | None = "pfc-0", **kw: Any
) -> MemberObservation:
    return node(f"pfc-{index}", raft=RaftView(state, term, leader, 10 + index), **kw)


def healthy(n_pfc: int = 3, n_vision: int = 2, leader: int = 0, term: int = 1) -> list:
    members = [
        pfc(i, "leader" if i == leader else "follower", term, f"pfc-{leader}") for i in range(n_pfc)
    ]
    return members + [node(f"vision-{i}") for i in range(n_vision)]


def swap(members: list[MemberObservation], *changed: MemberObservation) -> list:
    """``members`` with the observations of the same node ids replaced by ``changed``."""
    by_id = {m.node_id: m for m in members}
    by_id.update({c.node_id: c for c in changed})
    return list(by_id.values())


def status_schema() -> jsonschema.Draft202012Validator:
    node_schema = spec.root_schema()["properties"]["status"]
    return jsonschema.Draft202012Validator(spec.to_json_schema(node_schema))


# --------------------------------------------------------------------------------------------
# Member state


@pytest.mark.parametrize(
    ("obs", "state"),
    [
        (node("vision-0"), "active"),
        (node("vision-0", ago=TIMEOUT), "active"),
        (node("vision-0", ago=TIMEOUT + 0.01), "inactive"),
        (node("vision-0", ago=0.01, alive=False), "inactive"),  # liveliness lost: at once
        (node("vision-0", ago=None), "unknown"),
        (node("vision-0", ago=None, alive=False), "unknown"),
        (node("vision-0", failed=True), "failed"),
        (node("vision-0", ago=100, alive=False, failed=True), "failed"),
    ],
)
def test_member_state(obs: MemberObservation, state: str) -> None:
    assert member_state(obs, HB, NOW) == state


@pytest.mark.parametrize(("ago", "forgotten"), [(None, False), (299.0, False), (301.0, True)])
def test_members_are_forgotten_after_cleanup(ago: float | None, forgotten: bool) -> None:
    assert is_forgotten(node("vision-0", ago=ago), HB, NOW) is forgotten


# --------------------------------------------------------------------------------------------
# Replacement


def plan(members: list, in_flight: Any = (), pfc_n: int = 3, vision_n: int = 2) -> list[tuple]:
    got = plan_replacements(cluster(pfc_n, vision_n), members, NOW, in_flight)
    return [(r.node_id, r.reason) for r in got]


REPLACEMENT_CASES = [
    ("all healthy", healthy(), []),
    ("silent past timeout", swap(healthy(), node("vision-1", ago=10)), [("vision-1", "silent")]),
    ("silent but within timeout", swap(healthy(), node("vision-1", ago=4)), []),
    ("silent within startup grace", swap(healthy(), node("vision-1", ago=10, age=10)), []),
    (
        "restarted, old heartbeat, grace over",
        swap(healthy(), node("vision-1", ago=40, age=GRACE + 1)),
        [("vision-1", "silent")],
    ),
    ("never heard, young", swap(healthy(), node("vision-1", ago=None, age=20)), []),
    (
        "never heard past grace",
        swap(healthy(), node("vision-1", ago=None, age=GRACE + 1)),
        [("vision-1", "silent")],
    ),
    ("never heard, start unknown", swap(healthy(), node("vision-1", ago=None, age=None)), []),
    (
        "liveliness lost, not yet timed out",
        swap(healthy(), node("vision-1", ago=1, alive=False)),
        [],
    ),
    (
        "failed within grace",
        swap(healthy(), node("vision-1", failed=True, age=1)),
        [("vision-1", "failed")],
    ),
    (
        "failed before silent",
        swap(healthy(), node("vision-0", ago=100), node("vision-1", failed=True)),
        [("vision-1", "failed")],
    ),
    (
        "longest silent first",
        swap(healthy(), node("vision-0", ago=10), node("vision-1", ago=100)),
        [("vision-1", "silent")],
    ),
    (
        "one per role, pfc first",
        swap(healthy(), node("vision-0", failed=True), pfc(2, ago=60), pfc(1, ago=70)),
        [("pfc-1", "silent"), ("vision-0", "failed")],
    ),
    (
        "leftover from a scale-down is not replaced",
        [*healthy(), node("vision-5", ago=100)],
        [],
    ),
    (
        "a missing observation is not a replacement",
        healthy(3, 1),
        [],
    ),
]


@pytest.mark.parametrize(
    ("members", "expected"),
    [c[1:] for c in REPLACEMENT_CASES],
    ids=[c[0] for c in REPLACEMENT_CASES],
)
def test_plan_replacements(members: list, expected: list[tuple]) -> None:
    assert plan(members) == expected


@pytest.mark.parametrize(
    "in_flight",
    [
        {"vision"},
        ["vision"],
        {"vision-0": Replacement("vision-0", "vision", "silent", NOW - 1)},
        [Replacement("vision-0", "vision", "silent", NOW - 1)],
    ],
    ids=["set", "list", "mapping", "replacements"],
)
def test_one_replacement_in_flight_per_role(in_flight: Any) -> None:
    members = swap(healthy(), node("vision-1", failed=True), pfc(2, ago=60))
    assert plan(members, in_flight) == [("pfc-2", "silent")]
    assert plan(members, {"pfc", "vision"}) == []


def test_in_flight_must_hold_roles() -> None:
    with pytest.raises(ValueError, match="roles"):
        plan(healthy(), {"pfc-0"})


def test_replacement_records_time_and_a_readable_reason() -> None:
    members = swap(healthy(), node("vision-1", ago=12.34, alive=False))
    (replacement,) = plan_replacements(cluster(), members, NOW)
    assert replacement == Replacement(
        "vision-1",
        "vision",
        "silent",
        NOW,
        "demo-vision-1 sent no heartbeat for 12.3s (timeout 5s); its liveliness token is gone",
    )


def test_plan_is_deterministic_whatever_the_input_order() -> None:
    members = swap(
        healthy(5, 4),
        node("vision-0", ago=50),
        node("vision-3", ago=50),
        pfc(1, ago=20),
        pfc(4, ago=20),
    )
    expected = plan(members, pfc_n=5, vision_n=4)
    assert expected == [("pfc-1", "silent"), ("vision-0", "silent")]
    for seed in range(5):
        shuffled = members[:]
        random.Random(seed).shuffle(shuffled)
        assert plan(shuffled, pfc_n=5, vision_n=4) == expected


# The majority guard: a PFC member reported failed while it still heartbeats is still a voter;
# taking it away is a voluntary disruption, allowed only if the other voters stay a majority.
MAJORITY_CASES = [
    (
        "failed but voting, others healthy",
        3,
        swap(healthy(), pfc(2, failed=True)),
        [("pfc-2", "failed")],
    ),
    (
        "failed-but-voting member is needed; the silent one is replaced instead",
        3,
        swap(healthy(), pfc(1, ago=60), pfc(2, failed=True)),
        [("pfc-1", "silent")],
    ),
    (
        "single node failed but still voting",
        1,
        [pfc(0, "leader", failed=True)],
        [],
    ),
    (
        "single node failed and gone",
        1,
        [pfc(0, "leader", failed=True, alive=False)],
        [("pfc-0", "failed")],
    ),
    (
        "dead members are replaced even without quorum",
        3,
        swap(healthy(), pfc(1, ago=60), pfc(2, ago=90)),
        [("pfc-2", "silent")],
    ),
    (
        "five nodes: a failed voter may go while three voters remain",
        5,
        swap(healthy(5, 0), pfc(4, failed=True), pfc(3, ago=60)),
        [("pfc-4", "failed")],
    ),
    (
        "five nodes: a failed voter stays when only three vote",
        5,
        swap(healthy(5, 0), pfc(4, failed=True), pfc(3, ago=90), pfc(2, ago=60)),
        [("pfc-3", "silent")],
    ),
]


@pytest.mark.parametrize(
    ("replicas", "members", "expected"),
    [c[1:] for c in MAJORITY_CASES],
    ids=[c[0] for c in MAJORITY_CASES],
)
def test_never_disrupt_a_needed_voter(replicas: int, members: list, expected: list) -> None:
    assert plan(members, pfc_n=replicas, vision_n=0) == expected


# --------------------------------------------------------------------------------------------
# Quorum


@pytest.mark.parametrize(("n", "quorum"), [(1, 1), (3, 2), (5, 3), (7, 4)])
def test_quorum_arithmetic(n: int, quorum: int) -> None:
    assert quorum_size(n) == quorum
    spec_ = cluster(n, 0)
    down = [pfc(i, ago=60) for i in range(n)]

    def available(n_healthy: int) -> bool:
        members = healthy(n, 0)[:n_healthy] + down[n_healthy:]
        status = build_status(
            spec_,
            members,
            NOW,
            replacements_total=0,
            last_replacement=None,
            observed_generation=1,
        )
        condition = status["conditions"][0]
        assert condition["type"] == "Available"
        return condition["status"] == "True"

    assert available(quorum)
    assert not available(quorum - 1)
    assert available(n)


# --------------------------------------------------------------------------------------------
# Leader


def leader_of(members: list, **kw: Any) -> str | None:
    found = elect_leader(members, heartbeat=HB, now=NOW, **kw)
    return None if found is None else found.node


LEADER_CASES = [
    ("one leader", healthy(leader=1), "pfc-1"),
    (
        "two claims: the higher term wins",
        [pfc(0, "leader", term=3), pfc(1, "leader", term=4, leader="pfc-1"), pfc(2, term=4)],
        "pfc-1",
    ),
    (
        "a silent leader is stale",
        [pfc(0, "leader", ago=10), pfc(1, term=1), pfc(2, term=1)],
        None,
    ),
    (
        "a leader whose liveliness token is gone is stale",
        [pfc(0, "leader", alive=False), pfc(1), pfc(2)],
        None,
    ),
    (
        "a lower term than the majority's is stale",
        [pfc(0, "leader", term=2), pfc(1, "candidate", term=3, leader=None), pfc(2, term=3)],
        None,
    ),
    (
        "a lone partitioned node's higher term deposes nobody",
        [pfc(0, "leader", term=2), pfc(1, term=2), pfc(2, "candidate", term=9, leader=None)],
        "pfc-0",
    ),
    ("no majority heard", [pfc(0, "leader"), pfc(1, ago=60), pfc(2, ago=None)], None),
    (
        "equal terms: the claim most members follow",
        [
            pfc(0, "leader", term=5),
            pfc(1, "leader", term=5, leader="pfc-1"),
            pfc(2, term=5, leader="pfc-1"),
        ],
        "pfc-1",
    ),
    ("no claim", [pfc(0, leader=None), pfc(1, leader=None), pfc(2, leader=None)], None),
    (
        "vision nodes do not vote",
        [*healthy(3, 0), replace(node("vision-0"), raft=RaftView("leader", 9, "vision-0", 0))],
        "pfc-0",
    ),
]


@pytest.mark.parametrize(
    ("members", "expected"), [c[1:] for c in LEADER_CASES], ids=[c[0] for c in LEADER_CASES]
)
def test_elect_leader(members: list, expected: str | None) -> None:
    assert leader_of(members, replicas=3) == expected


def test_elect_leader_reports_the_leaders_view() -> None:
    assert elect_leader(healthy(leader=2, term=7), heartbeat=HB, now=NOW) == LeaderView(
        "pfc-2", "demo-pfc-2", 7, 12
    )


def test_the_majority_counts_desired_members_not_just_those_heard() -> None:
    members = [pfc(0, "leader"), pfc(1)]  # two of five heard
    assert leader_of(members) == "pfc-0"
    assert leader_of(members, replicas=5) is None


def test_without_a_clock_only_connected_unfailed_members_count() -> None:
    members = [pfc(0, "leader", alive=False), pfc(1, "leader", term=2, leader="pfc-1"), pfc(2)]
    assert elect_leader(members[1:]) == LeaderView("pfc-1", "demo-pfc-1", 2, 11)
    assert elect_leader([members[0], pfc(1), pfc(2)]) is None


# --------------------------------------------------------------------------------------------
# Status


def status_of(members: list, previous: dict | None = None, now: float = NOW, **kw: Any) -> dict:
    args = {"replacements_total": 0, "last_replacement": None, "observed_generation": 1}
    args.update(kw)
    return build_status(cluster(), members, now, previous=previous, **args)


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_running_status_in_full() -> None:
    status = status_of(
        healthy(term=4),
        replacements_total=2,
        last_replacement=Replacement("vision-1", "vision", "silent", NOW - 60, "quiet"),
        observed_generation=3,
        vision_selector="app=brain,role=vision",
    )
    assert status_schema().is_valid(status), list(status_schema().iter_errors(status))
    assert json.loads(json.dumps(status)) == status
    assert status["phase"] == "Running"
    assert status["message"] == "leader pfc-0 (term 4); PFC 3/3, Vision 2/2 healthy"
    assert status["observedGeneration"] == 3
    assert (status["pfcReady"], status["visionReady"]) == ("3/3", "2/2")
    assert status["leader"] == {
        "node": "pfc-0",
        "pod": "demo-pfc-0",
        "term": 4,
        "since": rfc3339(NOW),
    }
    assert status["pfc"] == {"desired": 3, "ready": 3, "quorum": 2}
    assert status["vision"] == {"desired": 2, "ready": 2, "selector": "app=brain,role=vision"}
    assert [m["name"] for m in status["members"]] == [
        "pfc-0",
        "pfc-1",
        "pfc-2",
        "vision-0",
        "vision-1",
    ]
    assert status["members"][1] == {
        "name": "pfc-1",
        "role": "pfc",
        "pod": "demo-pfc-1",
        "state": "active",
        "healthy": True,
        "lastHeartbeat": rfc3339(NOW - 0.5),
        "raftState": "follower",
        "term": 4,
        "commitIndex": 11,
    }
    assert status["members"][3]["term"] is None and status["members"][3]["commitIndex"] is None
    assert status["replacements"] == {
        "total": 2,
        "last": {
            "node": "vision-1",
            "role": "vision",
            "reason": "silent",
            "message": "quiet",
            "time": rfc3339(NOW - 60),
        },
    }
    assert conditions(status) == {
        "Available": ("True", "QuorumAndLeader"),
        "Progressing": ("False", "AllMembersReady"),
        "Degraded": ("False", "AllMembersHealthy"),
    }
    assert all(c["lastTransitionTime"] == rfc3339(NOW) for c in status["conditions"])


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_700_000_000.25) == "2023-11-14T22:13:20.250Z"


NO_ONE: list = []
ONE_VISION_DOWN = swap(healthy(), node("vision-1", ago=60))
ONE_PFC_LEFT = swap(healthy(), pfc(1, ago=60), pfc(2, ago=60))
NO_LEADER = [pfc(i, leader=None) for i in range(3)] + [node("vision-0"), node("vision-1")]

# (scenario, members, phase, Available reason, Degraded status), applied in order, each step's
# status being the next step's previous one.
TRANSITIONS = [
    ("nothing heard yet", NO_ONE, "Pending", "NoQuorum", "False"),
    ("majority, no leader yet", NO_LEADER, "Pending", "NoLeader", "False"),
    ("all healthy", healthy(), "Running", "QuorumAndLeader", "False"),
    ("a vision node silent", ONE_VISION_DOWN, "Degraded", "QuorumAndLeader", "True"),
    ("pfc majority lost", ONE_PFC_LEFT, "QuorumLost", "NoQuorum", "True"),
    ("majority, leader not yet elected", NO_LEADER, "QuorumLost", "NoLeader", "True"),
    ("recovered", healthy(leader=1, term=2), "Running", "QuorumAndLeader", "False"),
]


def test_phase_transitions() -> None:
    previous = None
    for scenario, members, phase, reason, degraded in TRANSITIONS:
        status = status_of(members, previous)
        assert status_schema().is_valid(status), scenario
        assert status["phase"] == phase, scenario
        got = conditions(status)
        assert got["Available"] == ("True" if phase in ("Running", "Degraded") else "False", reason)
        assert got["Degraded"][0] == degraded, scenario
        assert got["Progressing"][0] == ("False" if phase == "Running" else "True"), scenario
        previous = status


def test_pending_status_lists_every_desired_member_as_unknown() -> None:
    status = status_of([])
    assert status["leader"] is None
    assert status["pfcReady"] == "0/3"
    assert [(m["name"], m["state"], m["healthy"]) for m in status["members"]] == [
        ("pfc-0", "unknown", False),
        ("pfc-1", "unknown", False),
        ("pfc-2", "unknown", False),
        ("vision-0", "unknown", False),
        ("vision-1", "unknown", False),
    ]
    assert "a majority of 2 is needed" in status["message"]


def test_degraded_names_the_unhealthy_members() -> None:
    status = status_of(swap(healthy(), node("vision-1", ago=60), pfc(2, failed=True)))
    assert status["phase"] == "Degraded"
    assert status["message"].endswith("unhealthy: pfc-2 (failed), vision-1 (inactive)")
    (degraded,) = [c for c in status["conditions"] if c["type"] == "Degraded"]
    assert degraded["message"] == "unhealthy: pfc-2 (failed), vision-1 (inactive)"


EARLIER = "2023-01-01T00:00:00.000Z"


def backdated(status: dict) -> dict:
    """``status`` as if written long ago: every timestamp it keeps set to EARLIER."""
    old = json.loads(json.dumps(status))
    if old.get("leader"):
        old["leader"]["since"] = EARLIER
    for condition in old["conditions"]:
        condition["lastTransitionTime"] = EARLIER
    return old


def test_leader_since_is_kept_while_leader_and_term_stay() -> None:
    first = backdated(status_of(healthy(term=3)))
    assert status_of(healthy(term=3), first)["leader"]["since"] == EARLIER
    assert status_of(healthy(term=4), first)["leader"]["since"] == rfc3339(NOW)
    assert status_of(healthy(leader=2, term=3), first)["leader"]["since"] == rfc3339(NOW)


def test_last_transition_time_moves_only_when_the_status_does() -> None:
    start = backdated(status_of(ONE_VISION_DOWN))
    # Same statuses, different unhealthy member: messages change, transition times do not.
    later = status_of(swap(healthy(), node("vision-0", ago=60)), start)
    assert later["phase"] == start["phase"] == "Degraded"
    assert [c["lastTransitionTime"] for c in later["conditions"]] == [EARLIER] * 3
    assert later["conditions"][2]["message"] != start["conditions"][2]["message"]
    healed = status_of(healthy(), backdated(later))
    times = {c["type"]: c["lastTransitionTime"] for c in healed["conditions"]}
    assert times == {"Available": EARLIER, "Progressing": rfc3339(NOW), "Degraded": rfc3339(NOW)}


def test_leftover_members_are_listed_but_not_counted_until_forgotten() -> None:
    members = [*healthy(), node("vision-7"), node("vision-9", ago=400), pfc(5, ago=10)]
    status = status_of(members)
    assert [m["name"] for m in status["members"]][5:] == ["pfc-5", "vision-7"]
    assert status["visionReady"] == "2/2" and status["phase"] == "Running"


def test_duplicate_observations_are_a_backend_bug() -> None:
    with pytest.raises(ValueError, match="two observations"):
        status_of([node("vision-0"), node("vision-0")])


def test_failed_status() -> None:
    errors = [spec.FieldError("spec.pfc.replicas", "must be odd (1, 3, 5 or 7)")]
    status = failed_status(errors, 4, now=NOW)
    assert status_schema().is_valid(status)
    assert status["phase"] == "Failed"
    assert status["observedGeneration"] == 4
    assert status["message"] == "invalid spec: spec.pfc.replicas: must be odd (1, 3, 5 or 7)"
    assert conditions(status) == {
        "Available": ("False", "InvalidSpec"),
        "Progressing": ("False", "InvalidSpec"),
        "Degraded": ("True", "InvalidSpec"),
    }
    again = failed_status(spec.SpecError(errors), 5, now=NOW + 10, previous=status)
    assert {c["lastTransitionTime"] for c in again["conditions"]} == {rfc3339(NOW)}
    assert failed_status(["bad file"], 1, now=NOW)["message"] == "invalid spec: bad file"


def test_a_fixed_spec_starts_pending_again() -> None:
    broken = failed_status(["x"], 1, now=NOW - 5)
    assert status_of(healthy()[:1], broken)["phase"] == "Pending"


# --------------------------------------------------------------------------------------------
# From heartbeats


def test_observation_from_heartbeat() -> None:
    from evospikenet.protocol import Heartbeat

    heartbeat = Heartbeat(
        node_id="pfc-1",
        role="pfc",
        seq=9,
        sent_at=NOW - 0.2,
        started_at=NOW - 50,
        pod="demo-pfc-1",
        raft={"state": "leader", "term": 3, "leader": "pfc-1", "commit_index": 40},
    )
    obs = observation_from_heartbeat(heartbeat, received_at=NOW)
    assert obs == MemberObservation(
        "pfc-1", "pfc", NOW, True, NOW - 50, False, RaftView("leader", 3, "pfc-1", 40), "demo-pfc-1"
    )
    pod_started = observation_from_heartbeat(heartbeat, received_at=NOW, started_at=NOW - 60)
    assert pod_started == replace(obs, started_at=NOW - 60)


@pytest.mark.parametrize("raft", [None, {}, {"state": "leader"}, {"state": "x", "term": "t"}, 5])
def test_malformed_raft_views_are_ignored(raft: Any) -> None:
    assert raft_view(raft) is None
