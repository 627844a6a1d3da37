#!/usr/bin/env bash
# Build the container image concord:local FROM scratch (no image is pulled): the `concord` binary,
# the shared libraries `ldd` lists for it with the loader, a static busybox (the health check's
# wget, and a shell for the Kubernetes init step), /etc/passwd with the user concord (uid 10001),
# and a data directory that user owns. See deploy/README.md.
#
#   deploy/build-image.sh                          # cargo build --release -p concord, then the image
#   CONCORD_BIN=target/debug/concord deploy/build-image.sh   # reuse a binary already built
#
# Environment:
#   CONCORD_BIN      a concord binary to put in the image (default: build one in release, into
#                    $CARGO_TARGET_DIR or ./target)
#   CONCORD_IMAGE    the tag to build (default concord:local)
#   BUSYBOX          a statically linked busybox (default /bin/busybox; Debian: busybox-static)
#   CONCORD_STRIP    1 (default): strip the binary's debug info in the image (a debug build shrinks
#                    tenfold); 0: copy it as it is
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
image="${CONCORD_IMAGE:-concord:local}"
busybox="${BUSYBOX:-/bin/busybox}"

if [ -z "${CONCORD_BIN:-}" ]; then
    echo "== cargo build --release -p concord"
    (cd "$repo" && cargo build --release -p concord)
    CONCORD_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/concord"
fi
[ -x "$CONCORD_BIN" ] || { echo "build-image.sh: $CONCORD_BIN is not an executable" >&2; exit 1; }
[ -x "$busybox" ] || {
    echo "build-image.sh: no static busybox at $busybox (Debian: apt-get install busybox-static)" >&2
    exit 1
}
if ldd "$busybox" >/dev/null 2>&1; then
    echo "build-image.sh: $busybox is dynamically linked; the image needs a static one (busybox-static)" >&2
    exit 1
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/etc" "$root/tmp" "$stage/data"
chmod 1777 "$root/tmp"
cp "$repo/deploy/image/Dockerfile" "$stage/"
cp "$repo/deploy/image/passwd" "$repo/deploy/image/group" "$root/etc/"
chmod 0644 "$root/etc/passwd" "$root/etc/group"

if [ "${CONCORD_STRIP:-1}" = 1 ] && command -v objcopy >/dev/null; then
    objcopy --strip-debug "$CONCORD_BIN" "$root/usr/local/bin/concord"
else
    cp "$CONCORD_BIN" "$root/usr/local/bin/concord"
fi
chmod 0755 "$root/usr/local/bin/concord"

# Exactly what the dynamic linker loads: `name => /path (addr)` lines and the loader's own
# `/path (addr)` line; linux-vdso has no file. Each is copied (symlinks followed) to the same path.
libs=$(ldd "$CONCORD_BIN" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || { echo "build-image.sh: ldd found no libraries for $CONCORD_BIN" >&2; exit 1; }
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

echo "== docker build -t $image ($(du -sh "$root" | cut -f1) rootfs; libraries: $(echo $libs))"
docker build -q -t "$image" "$stage"
echo "built $image"
