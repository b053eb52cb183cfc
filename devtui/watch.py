"""File changes -> the smallest action that applies them (the update ladder in DESIGN.md).

A save in the code folder (or a prompt flow's folder) is a worker swap; in the model folder, a
re-stage and a swap; in a YAML file, a restart; in the conda file, the Dockerfile or a flow's
requirements.txt, a rebuild (container runtime). A batch of changes takes the largest step any of
its files needs. Files that the code or model folder's ignore rules leave out (``devtui.ignore``)
trigger nothing: the cloud would not have them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import watchfiles

from .ignore import IgnoreRules
from .spec import LocalDeployment

# watchfiles yields a batch once no change has come for this long. Editors save by writing a
# temporary file and renaming it within a millisecond or two, so 10 ms groups a save into one
# batch while keeping it out of the reload's critical path.
STEP_MS = 10


class Action(IntEnum):
    """Ordered: a larger action includes every smaller one."""

    SWAP = 1  # code changed: new worker from the warm parent
    RESTAGE = 2  # model changed: stage it again, then swap
    RESTART = 3  # deployment/endpoint YAML changed: restart the server
    REBUILD = 4  # environment changed: rebuild the image, then restart


@dataclass(frozen=True)
class Batch:
    action: Action
    files: tuple[Path, ...]


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def classify(deployment: LocalDeployment, path: Path, rules: dict[Path, IgnoreRules] | None = None) -> Action | None:
    """The action a change of ``path`` needs; None for a file that is not part of the deployment,
    or one the folder's ignore rules leave out (``rules``: folder -> its rules, read once per batch)."""
    path = path.resolve()
    if path in {deployment.deployment_file, deployment.endpoint_file}:
        return Action.RESTART
    environment = deployment.environment
    if path == environment.conda_file or _inside(path, environment.build_path) or _flow_requirements(deployment, path):
        return Action.REBUILD
    rules = {} if rules is None else rules
    # A prompt flow's folder is its model and its code: a save builds the flow again in a new worker.
    flow = deployment.flow.folder if deployment.flow is not None else None
    for folder, action in ((flow, Action.SWAP),
                           (deployment.model.path if deployment.model else None, Action.RESTAGE),
                           (deployment.code_dir, Action.SWAP)):
        if _inside(path, folder):
            if folder not in rules:
                rules[folder] = IgnoreRules(folder)
            return None if rules[folder].ignored(path) else action
    return None


def _flow_requirements(deployment: LocalDeployment, path: Path) -> bool:
    """A prompt flow's requirements.txt (or the one its flow file names): the container runtime
    installs it into the image, so a change rebuilds; the process runtime says it is not applied."""
    flow = deployment.flow
    if flow is None:
        return False
    if flow.requirements is not None:
        return path == flow.requirements
    # One created while devtui runs; only a deployed flow folder has one (not a single .prompty).
    return deployment.model is not None and deployment.model.path.is_dir() and path == flow.folder / "requirements.txt"


def roots(deployment: LocalDeployment) -> tuple[list[Path], list[Path]]:
    """Folders to watch recursively (code, model, build context) and the folders of single
    files (YAML, conda file), watched without their subfolders so a YAML at the top of a large
    repository does not mean watching all of it."""
    trees = [p for p in (deployment.code_dir, deployment.environment.build_path) if p]
    if deployment.model:
        trees.append(deployment.model.path if deployment.model.path.is_dir() else deployment.model.path.parent)
    files = [p.parent for p in (deployment.deployment_file, deployment.endpoint_file,
                                deployment.environment.conda_file) if p]
    trees = [t for t in dict.fromkeys(trees) if not any(o != t and o in t.parents for o in trees)]
    files = [f for f in dict.fromkeys(files) if not any(_inside(f, t) for t in trees)]
    return trees, files


async def batches(deployment: LocalDeployment, stop: asyncio.Event) -> AsyncIterator[Batch]:
    """The changes that matter, as they come, until ``stop`` is set."""
    trees, flat = roots(deployment)
    queue: asyncio.Queue[set] = asyncio.Queue()

    async def pump(paths: list[Path], recursive: bool) -> None:
        async for changes in watchfiles.awatch(*paths, stop_event=stop, step=STEP_MS, recursive=recursive,
                                               debounce=1600, force_polling=None):
            queue.put_nowait(changes)

    pumps = [asyncio.create_task(pump(trees, True))] if trees else []
    if flat:
        pumps.append(asyncio.create_task(pump(flat, False)))
    stopped = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, stopped, *pumps}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                for task in done:
                    if task in pumps and task.exception():
                        raise task.exception()
                continue
            changes = getter.result()
            while not queue.empty():  # both watchers may have seen the same save
                changes |= queue.get_nowait()
            actions = {}
            rules: dict[Path, IgnoreRules] = {}  # read once per batch: a save of .amlignore applies at once
            for _, name in changes:
                action = classify(deployment, Path(name), rules)
                if action is not None:
                    actions[Path(name)] = action
            if actions:
                yield Batch(max(actions.values()), tuple(sorted(actions)))
    finally:
        for task in (*pumps, stopped):
            task.cancel()
