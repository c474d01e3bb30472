#!/usr/bin/env bash
# Fill a wheelhouse with every distribution the node and operator images install, so that
# `docker build` runs offline (`pip install --no-index --find-links`):
#
#   scripts/wheelhouse.sh [DIR]      # default: build/wheels
#
# `pip wheel` resolves with the Python that runs it (.venv: 3.11 on glibc Linux, like the
# images' python:3.11-slim or Debian bookworm python3) and turns source-only distributions
# (pysyncobj) into wheels, so the image needs no compiler. The project's own distributions
# are built from source inside the image, so the wheelhouse also carries their build backend
# (setuptools). Idempotent: pip reuses what is already in DIR.
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${1:-build/wheels}
PIP=${PIP:-.venv/bin/pip}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
IMAGE_PYTHON=${IMAGE_PYTHON:-3.11}  # the Python of the base image (bookworm, 3.11-slim)

HOST_PYTHON=$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ $HOST_PYTHON != "$IMAGE_PYTHON" ]]; then
    echo "error: .venv runs Python $HOST_PYTHON but the image runs $IMAGE_PYTHON; its wheels" \
        "would not install there (set IMAGE_PYTHON if the base image differs)" >&2
    exit 2
fi
mkdir -p "$DIR"
# Requirements of both distributions, read from their pyproject.toml files (the projects
# themselves are not on an index).
REQS=$(mktemp)
trap 'rm -f "$REQS"' EXIT
.venv/bin/python - "$REQS" "$TORCH_SPEC" <<'PY'
import sys
import tomllib

out, torch_spec = sys.argv[1], sys.argv[2]
lines = [torch_spec, "setuptools>=68"]
for path in ("node-image/pyproject.toml", "operator/pyproject.toml"):
    project = tomllib.load(open(path, "rb"))["project"]
    deps = project["dependencies"] + project.get("optional-dependencies", {}).get("node", [])
    lines += [d for d in deps if not d.startswith(("evospikenet", "torch"))]
open(out, "w").write("\n".join(lines) + "\n")
PY
echo "wheelhouse: wheels into $DIR for: $(tr '\n' ' ' < "$REQS")" >&2
"$PIP" wheel --quiet --wheel-dir "$DIR" --find-links "$DIR" -r "$REQS" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
echo "wheelhouse: $(find "$DIR" -maxdepth 1 -name '*.whl' | wc -l) wheels," \
    "$(du -sh "$DIR" | cut -f1)" >&2
