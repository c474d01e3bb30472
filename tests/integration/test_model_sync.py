"""NodeSynchronizer over a real router: state served, fetched, verified, compared."""

from __future__ import annotations

import dataclasses

import torch

from evospikenet.model_sync import NodeSynchronizer, majority_digest, state_digest, state_key
from evospikenet.pfc import PFCDecisionEngine
from evospikenet.protocol import ModelState, Status
from evospikenet.zenoh_comm import ZenohCommunicator


def engine(seed: int) -> PFCDecisionEngine:
    return PFCDecisionEngine(size=32, num_modules=4, n_heads=2, time_steps=4, input_size=64,
                             seed=seed)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_digest_and_majority_are_deterministic():
    a, b = engine(0), engine(1)
    assert state_digest(a.state_dict()) == state_digest(engine(0).state_dict())
    assert state_digest(a.state_dict()) != state_digest(b.state_dict())
    assert majority_digest(["x", "y", "x", None]) == "x"
    assert majority_digest(["y", "x"]) == "x"  # a tie resolves the same way everywhere
    assert majority_digest([None]) is None


def test_a_starting_node_fetches_and_verifies_a_peers_state(router):
    with (
        ZenohCommunicator("pfc-0", cluster="sync", connect=router.endpoint) as a,
        ZenohCommunicator("pfc-1", cluster="sync", connect=router.endpoint) as b,
    ):
        source, target = engine(0), engine(1)
        sync_a = NodeSynchronizer("pfc", a, source)
        sync_a.serve()
        sync_b = NodeSynchronizer("pfc", b, target)
        assert sync_b.digest != sync_a.digest
        assert sync_b.bootstrap(["pfc-1", "pfc-9", "pfc-0"], timeout=5.0) == "pfc-0"
        assert sync_b.digest == sync_a.digest and same_weights(source, target)
        assert sync_b.synced_from == "pfc-0"


def test_a_state_whose_digest_does_not_match_is_refused(router):
    with (
        ZenohCommunicator("pfc-0", cluster="sync2", connect=router.endpoint) as liar,
        ZenohCommunicator("pfc-1", cluster="sync2", connect=router.endpoint) as b,
    ):
        honest = NodeSynchronizer("pfc", liar, engine(0))

        def tampered(request: Status) -> ModelState:
            state = honest._state(request)
            first = next(iter(state.tensors))
            tensors = {**state.tensors, first: state.tensors[first] + 1}
            return dataclasses.replace(state, tensors=tensors)

        liar.serve(state_key("pfc", "pfc-0"), tampered, expected=Status)
        target = engine(1)
        before = state_digest(target.state_dict())
        assert NodeSynchronizer("pfc", b, target).bootstrap(["pfc-0"], timeout=5.0) is None
        assert state_digest(target.state_dict()) == before


def test_a_node_differing_from_the_majority_reports_out_of_sync(router):
    with ZenohCommunicator("pfc-2", cluster="sync3", connect=router.endpoint) as comm:
        sync = NodeSynchronizer("pfc", comm, engine(5))
        majority = state_digest(engine(0).state_dict())
        assert sync.check([majority, majority]) is False
        assert sync.heartbeat_fields() == {"model_digest": sync.digest, "in_sync": False}
        assert sync.check([sync.digest, majority]) is True  # with one peer agreeing: majority
