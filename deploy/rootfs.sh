#!/usr/bin/env bash
# Assembles the operator image's root filesystem in DIR, for deploy/image.sh and the
# Containerfile (both images hold the same files):
#   /usr/local/bin/pdc-operator   the binary, debug info stripped (symbol names kept
#                                 for backtraces)
#   the shared libraries ldd names, and the dynamic loader at the path the binary asks
#                                 for (none for a static binary)
#   /etc/passwd, /etc/group       the numeric user and group 65532 the image runs as
#   /etc/nsswitch.conf            /etc/hosts before DNS: without the file glibc asks DNS
#                                 first, and a Pod's hostAliases would not count
# Nothing else. No shell. No /tmp: the operator writes no files. No CA bundle: it
# trusts only the CA of its kubeconfig or ServiceAccount (and of a DR peer's
# kubeconfig), never the system's roots.
#
#   deploy/rootfs.sh BINARY DIR
set -euo pipefail
BIN=${1:?usage: rootfs.sh BINARY DIR}
DIR=${2:?usage: rootfs.sh BINARY DIR}
if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
  echo "rootfs.sh: $DIR is not empty" >&2
  exit 1
fi
umask 022
mkdir -p "$DIR/usr/local/bin" "$DIR/etc"
chmod 0755 "$DIR"
strip --strip-debug -o "$DIR/usr/local/bin/pdc-operator" "$BIN"
chmod 0755 "$DIR/usr/local/bin/pdc-operator"

# ldd prints "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" per library and
# "/lib64/ld-linux-x86-64.so.2 (0x...)" for the loader; linux-vdso has no file. A
# static binary: "not a dynamic executable" (exit 1) or "statically linked".
deps=$(ldd "$BIN" 2>&1 || true)
if grep -q "not found" <<<"$deps"; then
  echo "rootfs.sh: $BIN needs a library this machine lacks:" >&2
  echo "$deps" >&2
  exit 1
fi
awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$deps" | sort -u | while read -r lib; do
  # Each library as a file at the path the loader looks it up by (no symlinks to follow).
  mkdir -p "$DIR$(dirname "$lib")"
  cp -L "$lib" "$DIR$lib"
  chmod 0755 "$DIR$lib"
done

echo "pdc:x:65532:65532:pdc operator:/nonexistent:/sbin/nologin" >"$DIR/etc/passwd"
echo "pdc:x:65532:" >"$DIR/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$DIR/etc/nsswitch.conf"
chmod 0644 "$DIR/etc/passwd" "$DIR/etc/group" "$DIR/etc/nsswitch.conf"
# Directories 0755 whatever the umask of the copy, so uid 65532 can walk them.
find "$DIR" -type d -exec chmod 0755 {} +
