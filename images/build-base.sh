#!/usr/bin/env bash
# Build a local Python base image from Debian's packages, for machines that
# cannot pull from a container registry.
#
#   images/build-base.sh [TAG]        default TAG: progjar-base:bookworm
#
# Uses mmdebstrap when installed, else debootstrap (both are Debian
# packages; run as root). The result is imported with `docker import`.
# Environment: PROGJAR_DEBIAN_SUITE (bookworm), PROGJAR_DEBIAN_MIRROR
# (http://deb.debian.org/debian).
set -euo pipefail

tag=${1:-progjar-base:bookworm}
suite=${PROGJAR_DEBIAN_SUITE:-bookworm}
mirror=${PROGJAR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,iproute2,iptables,procps,ca-certificates

if command -v mmdebstrap >/dev/null; then
    echo "build-base: mmdebstrap $suite -> $tag" >&2
    mmdebstrap --quiet --variant=minbase --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$suite" - "$mirror" |
        docker import -c 'CMD ["python3"]' -m "progjar-lab base from Debian $suite" - "$tag"
elif command -v debootstrap >/dev/null; then
    echo "build-base: debootstrap $suite -> $tag" >&2
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >&2
    tar -C "$root" -c . | docker import -c 'CMD ["python3"]' -m "progjar-lab base from Debian $suite" - "$tag"
else
    echo "build-base: neither mmdebstrap nor debootstrap is installed." >&2
    echo "  Install one (apt-get install mmdebstrap), or set PROGJAR_BASE_IMAGE to an image you have." >&2
    exit 1
fi
docker run --rm "$tag" python3 -c 'import sys; print("build-base: ok, Python", sys.version.split()[0])' >&2
