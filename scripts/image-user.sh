#!/bin/sh
# Run inside an image build (final stage of node-image/ and operator/Dockerfile): create the
# non-root user `brain` with the fixed uid/gid 10001 that pod securityContexts (runAsUser,
# fsGroup) name, plus any extra directories it must own (e.g. /var/lib/brain).
# POSIX sh and no useradd required: slim and debootstrapped bases alike.
set -eu
if command -v useradd >/dev/null 2>&1; then
    groupadd --gid 10001 brain
    useradd --uid 10001 --gid 10001 --home-dir /home/brain --create-home \
        --shell /usr/sbin/nologin brain
else
    echo 'brain:x:10001:10001::/home/brain:/usr/sbin/nologin' >> /etc/passwd
    echo 'brain:x:10001:' >> /etc/group
    mkdir -p /home/brain
    chown 10001:10001 /home/brain
fi
for dir in "$@"; do
    mkdir -p "$dir"
    chown 10001:10001 "$dir"
done
