#!/usr/bin/env python3
"""OCI image archives without a container daemon or registry (standard library only).

  oci.py pack --rootfs DIR --out FILE --ref NAME:TAG --entrypoint PATH --user UID:GID
              [--env K=V]... [--label K=V]... [--workdir DIR]
      One gzip layer from DIR, a config and a manifest, written as an OCI image layout
      archive (oci-layout, index.json, blobs/sha256/...) tagged NAME:TAG by the index's
      org.opencontainers.image.ref.name annotation. Deterministic: every entry owned by
      0:0 with mtime SOURCE_DATE_EPOCH (default 0), names sorted, gzip without a
      timestamp, so the same files give the same digests.

  oci.py unpack IMAGE DEST
      Unpacks an archive or layout directory IMAGE into the bundle DEST (DEST/rootfs,
      DEST/config.json: the image config, DEST/digest: the manifest's digest) and prints
      DEST. A bundle that already holds that digest is reused; the unpacking goes to a
      temporary directory renamed into place, so concurrent callers do not collide. An
      IMAGE that is itself a bundle is printed as it is.

  oci.py digest IMAGE
      Prints the manifest digest of an archive or layout directory.

  oci.py ref IMAGE
      Prints the name the archive or layout directory tags its image with (NAME:TAG).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import sys
import tarfile
import tempfile
import time

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
# Python 3.12+ warns without an extraction filter and 3.14 defaults to "data", which
# refuses absolute symlinks that images hold; names are checked by safe_name() anyway.
EXTRACT_FILTER = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}


def epoch():
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def tar_entry(name, size=0, mode=0o644, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname = size, mode, kind, link
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = epoch()
    return info


def layer_tar(rootfs):
    """The rootfs as an uncompressed tar: names sorted, owners 0:0, fixed mtimes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for top, dirs, files in os.walk(rootfs):
            dirs.sort()
            rel_top = os.path.relpath(top, rootfs)
            for name in sorted(dirs + files):
                path = os.path.join(top, name)
                rel = os.path.normpath(os.path.join(rel_top, name))
                st = os.lstat(path)
                mode = 0o755 if os.path.isdir(path) or st.st_mode & 0o111 else 0o644
                if os.path.islink(path):
                    tar.addfile(tar_entry(rel, mode=0o777, kind=tarfile.SYMTYPE, link=os.readlink(path)))
                elif os.path.isdir(path):
                    tar.addfile(tar_entry(rel + "/", mode=mode, kind=tarfile.DIRTYPE))
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        tar.addfile(tar_entry(rel, size=st.st_size, mode=mode), f)
                else:
                    sys.exit(f"oci.py: {path} is neither a file, a directory nor a symlink")
    return out.getvalue()


def gzip_bytes(data):
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return out.getvalue()


def blob(blobs, data, media_type, **extra):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}


def pairs(items):
    return dict(item.split("=", 1) for item in items)


