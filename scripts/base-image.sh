#!/usr/bin/env bash
# Build a local Python base image without any container registry: debootstrap a minimal
# Debian rootfs with python3 (+ venv) and `docker import` it.
#
#   scripts/base-image.sh [IMAGE]        # default: brain-base/debian-python:bookworm
#
# Debian bookworm ships Python 3.11, the version the node image needs (torch 2.13.0 cp311).
# Idempotent: an existing image is kept (FORCE=1 rebuilds it).
set -euo pipefail

IMAGE=${1:-brain-base/debian-python:bookworm}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PACKAGES=${PACKAGES:-python3,python3-venv,ca-certificates}

if [[ ${FORCE:-0} != 1 ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "base-image: $IMAGE exists" >&2
    exit 0
fi
command -v debootstrap >/dev/null || { echo "error: debootstrap is not installed" >&2; exit 2; }

ROOTFS=$(mktemp -d /tmp/brain-rootfs.XXXXXX)
cleanup() { rm -rf "$ROOTFS"; }
trap cleanup EXIT

echo "base-image: debootstrap $SUITE ($PACKAGES) into $ROOTFS" >&2
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; exit 2; }
rm -f "$ROOTFS.log"
# Slim the image: no apt lists, caches, docs or man pages.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
    "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/*

echo "base-image: importing as $IMAGE" >&2
tar -C "$ROOTFS" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" >/dev/null
docker run --rm --network none "$IMAGE" python3 --version >&2
