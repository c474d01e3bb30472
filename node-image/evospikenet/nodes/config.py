"""Node configuration from flags, or from ``BRAIN_*`` environment variables (for pods)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields


def env_default(flag: str, default: str | None = None) -> str | None:
    """``--raft-address`` reads ``BRAIN_RAFT_ADDRESS`` when the flag is not given."""
    return os.environ.get("BRAIN_" + flag.lstrip("-").upper().replace("-", "_"), default)


def parse_mapping(text: str | None) -> dict[str, str]:
    """``pfc-0=127.0.0.1:7100,pfc-1=...`` as a dict; ValueError naming the bad item."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"expected NODE=HOST:PORT, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def node_id_from_pod(pod: str | None, cluster: str) -> str | None:
    """``demo-pfc-2`` in cluster ``demo`` is node ``pfc-2`` (StatefulSet pods carry the name)."""
    if not pod:
        return None
    return pod.removeprefix(cluster + "-")


def split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


@dataclass(frozen=True)
class NodeConfig:
    role: str
    node_id: str
    cluster: str = "default"
    connect: str | None = None
    http_host: str = "0.0.0.0"
    http_port: int = 0
    heartbeat_interval: float = 1.0
    heartbeat_timeout: float = 5.0
    seed: int = 0
    pod: str | None = None
    # Vision model (the PFC's input size is the Vision size).
    vision_size: int = 512
    time_steps: int = 10
    # PFC
    peers: tuple[str, ...] = ()
    raft_addresses: dict[str, str] = field(default_factory=dict)
    raft_address_template: str | None = None
    data_dir: str | None = None
    decision_rate: float = 10.0
    raft_heartbeat_interval: float = 0.05
    election_timeout: float = 0.5
    pfc_size: int = 128
    num_modules: int = 6
    n_heads: int = 2
    request_timeout: float = 1.0
    torch_threads: int = 1


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    def opt(flag: str, default=None, **kw):
        parser.add_argument(flag, default=env_default(flag, default), **kw)

    opt("--role", choices=["vision", "pfc"], help="node role")
    opt("--id", help="node id, e.g. vision-0 (default: $BRAIN_ID, else $POD_NAME without "
        "its '<cluster>-' prefix)")
    opt("--cluster", "default")
    opt("--connect", help="router endpoint(s), e.g. tcp/127.0.0.1:7447")
    opt("--http-host", "0.0.0.0")
    opt("--http-port", "0", type=int, help="/healthz and /metrics port (0 = none)")
    opt("--heartbeat-interval", "1.0", type=float)
    opt("--heartbeat-timeout", "5.0", type=float)
    opt("--seed", "0", type=int)
    opt("--vision-size", "512", type=int)
    opt("--time-steps", "10", type=int)
    opt("--peers", help="PFC node ids, comma separated")
    opt("--raft-address", help="NODE=HOST:PORT,... for every PFC peer")
    opt("--raft-address-template",
        help="instead of --raft-address: e.g. {cluster}-pfc-{ordinal}.{cluster}-pfc."
        "{namespace}.svc:7100 ({node}, {ordinal}, {cluster}, {namespace} = $POD_NAMESPACE)")
    opt("--data-dir", help="Raft journal directory (persists term, vote and log)")
    opt("--decision-rate", "10", type=float, help="decisions per second (leader)")
    opt("--raft-heartbeat-interval", "0.05", type=float)
    opt("--election-timeout", "0.5", type=float)
    opt("--pfc-size", "128", type=int)
    opt("--num-modules", "6", type=int)
    opt("--n-heads", "2", type=int)
    opt("--request-timeout", "1.0", type=float)
    opt("--torch-threads", "1", type=int,
        help="intra-op threads per node; 1 avoids oversubscribing cores shared by many nodes")


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    """Check the combination of flags and build the config; ValueError names the flag."""
    node_id = args.id or node_id_from_pod(os.environ.get("POD_NAME"), args.cluster)
    if not args.role:
        raise ValueError("--role is required (vision or pfc)")
    if not node_id:
        raise ValueError("--id is required (or BRAIN_ID / POD_NAME)")
    peers = tuple(split_list(args.peers))
    addresses = parse_mapping(args.raft_address)
    if args.role == "pfc":
        if not peers:
            peers = (node_id,)
        if node_id not in peers:
            raise ValueError(f"--peers {','.join(peers)} does not include --id {node_id}")
        if not args.raft_address_template:
            missing = [p for p in peers if p not in addresses]
            if missing:
                raise ValueError(f"--raft-address has no address for {', '.join(missing)}")
    if args.decision_rate <= 0:
        raise ValueError("--decision-rate must be > 0")
    # Flags and config fields share their names, except for the ones computed above.
    computed = {"node_id", "pod", "peers", "raft_addresses"}
    same = ({f.name for f in fields(NodeConfig)} & set(vars(args))) - computed
    return NodeConfig(
        **{name: getattr(args, name) for name in same},
        node_id=node_id,
        pod=os.environ.get("POD_NAME"),
        peers=peers,
        raft_addresses=addresses,
    )
