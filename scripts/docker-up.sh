#!/usr/bin/env bash
# Make a Docker engine available for `make images` / `make docker-e2e`:
#  - nothing to do when `docker info` already answers;
#  - otherwise install Debian's docker.io (and debootstrap, for the local base image) when
#    dockerd is missing, then start dockerd in the background and wait for it (bounded).
# The daemon started here keeps running (its PID is in $DOCKERD_PIDFILE); stop it with
#   kill "$(cat /run/brain-dockerd.pid)"
set -euo pipefail

DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/run/brain-dockerd.pid}
DOCKERD_LOG=${DOCKERD_LOG:-/tmp/brain-dockerd.log}
WAIT_SECONDS=${WAIT_SECONDS:-60}

if docker info >/dev/null 2>&1; then
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: no Docker engine; install docker.io and debootstrap (needs root)" >&2
        exit 2
    fi
    echo "docker-up: installing docker.io and debootstrap with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi

if [[ -f $DOCKERD_PIDFILE ]] && kill -0 "$(cat "$DOCKERD_PIDFILE")" 2>/dev/null; then
    echo "docker-up: dockerd (pid $(cat "$DOCKERD_PIDFILE")) is running; waiting for it" >&2
else
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: dockerd is not running and starting it needs root" >&2
        exit 2
    fi
    echo "docker-up: starting dockerd (log: $DOCKERD_LOG)" >&2
    # setsid: the daemon gets its own session, so it outlives this script and make.
    setsid dockerd --pidfile "$DOCKERD_PIDFILE" >"$DOCKERD_LOG" 2>&1 < /dev/null &
fi

for _ in $(seq "$WAIT_SECONDS"); do
    if docker info >/dev/null 2>&1; then
        echo "docker-up: engine ready ($(docker version --format '{{.Server.Version}}'))" >&2
        exit 0
    fi
    sleep 1
done
echo "error: dockerd did not answer within ${WAIT_SECONDS}s; see $DOCKERD_LOG" >&2
tail -n 20 "$DOCKERD_LOG" >&2 || true
exit 2
