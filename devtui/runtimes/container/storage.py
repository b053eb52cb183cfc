"""The storage-initializer: model and code copied into named volumes through the Docker API (no
bind mounts, so a remote engine or the host's engine from a dev container works too), then a
short-lived container that verifies every file against a manifest, removes files no longer in
the source, logs what is there, and exits. Content already in a volume is not copied again.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from ...events import DEVTUI, STORAGE_INITIALIZER
from ...ignore import FolderTooDeep, kept_files
from ...registry import LABEL
from ..base import RuntimeFailure

MANIFEST = ".devtui-manifest.json"

# Runs in the storage-initializer: checks every file against the manifest devtui copied with
# it, removes files that are no longer in the source, and logs what is there.
VERIFY = r"""
import hashlib, json, os, sys
failed = False
SHOWN = 50  # files listed one by one; a large folder is summarised
for root in sys.argv[1:]:
    manifest = json.load(open(os.path.join(root, ".devtui-manifest.json")))
    expected = manifest["files"]
    for folder, _, names in os.walk(root, topdown=False):
        for name in names:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if relative != ".devtui-manifest.json" and relative not in expected:
                os.remove(path)
                print(f"removed {relative} (no longer in the source)")
        if folder != root and not os.listdir(folder):
            os.rmdir(folder)
    total = shown = 0
    for relative, (size, digest) in sorted(expected.items()):
        path = os.path.join(root, relative)
        actual = hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else "missing"
        total += size
        mark = "ok" if actual == digest else f"MISMATCH (got {actual[:12]})"
        failed |= actual != digest
        shown += 1
        if shown <= SHOWN or actual != digest:
            print(f"{manifest['kind']}: {relative} ({size} bytes) sha256:{digest[:12]} {mark}")
    if shown > SHOWN:
        print(f"{manifest['kind']}: ... and {shown - SHOWN} more files, all verified")
    print(f"{manifest['kind']}: {len(expected)} files, {total} bytes, digest sha256:{manifest['digest'][:16]} "
          f"in {root}")
