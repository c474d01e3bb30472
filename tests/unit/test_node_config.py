"""Node flags and their ``BRAIN_*`` environment twins (what pods set)."""

from __future__ import annotations

import argparse

import pytest

from evospikenet.nodes.config import add_node_arguments, config_from_args, parse_mapping
from evospikenet.nodes.pfc_node import address_resolver, rotation


def parse(argv, monkeypatch=None, env=None):
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    parser = argparse.ArgumentParser()
    add_node_arguments(parser)
    return config_from_args(parser.parse_args(argv))


def test_flags_make_a_pfc_config():
    config = parse(["--role", "pfc", "--id", "pfc-1", "--peers", "pfc-0,pfc-1",
                    "--raft-address", "pfc-0=127.0.0.1:7100, pfc-1=127.0.0.1:7101",
                    "--decision-rate", "25"])
    assert config.peers == ("pfc-0", "pfc-1") and config.decision_rate == 25.0
    assert config.raft_addresses == {"pfc-0": "127.0.0.1:7100", "pfc-1": "127.0.0.1:7101"}
    assert address_resolver(config)("pfc-0") == "127.0.0.1:7100"


def test_environment_carries_the_same_settings_and_the_pod_name_gives_the_id(monkeypatch):
    config = parse([], monkeypatch, {
        "BRAIN_ROLE": "pfc", "BRAIN_CLUSTER": "demo", "POD_NAME": "demo-pfc-2",
        "POD_NAMESPACE": "brains", "BRAIN_PEERS": "pfc-0,pfc-1,pfc-2",
        "BRAIN_RAFT_ADDRESS_TEMPLATE": "{cluster}-pfc-{ordinal}.{cluster}-pfc.{namespace}.svc:7100",
        "BRAIN_HEARTBEAT_INTERVAL": "0.5",
    })
    assert (config.node_id, config.pod, config.heartbeat_interval) == ("pfc-2", "demo-pfc-2", 0.5)
    assert address_resolver(config)("pfc-0") == "demo-pfc-0.demo-pfc.brains.svc:7100"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--id", "x"], "--role is required"),
        (["--role", "vision"], "--id is required"),
        (["--role", "pfc", "--id", "pfc-3", "--peers", "pfc-0,pfc-1"], "does not include"),
        (["--role", "pfc", "--id", "pfc-0", "--peers", "pfc-0,pfc-1",
          "--raft-address", "pfc-0=h:1"], "no address for pfc-1"),
        (["--role", "vision", "--id", "v", "--decision-rate", "0"], "--decision-rate"),
    ],
)
def test_bad_combinations_name_the_flag(argv, message, monkeypatch):
    monkeypatch.delenv("POD_NAME", raising=False)
    with pytest.raises(ValueError, match=message):
        parse(argv)


def test_mappings_need_node_equals_address():
    assert parse_mapping("") == {}
    with pytest.raises(ValueError, match="NODE=HOST:PORT"):
        parse_mapping("pfc-0:7100")


def test_round_robin_visits_every_vision_node_once_from_the_cursor():
    assert rotation(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert rotation([], 3) == []
