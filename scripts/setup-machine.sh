#!/usr/bin/env bash
# Install and start the system tools that opsctl's demo and tests use:
#   git, a Docker engine (Debian's docker.io, started in the background),
#   busybox-static (offline test images: no registry is needed),
#   zsh and fish (completion tests), tmux (terminal tests), debootstrap
#   (the Python test image of scripts/build-test-images.sh), docker-registry
#   (a local image registry for the cluster tests, tests/e2e/cluster_parts.py; not started here).
# Idempotent and quick when everything is there. Installs only as root with apt;
# otherwise it says what is missing.
set -euo pipefail

missing=()
command -v git >/dev/null 2>&1 || missing+=(git)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v fish >/dev/null 2>&1 || missing+=(fish)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)

if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
    fi
fi

if ! docker info >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null 2>&1; then
        # A daemon killed earlier leaves its pid file behind and the next one refuses to start.
        pgrep -x dockerd >/dev/null 2>&1 || rm -f /var/run/docker.pid
        echo "setup: starting dockerd" >&2
        nohup dockerd >/var/log/opsctl-dockerd.log 2>&1 &
        for _ in $(seq 1 60); do
            docker info >/dev/null 2>&1 && break
            sleep 1
        done
    fi
    if docker info >/dev/null 2>&1; then
        echo "setup: Docker engine is running" >&2
    else
        echo "setup: warning: no Docker engine reachable (see /var/log/opsctl-dockerd.log); docker tests will skip, or fail with OPSCTL_REQUIRE_DOCKER=1" >&2
    fi
fi