def architecture():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def pack(args):
    tar = layer_tar(args.rootfs)
    blobs = {}
    layer = blob(blobs, gzip_bytes(tar), LAYER)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch()))
    config = {
        "created": created,
        "architecture": architecture(),
        "os": "linux",
        "config": {
            "User": args.user,
            "Entrypoint": [args.entrypoint],
            "Env": args.env,
            "WorkingDir": args.workdir,
            "Labels": pairs(args.label),
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        "history": [{"created": created, "created_by": "deploy/image.sh"}],
    }
    config_desc = blob(blobs, canonical(config), CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config_desc, "layers": [layer]}
    platform_desc = {"architecture": config["architecture"], "os": "linux"}
    manifest_desc = blob(blobs, canonical(manifest), MANIFEST, platform=platform_desc, annotations={REF_NAME: args.ref})
    index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": [manifest_desc]}
    files = {"oci-layout": canonical({"imageLayoutVersion": "1.0.0"}), "index.json": canonical(index)}
    for digest, data in blobs.items():
        files["blobs/sha256/" + digest.split(":", 1)[1]] = data
    write_archive(args.out, files)
    print(manifest_desc["digest"])


def write_archive(out, files):
    tmp = out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs/", "blobs/sha256/"):
            tar.addfile(tar_entry(d, mode=0o755, kind=tarfile.DIRTYPE))
        for name in sorted(files):
            tar.addfile(tar_entry(name, size=len(files[name])), io.BytesIO(files[name]))
    os.replace(tmp, out)


class Layout:
    """An OCI image layout, as a directory or an archive of one."""

    def __init__(self, path):
        self.path = path
        self.tar = None if os.path.isdir(path) else tarfile.open(path)

    def read(self, name):
        if self.tar is None:
            with open(os.path.join(self.path, name), "rb") as f:
                return f.read()
        member = self.tar.extractfile(name)
        if member is None:
            sys.exit(f"oci.py: {self.path} has no file {name}")
        return member.read()

    def blob(self, desc):
        data = self.read("blobs/" + desc["digest"].replace(":", "/", 1))
        if "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
            sys.exit(f"oci.py: blob {desc['digest']} of {self.path} does not match its digest")
        return data

    def manifest_desc(self):
        manifests = json.loads(self.read("index.json"))["manifests"]
        if len(manifests) != 1:
            sys.exit(f"oci.py: {self.path} holds {len(manifests)} manifests; one is expected")
        return manifests[0]


def safe_name(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        sys.exit(f"oci.py: layer entry {name} leaves the root")
    return "/".join(parts)


def apply_layer(data, rootfs):
    """Extracts one layer tar into rootfs, honouring whiteouts (.wh.NAME, .wh..wh..opq)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            name = safe_name(member.name)
            if not name:
                continue
            parent, base = os.path.split(name)
            if base == ".wh..wh..opq":
                target = os.path.join(rootfs, parent)
                for entry in os.listdir(target) if os.path.isdir(target) else []:
                    remove(os.path.join(target, entry))
            elif base.startswith(".wh."):
                remove(os.path.join(rootfs, parent, base[4:]))
            else:
                member.name = name
                if member.islnk():
                    member.linkname = safe_name(member.linkname)
                if not member.isdir():
                    remove(os.path.join(rootfs, name))
                tar.extract(member, rootfs, numeric_owner=True, **EXTRACT_FILTER)


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def unpack(args):
    if os.path.isfile(os.path.join(args.image, "config.json")) and os.path.isdir(os.path.join(args.image, "rootfs")):
        print(os.path.abspath(args.image))
        return
    layout = Layout(args.image)
    desc = layout.manifest_desc()
    dest = os.path.abspath(args.dest)
    if bundle_digest(dest) == desc["digest"]:
        print(dest)
        return
    manifest = json.loads(layout.blob(desc))
    parent = os.path.dirname(dest) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    rootfs = os.path.join(tmp, "rootfs")
    os.mkdir(rootfs)
    for layer in manifest["layers"]:
        apply_layer(gzip.decompress(layout.blob(layer)), rootfs)
    os.chmod(rootfs, 0o755)
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "config.json"), "wb") as f:
        f.write(layout.blob(manifest["config"]))
    with open(os.path.join(tmp, "digest"), "w") as f:
        f.write(desc["digest"] + "\n")
    if os.path.lexists(dest) and bundle_digest(dest) != desc["digest"]:
        shutil.rmtree(dest, ignore_errors=True)  # a bundle of another image, or a broken one
    try:
        os.rename(tmp, dest)
    except OSError:
        shutil.rmtree(tmp)  # another caller unpacked the same image first
    print(dest)


def bundle_digest(dest):
    try:
        with open(os.path.join(dest, "digest")) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--rootfs", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--ref", required=True)
    p.add_argument("--entrypoint", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--workdir", default="/")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--label", action="append", default=[])
    u = sub.add_parser("unpack")
    u.add_argument("image")
    u.add_argument("dest")
    for command in ("digest", "ref"):
        sub.add_parser(command).add_argument("image")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args)
    elif args.command == "unpack":
        unpack(args)
    elif args.command == "digest":
        print(Layout(args.image).manifest_desc()["digest"])
    else:
        print(Layout(args.image).manifest_desc().get("annotations", {}).get(REF_NAME, ""))


if __name__ == "__main__":
    main()
