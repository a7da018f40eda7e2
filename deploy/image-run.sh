#!/usr/bin/env bash
# Runs the operator image the way a container runtime would, with no daemon (as root):
# the image unpacked once into a bundle (deploy/oci.py unpack), then in a mount
# namespace of its own the bundle's root bind-mounted read-only (readOnlyRootFilesystem),
# /proc, a /dev with null, zero, full, random and urandom, /sys read-only (its cgroup
# submounts as the host has them), the -v files read-only; chrooted there, in the
# image's WorkingDir, as the image's numeric User with no supplementary groups, no
# capabilities and no_new_privs, with only the image's Env and the -e variables, on
# the host's network. Every step execs the next and the last one the entrypoint, so
# this script's pid becomes the operator's.
#
#   deploy/image-run.sh [-e NAME=VALUE | -e NAME]... [-v HOST_FILE:PATH]... IMAGE [-- ARGS...]
#
# IMAGE: the archive deploy/image.sh writes, an OCI layout directory, or a bundle.
# Bundles are kept in ${PDC_IMAGE_BUNDLES:-/tmp/pdc-image}/<digest>. E.g. against a
# local control plane:
#   deploy/image-run.sh -v "$KUBECONFIG:/var/run/secrets/pdc/kubeconfig" \
#     -e KUBECONFIG=/var/run/secrets/pdc/kubeconfig -e POD_NAME=pdc-operator-0 \
#     -e PDC_METRICS_ADDR=127.0.0.1:8080 target/image/pdc-operator-0.1.0.oci.tar
# The tests start the image with the same steps from Rust (tests/src/operator.rs
# image_command): there the parent-death signal that ties the operator to the test
# process is set after the change of user, which clears it; no tool here can do that
# inside a root that holds nothing but the operator.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
usage() { echo "usage: deploy/image-run.sh [-e NAME[=VALUE]]... [-v HOST_FILE:PATH]... IMAGE [-- ARGS...]" >&2; exit 2; }
ENVS=(); VOLUMES=()
while [ $# -gt 0 ]; do
  case "$1" in
    -e) [ $# -ge 2 ] || usage
        case "$2" in *=*) ENVS+=("$2") ;; *) ENVS+=("$2=${!2-}") ;; esac; shift 2 ;;
    -v) [ $# -ge 2 ] || usage; VOLUMES+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    *) break ;;
  esac
done
IMAGE=${1:-}; [ -n "$IMAGE" ] || usage; shift
if [ $# -gt 0 ]; then [ "$1" = "--" ] || usage; shift; fi
[ "$(id -u)" -eq 0 ] || { echo "image-run.sh: run as root (it mounts and chroots)" >&2; exit 1; }

STORE=${PDC_IMAGE_BUNDLES:-/tmp/pdc-image}
if [ -f "$IMAGE/config.json" ]; then
  BUNDLE=$IMAGE
else
  DIGEST=$(python3 "$HERE/oci.py" digest "$IMAGE")
  BUNDLE=$(python3 "$HERE/oci.py" unpack "$IMAGE" "$STORE/${DIGEST#sha256:}")
fi
ROOTFS=$BUNDLE/rootfs

# The image config's User (numeric only: the root holds no tools to look names up),
# WorkingDir, Entrypoint + Cmd and Env, NUL-separated.
mapfile -d '' SPEC < <(python3 - "$BUNDLE/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])).get("config", {})
user, _, group = (c.get("User") or "0").partition(":")
if not user.isdigit() or not (group or user).isdigit():
    sys.exit(f"image-run.sh: User {c.get('User')!r} is not numeric")
argv = (c.get("Entrypoint") or []) + (c.get("Cmd") or [])
fields = [user, group or user, c.get("WorkingDir") or "/", str(len(argv))] + argv + (c.get("Env") or [])
sys.stdout.write("".join(f + "\0" for f in fields))
EOF
)
USER_ID=${SPEC[0]}; GROUP_ID=${SPEC[1]}; WORKDIR=${SPEC[2]}; N=${SPEC[3]}
ARGV=("${SPEC[@]:4:$N}" "$@")
IMAGE_ENV=("${SPEC[@]:$((4 + N))}")
[ ${#ARGV[@]} -gt 0 ] || { echo "image-run.sh: the image has no Entrypoint or Cmd" >&2; exit 1; }

# Mount points, made in the bundle (the runtime's copy, not the image) before the
# root turns read-only, as runc does.
mkdir -p "$ROOTFS/proc" "$ROOTFS/dev" "$ROOTFS/sys"
MOUNTS=()
for v in "${VOLUMES[@]}"; do
  src=${v%%:*}; dst=${v#*:}
  [ -f "$src" ] && [ "${dst#/}" != "$dst" ] || { echo "image-run.sh: -v $v: HOST_FILE must be a file, PATH absolute" >&2; exit 2; }
  mkdir -p "$ROOTFS$(dirname "$dst")"; [ -e "$ROOTFS$dst" ] || : >"$ROOTFS$dst"
  MOUNTS+=("$(readlink -f "$src")" "$ROOTFS$dst")
done

# Inside the new mount namespace: $1 the root, pairs of source and target up to "--",
# then the command to exec.
SETUP='
set -euo pipefail
root=$1; shift
mount --bind "$root" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,noexec,mode=755,size=64k tmpfs "$root/dev"
for d in null zero full random urandom; do : >"$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
mount --rbind /sys "$root/sys"; mount -o remount,bind,ro "$root/sys"
while [ "$1" != "--" ]; do mount --bind "$1" "$2"; mount -o remount,bind,ro "$2"; shift 2; done
shift
mount -o remount,bind,ro "$root"
exec "$@"
'
UNSHARE=$(command -v unshare)
# Then, from host binaries: env leaves only the image's Env and the -e variables;
# setpriv sets no_new_privs (allowPrivilegeEscalation: false); the second unshare
# enters no namespace: it chroots, changes directory, drops the supplementary groups,
# sets the gid and uid (dropping every capability) and execs the entrypoint.
exec "$UNSHARE" --mount --propagation private -- bash -c "$SETUP" setup "$ROOTFS" "${MOUNTS[@]}" -- \
  "$(command -v env)" -i "${IMAGE_ENV[@]}" "${ENVS[@]}" \
  "$(command -v setpriv)" --no-new-privs \
  "$UNSHARE" --root="$ROOTFS" --wd="$WORKDIR" --setgid="$GROUP_ID" --setuid="$USER_ID" -- "${ARGV[@]}"
