"""A Docker engine of a test's own: a second dockerd with its own socket, data and exec roots, pid
file and containerd namespace, in a network namespace of its own, so that a test can stop and
restart an engine without touching the one the machine (and every other test run) shares.

Why a network namespace: two engines in one would share the host's routes, bridges and
netfilter rules. Each hands out the same subnets (172.17.0.0/16 first) unless told otherwise,
and dockerd, when it restarts with ``--default-address-pool`` (or starts with ``--bridge=none``),
deletes the interface named docker0, whoever's it is. In a namespace of its own the engine has
its own docker0, iptables and loopback; its published ports are on that namespace's 127.0.0.1,
so the devtui processes that talk to them run there too (``cli`` says how). Nothing there
reaches the package index: images the test needs are loaded from the machine's engine.

Everything it made is found by what it made (its pid, folder and namespace), never by a
pattern another run could match. It needs root, dockerd, iproute2 and nsenter.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from helpers import Timeout, pid_alive, wait_for

START_TIMEOUT = 60
STOP_TIMEOUT = 60  # dockerd gives running containers 15 s to stop before it kills them


def missing_prerequisite() -> str | None:
    """Why no engine of our own can start here, or None if it can."""
    if os.geteuid() != 0:
        return "starting a Docker engine of the test's own needs root"
    for program in ("dockerd", "ip", "nsenter"):
        if shutil.which(program) is None:
            return f"starting a Docker engine of the test's own needs {program}, which is not on the PATH"
    return None


class PrivateEngine:
    """``start()`` it, reach it through ``host`` (a DOCKER_HOST value) or ``client()``, run
    devtui against it with ``cli``, ``stop()`` and ``start()`` it again as the test needs, and
    ``close()`` it: the daemon, its containers, folder and namespace are gone afterwards."""

    def __init__(self, run_id: str):
        # Short: unix socket paths (ours, and containerd's under the exec root) have ~100 bytes.
        self.folder = Path(tempfile.mkdtemp(prefix=f"{run_id}-", dir="/tmp"))
        self.socket = self.folder / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log_path = self.folder / "dockerd.log"
        # containerd refuses a namespace with "_" (mkdtemp's random part may have one).
        self.namespace = self.folder.name.replace("_", "x")
        self.netns = Path("/run/netns") / self.namespace
        self.enter = ["nsenter", f"--net={self.netns}"]
        self.process: subprocess.Popen | None = None

    @property
    def cli(self) -> dict:
        """helpers.devtui's options for a devtui that uses this engine."""
        return {"env": {"DOCKER_HOST": self.host}, "inside": self.enter}

    def client(self):
        import docker

        return docker.DockerClient(base_url=self.host, timeout=120)

    # -- the daemon ------------------------------------------------------------------------------

    def command(self) -> list[str]:
        config = self.folder / "daemon.json"
        config.write_text("{}\n")  # not the machine's /etc/docker/daemon.json
        return [*self.enter, "dockerd", "--config-file", str(config), "-H", self.host,
                "--data-root", str(self.folder / "data"), "--exec-root", str(self.folder / "exec"),
                "--pidfile", str(self.folder / "docker.pid"),
                "--containerd-namespace", self.namespace, "--containerd-plugins-namespace", f"{self.namespace}-plugins"]

    def start(self) -> None:
        if not self.netns.exists():
            subprocess.run(["ip", "netns", "add", self.namespace], check=True, capture_output=True)
            subprocess.run([*self.enter, "ip", "link", "set", "lo", "up"], check=True, capture_output=True)
        with open(self.log_path, "ab") as log:
            # nsenter execs dockerd: this pid is the daemon's.
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

        def answers():
            if self.process.poll() is not None:
                return "exited"
            try:
                client = self.client()  # asks the engine for its API version: fails until it answers
            except Exception:
                return False
            try:
                return client.ping()
            except Exception:
                return False
            finally:
                client.close()

        try:
            state = wait_for(answers, timeout=START_TIMEOUT, interval=0.2, message=f"the test's dockerd at {self.host}")
        except Timeout as ex:
            raise Timeout(f"{ex}\n{self.log_tail()}") from None
        if state == "exited":
            raise AssertionError(f"the test's dockerd exited with code {self.process.returncode}:\n{self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM to our dockerd, as a service manager stops it; SIGKILL if it hangs."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def load(self, source, *images: str) -> None:
        """Copy ``images`` from the ``source`` engine (a docker client) into this one. Their ids
        stay the same, so what devtui derives from an id (its environment image's tag) does too."""
        client = self.client()
        try:
            for image in images:
                original = source.images.get(image)
                # Saved under the tag asked for: named=True would take the image's first tag, which
                # on a machine where the image has another tag too is not the one asked for.
                client.images.load(original.save(named=image if image in original.tags else True))
                assert client.images.get(image).id == original.id, image
        finally:
            client.close()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no dockerd log)"
        return "\n".join([line for line in text if "module=grpc" not in line][-lines:])

    # -- teardown --------------------------------------------------------------------------------

    def _our_processes(self) -> list[int]:
        """Processes our daemon left: those in our network namespace (containerd, the userland
        proxies) and those whose command line names our folder (the containers' shims)."""
        try:
            ours = os.stat(self.netns)
        except OSError:
            ours = None
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                namespace = os.stat(f"/proc/{entry}/ns/net")
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            inside = ours is not None and (namespace.st_dev, namespace.st_ino) == (ours.st_dev, ours.st_ino)
            if inside or str(self.folder) in cmdline:
                found.append(int(entry))
        return found

    def _our_mounts(self) -> list[str]:
        mounts = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == str(self.folder) or point.startswith(f"{self.folder}/"):
                    mounts.append(point)
        return mounts

    def close(self) -> None:
        """Stop the daemon and remove everything it had: processes, mounts, folder, namespace."""
        try:
            self.stop()
            for pid in self._our_processes():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_for(lambda: not any(pid_alive(pid) for pid in self._our_processes()), timeout=30,
                     message="the test dockerd's processes to end")
            for point in sorted(self._our_mounts(), key=len, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True)
            shutil.rmtree(self.folder, ignore_errors=True)
        finally:
            if self.netns.exists():  # its interfaces (docker0, bridges, veths) go with it
                subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)
