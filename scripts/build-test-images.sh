#!/usr/bin/env bash
# Build the local images that opsctl's Docker tests and demo use. No registry is
# needed (none is reachable here): everything comes from Debian's packages.
#   opsctl-test/busybox:latest  FROM scratch + a static busybox (shell stages)
#   opsctl-test/python:3        Debian bookworm minbase + python3, pandas, scikit-learn, yaml
#                               (debootstrap, then `docker import`), for the templates' stages
# Built once per machine and reused: an image that exists is kept (--rebuild to redo).
set -euo pipefail

# Usage: build-test-images.sh [--rebuild] [--only busybox|python]
rebuild=0
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rebuild) rebuild=1 ;;
        --only) only=$2; shift ;;
        *) echo "build-test-images: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=${DEBIAN_SUITE:-bookworm}

have() { [ "$rebuild" = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

if ! docker info >/dev/null 2>&1; then
    echo "build-test-images: no Docker engine reachable; run scripts/setup-machine.sh first" >&2
    exit 4
fi

# One build at a time on a machine: parallel test workers and the demo may all ask at once.
exec 9>"${TMPDIR:-/tmp}/opsctl-build-test-images.lock"
flock 9

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! want busybox; then
    :
elif have opsctl-test/busybox:latest; then
    echo "build-test-images: opsctl-test/busybox:latest exists" >&2
else
    # Debian's busybox-static: one statically linked binary that runs in an empty image.
    busybox=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
    [ -n "$busybox" ] && [ -x "$busybox" ] || { echo "build-test-images: install busybox-static first" >&2; exit 1; }
    mkdir -p "$work/busybox"
    cp "$busybox" "$work/busybox/busybox"
    cat > "$work/busybox/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
CMD ["/bin/sh"]
DOCKERFILE
    # (the client warns that the legacy builder is deprecated; buildx is not packaged here)
    docker build -q -t opsctl-test/busybox:latest "$work/busybox" >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
    echo "build-test-images: built opsctl-test/busybox:latest" >&2
fi

if ! want python; then
    :
elif have opsctl-test/python:3; then
    echo "build-test-images: opsctl-test/python:3 exists" >&2
else
    command -v debootstrap >/dev/null || { echo "build-test-images: install debootstrap first" >&2; exit 1; }
    echo "build-test-images: debootstrapping $suite with python3, pandas, scikit-learn (a few minutes)" >&2
    debootstrap --variant=minbase --include=python3,python3-pandas,python3-sklearn,python3-yaml \
        "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
            tail -20 "$work/debootstrap.log" >&2
            exit 1
        }
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'ENV PYTHONDONTWRITEBYTECODE=1' -c 'CMD ["python3"]' - opsctl-test/python:3 >/dev/null
    echo "build-test-images: built opsctl-test/python:3" >&2
fi
