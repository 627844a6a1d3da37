#!/usr/bin/env bash
# Build the container image concord:local FROM scratch (no image is pulled): the `concord` binary,
# the shared libraries `ldd` lists for it with the loader, a static busybox (the health check's
# wget, and a shell for the Kubernetes init step), /etc/passwd with the user concord (uid 10001),
# and a data directory that user owns. See deploy/README.md. When the host has libfaketime
# (Debian: libfaketime), the image carries it too, with its libraries, at the same path: nothing
# loads it unless LD_PRELOAD names it (`concord chaos`'s clock faults do; docs/chaos.md).
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
#   FAKETIME_LIB     libfaketime to put in the image (default
#                    /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1); absent: no clock faults
set -euo pipefail

# -P: through a link to deploy/ (the docs test links it into a scratch directory) to the real checkout.
repo="$(cd -P "$(dirname "$0")/.." && pwd)"
image="${CONCORD_IMAGE:-concord:local}"
busybox="${BUSYBOX:-/bin/busybox}"
faketime="${FAKETIME_LIB:-/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1}"

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

# Exactly what the dynamic linker loads for an ELF file: `name => /path (addr)` lines and the
# loader's own `/path (addr)` line; linux-vdso has no file.
needed() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}
libs=$(needed "$CONCORD_BIN" | sort -u)
[ -n "$libs" ] || { echo "build-image.sh: ldd found no libraries for $CONCORD_BIN" >&2; exit 1; }
# libfaketime for `concord chaos`'s clock faults (preloaded only when a run asks for them): the
# library itself at its own path, and whatever it needs beyond the binary's libraries.
if [ -f "$faketime" ]; then
    libs=$( (echo "$libs"; echo "$faketime"; needed "$faketime") | sort -u)
    echo "== libfaketime: $faketime (clock faults possible)"
else
    echo "== no libfaketime at $faketime: the image is built without it, and concord chaos cannot make clock faults with it (Debian: apt-get install libfaketime)"
fi
# Each copied (symlinks followed) to the same path.
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done

cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

echo "== docker build -t $image ($(du -sh "$root" | cut -f1) rootfs; libraries: $(echo $libs))"
docker build -q -t "$image" "$stage"
echo "built $image"
