#!/usr/bin/env bash
# Make deploy/secrets/cluster.secret (or the file given), the cluster secret compose.yaml hands to
# every node: 32 random bytes as hex, owned by the image's user (uid 10001) with mode 0400 when run
# as root; otherwise mode 0644 (the container's user must be able to read it), with a warning.
# An existing file is kept: every node of a cluster, and every restart, needs the same secret.
set -euo pipefail
file="${1:-$(cd "$(dirname "$0")" && pwd)/secrets/cluster.secret}"
if [ -s "$file" ]; then
    echo "keeping $file"
    exit 0
fi
mkdir -p "$(dirname "$file")"
umask 077
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$file"
echo >> "$file"
if [ "$(id -u)" = 0 ]; then
    chown 10001:10001 "$file"
    chmod 0400 "$file"
else
    chmod 0644 "$file"
    echo "make-secret.sh: not root, so $file is world-readable (0644); to keep it to the node's user:" >&2
    echo "  sudo chown 10001:10001 $file && sudo chmod 0400 $file" >&2
fi
echo "wrote $file"