print("storage-initializer: " + ("verification FAILED" if failed else "all files verified"))
sys.exit(1 if failed else 0)
"""


def manifest(source: Path, kind: str, prefix: PurePosixPath, digests: dict | None = None) -> dict:
    """Every file under ``source`` that the cloud would upload, as it will be in the volume:
    path -> (size, sha256).
    ``digests`` (path -> (size, mtime_ns, sha256)) spares reading files that did not change."""
    files = {}
    try:
        kept = kept_files(source)  # what the cloud would upload: .amlignore / .gitignore apply
    except FolderTooDeep as ex:
        raise RuntimeFailure(f"the {kind} folder {ex}") from None
    for path in kept:
        relative = prefix / (path.name if source.is_file() else path.relative_to(source).as_posix())
        files[str(relative)] = (path.stat().st_size, _digest(path, digests))
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"kind": kind, "files": files, "digest": digest}


def _digest(path: Path, digests: dict | None) -> str:
    stat = path.stat()
    known = digests.get(path) if digests is not None else None
    if known is not None and known[:2] == (stat.st_size, stat.st_mtime_ns):
        return known[2]
    value = hashlib.sha256(path.read_bytes()).hexdigest()
    if digests is not None:
        digests[path] = (stat.st_size, stat.st_mtime_ns, value)
    return value


def archive(source: Path, prefix: PurePosixPath, listing: dict, only: set[str] | None = None) -> bytes:
    """A tar of the listed files (or ``only`` those) and the manifest."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if source.is_file():
            tar.add(source, arcname=next(iter(listing["files"])))
        else:
            for relative in listing["files"]:
                if only is None or relative in only:
                    tar.add(source / PurePosixPath(relative).relative_to(prefix), arcname=relative)
        data = json.dumps(listing).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def archive_empty(listing: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = json.dumps(listing).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Storage:
    """An endpoint's model and code volumes, and the storage-initializer that fills them.

    ``prefix`` names the volumes and the container; ``labels(role)`` labels them; ``log`` and
    ``progress`` report under the storage-initializer's name."""

    def __init__(self, client, deployment, prefix: str, labels: Callable[[str], dict], code_mount: PurePosixPath,
                 models: PurePosixPath, log: Callable[[str, list[str]], None],
                 progress: Callable[[str, float, float], None]):
        self.client, self.deployment, self.prefix, self.labels = client, deployment, prefix, labels
        self.code_mount, self.models = code_mount, models
        self.log, self.progress = log, progress
        self.container = None
        self.listings: dict[str, dict] = {}  # kind -> what the last copy put in that volume
        self.digests: dict = {}  # path -> (size, mtime_ns, sha256): a save re-reads only what changed
        # Where the model's files are copied from, when not model.path: a flow's stage (staging.py).
        self.model_source: Path | None = None

    def volume(self, role: str) -> str:
        import docker.errors

        name = f"{self.prefix}-{role}"
        try:
            volume = self.client.volumes.get(name)
        except docker.errors.NotFound:
            self.client.volumes.create(name, labels=self.labels(f"{role}-volume"))
            return name
        home = self.labels(role)[f"{LABEL}.home"]
        if (volume.attrs.get("Labels") or {}).get(f"{LABEL}.home") not in (None, home):
            raise RuntimeFailure(f"a volume named {name} belongs to an endpoint of the same name started with "
                                 "another DEVTUI_HOME; run this one under another name with -n NAME")
        return name

    def volumes(self, code_mode: str = "rw", model_mode: str | None = None) -> dict:
        """The volumes as the containers mount them. A prompt flow's model is its code: a save is
        synced into it, and prompt flow writes into the folder it serves (``.promptflow/``)."""
        model_mode = model_mode or ("rw" if self.deployment.flow is not None else "ro")
        return {self.volume("model"): {"bind": str(self.models), "mode": model_mode},
                self.volume("code"): {"bind": str(self.code_mount), "mode": code_mode}}

    def initialize(self, image: str, remove: Callable[[str], None]) -> None:
        """Copy what changed into the volumes, then run the verifier to the end."""
        d = self.deployment
        name = f"{self.prefix}-storage-initializer"
        remove(name)
        roots = [str(self.models)] + ([str(self.code_mount)] if d.code_dir else [])
        # No network: it only reads what devtui copied in.
        container = self.container = self.client.containers.create(
            image, ["python", "-c", VERIFY, *roots], entrypoint=[], name=name,
            labels=self.labels("storage-initializer"), volumes=self.volumes(code_mode="rw", model_mode="rw"),
            network_mode="none")
        for kind, source, target, prefix in self._copies():
            self._copy(container, kind, source, target, prefix)
        container.start()
        result = container.wait()
        self.log(STORAGE_INITIALIZER, container.logs().decode("utf-8", "replace").splitlines())
        if result.get("StatusCode") != 0:
            raise RuntimeFailure(f"the storage-initializer exited with code {result.get('StatusCode')}; "
                                 "its log says why")

    def _copies(self) -> list[tuple[str, Path | None, PurePosixPath, PurePosixPath]]:
        d = self.deployment
        if d.model:
            # AZUREML_MODEL_DIR holds the model folder under its own name (or the single file).
            prefix = PurePosixPath(d.model.name) / d.model.version
            if d.model.path.is_dir():
                prefix /= d.model.path.name
            copies = [("model", self.model_source or d.model.path, self.models, prefix)]
        else:
            copies = [("model", None, self.models, PurePosixPath("."))]
        if d.code_dir:
            copies.append(("code", d.code_dir, self.code_mount, PurePosixPath(".")))
        return copies

    def _copy(self, container, kind: str, source: Path | None, target: PurePosixPath, prefix: PurePosixPath) -> None:
        listing = (manifest(source, kind, prefix, self.digests) if source
                   else {"kind": kind, "files": {}, "digest": "empty"})
        self.listings[kind] = listing
        if self._present_digest(container, target) == listing["digest"]:
            self.log(STORAGE_INITIALIZER, [f"{kind}: unchanged (digest sha256:{listing['digest'][:16]}), "
                                           "not copied again"])
            return
        size = sum(s for s, _ in listing["files"].values())
        self.log(STORAGE_INITIALIZER, [f"{kind}: copying {len(listing['files'])} files ({size} bytes) "
                                       f"from {source} into volume {self.prefix}-{kind} at {target}"])
        self.progress(f"Copying {kind}", 0, size or 1)
        data = archive(source, prefix, listing) if source else archive_empty(listing)
        container.put_archive(str(target), data)
        self.progress(f"Copying {kind}", size or 1, size or 1)

    @staticmethod
    def _present_digest(container, target: PurePosixPath) -> str | None:
        try:
            stream, _ = container.get_archive(str(target / MANIFEST))
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                member = tar.getmembers()[0]
                return json.loads(tar.extractfile(member).read())["digest"]
        except Exception:  # no manifest yet (a new volume), or an unreadable one: copy
            return None

    def synced(self) -> tuple[str, Path, PurePosixPath, PurePosixPath] | None:
        """What a save changes in the running container: the code folder; for a prompt flow, the
        flow folder, which is the model. (kind, source, where its volume is mounted, prefix in it)."""
        kind = "model" if self.deployment.flow is not None else "code"
        return next((copy for copy in self._copies() if copy[0] == kind and copy[1] is not None), None)

    def sync(self, server) -> None:
        """Copy what changed in the code folder (a flow's folder) into the running container,
        through the API; files deleted since the last copy are deleted there too. Says what in one line."""
        copy = self.synced()
        if copy is None:
            return
        kind, source, target, prefix = copy
        listing = manifest(source, kind, prefix, self.digests)
        previous = self.listings[kind]["files"] if kind in self.listings else {}
        changed = {name for name, entry in listing["files"].items() if previous.get(name) != entry}
        removed = sorted(set(previous) - set(listing["files"]))
        self.listings[kind] = listing
        if changed or removed:  # the archive carries the manifest, which a restart compares
            server.put_archive(str(target), archive(source, prefix, listing, only=changed))
        if removed:
            server.exec_run(["rm", "-f", *(str(target / name) for name in removed)])
        size = sum(listing["files"][name][0] for name in changed)
        what = "flow" if self.deployment.flow is not None else kind
        self.log(DEVTUI, [f"{what}: copied {len(changed)} changed file{'s' if len(changed) != 1 else ''} "
                          f"({size} bytes) into the container, removed {len(removed)}; "
                          f"{len(listing['files'])} files in all"])
