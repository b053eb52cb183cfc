"""Wheels for an image, resolved and downloaded on the host.

``pip download`` runs here, for the image's Python and platform, into a folder the image then
installs from with ``--no-index``: images build where containers cannot reach the package index,
and the host's pip cache serves what it already has. The wheel filenames in a folder are its pins,
the exact versions a layer was given; the next layer's download takes them as constraints
(``-c``), so it does not bring other versions of the packages below it (``images.py``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

# Newest first: pip takes the first platform a wheel matches.
MANYLINUX = (36, 34, 31, 28, 17)


class WheelError(Exception):
    """The wheels cannot be had; the message says why and what to do. ``missing``: the
    requirements that have no wheel for the image's Python and platform, where that is why."""

    def __init__(self, message: str, missing: list[str] | None = None):
        super().__init__(message)
        self.missing = missing or []


def canonical(name: str) -> str:
    """A project name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(folder: Path) -> dict[str, str]:
    """name -> version of every wheel in ``folder``, read from the filenames
    (``{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl``, PEP 427)."""
    found = {}
    for wheel in folder.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        found[canonical(name)] = version
    return found


def pin_lines(versions: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in sorted(versions.items())]


def platforms(arch: str) -> list[str]:
    return [f"manylinux_2_{n}_{arch}" for n in MANYLINUX] + [f"manylinux2014_{arch}", f"linux_{arch}"]


class DownloadFailed(Exception):
    """pip download exited non-zero; ``output`` is what it said."""

    def __init__(self, output: list[str]):
        super().__init__("\n".join(output[-15:]))
        self.output = output

    @property
    def missing(self) -> list[str]:
        """Requirements no wheel exists for (a misspelt name, a conda-only package)."""
        return re.findall(r"No matching distribution found for (\S+)", "\n".join(self.output))

    @property
    def conflicting_pins(self) -> list[str]:
        """The constraints pip named as part of a conflict: empty when the failure is not one."""
        if not any("ResolutionImpossible" in line for line in self.output):
            return []
        return sorted(set(re.findall(r"The user requested \(constraint\) (\S+)", "\n".join(self.output))))


class Wheelhouse:
    """Downloads the wheels of one image's layers for its Python and platform (``arch``, as
    manylinux names it), one ``pip download`` at a time; ``cancel()`` ends it. The download
    methods take ``source``, the user's file the requirements come from, which errors and
    warnings name (None: devtui's own), and ``conda``: whether it is a conda file, whose
    conda-only packages have no wheel."""

    def __init__(self, log: Callable[..., None], progress: Callable[[str, float, float], None]):
        self.log = log
        self.progress = progress
        self.process: subprocess.Popen | None = None
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def download(self, requirements: list[str], python: str, arch: str, dest: Path,
                 source: Path | None = None, conda: bool = False) -> None:
        """Resolve ``requirements`` and save their wheels in ``dest``."""
        try:
            self._fetch(requirements, python, arch, dest)
        except DownloadFailed as failure:
            raise self._error(failure, python, arch, source, conda) from None

    def download_under(self, pinned: dict[str, str], requirements: list[str], python: str, arch: str, dest: Path,
                       source: Path | None = None, conda: bool = False) -> None:
        """Like download(), with the versions of the layer below (``pinned``) as constraints, so
        its packages are not replaced. Requirements that cannot be met with those versions win
        (the cloud would install them too): downloaded again without constraints, and the log
        says which of the layer's packages they replace."""
        constraints = dest.parent / f"{dest.name}-constraints.txt"
        constraints.write_text("\n".join(pin_lines(pinned)) + "\n")
        try:
            self._fetch(requirements, python, arch, dest, constraints)
            return
        except DownloadFailed as failure:
            conflicting = failure.conflicting_pins
            if not conflicting:
                raise self._error(failure, python, arch, source, conda) from None
        shutil.rmtree(dest, ignore_errors=True)
        self.download(requirements, python, arch, dest, source, conda)
        replaced = [f"{name} {pinned[name]} with {version}" for name, version in sorted(pins(dest).items())
                    if pinned.get(name, version) != version]
        where = f"{source.name}: " if source else ""
        self.log(f"WARNING: {where}the requirements cannot be met with the versions devtui's scoring server was "
                 f"installed with ({', '.join(conflicting)}), so they were resolved without them: the image "
                 f"replaces {', '.join(replaced) or 'none of them'}. If the scoring server then fails to start, "
                 "loosen the requirement that needs another version.")

    def _fetch(self, requirements: list[str], python: str, arch: str, dest: Path,
               constraints: Path | None = None) -> None:
        if self.cancelled:
            raise DownloadFailed([])
        command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--progress-bar", "off",
                   "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   "--dest", str(dest)]
        for platform in platforms(arch):
            command += ["--platform", platform]
        if constraints is not None:
            command += ["-c", str(constraints)]
        under = " under the server layer's versions" if constraints else ""
        self.log(f"Downloading wheels for Python {python} on {arch}{under} (pip, on this machine)")
        self.progress("Downloading wheels", 0, 0)
        process = self.process = subprocess.Popen(command + requirements, stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True)
        output = []
        for line in process.stdout:
            output.append(line.rstrip())
            if line.startswith(("Collecting", "Saved", "ERROR")):
                self.log(f"  {line.rstrip()}")
        if process.wait() != 0:
            raise DownloadFailed(output)
        count = len(list(dest.glob("*.whl")))
        self.progress("Downloading wheels", count, count)
        self.log(f"  {count} wheels ready")

    def _error(self, failure: DownloadFailed, python: str, arch: str, source: Path | None,
               conda: bool) -> WheelError:
        if self.cancelled:
            return WheelError("the image build was cancelled")
        where = f"{source}: " if source else ""
        if failure.missing:
            hint = (" If it is a conda-only package, drop it or name its PyPI equivalent in the pip section."
                    if conda else " Check the name and the version.")
            return WheelError(f"{where}no wheel on PyPI for {', '.join(failure.missing)} (Python {python}, {arch})."
                              f"{hint}", failure.missing)
        return WheelError(f"{where}pip could not download the requirements:\n" + "\n".join(failure.output[-15:]))
