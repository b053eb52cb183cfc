"""File changes -> the smallest action that applies them (the update ladder in DESIGN.md).

A save in the code folder (or a prompt flow's folder) is a worker swap; in the model folder, a
re-stage and a swap; in a YAML file, a restart; in the conda file, the Dockerfile, a flow's
requirements.txt or a no-code MLflow model's conda.yaml (when its content changed), a rebuild
(container runtime). A batch of changes takes the largest step any of
its files needs. Files that the code or model folder's ignore rules leave out (``devtui.ignore``)
trigger nothing: the cloud would not have them. What a prompt flow brings from outside its folder,
its ``additional_includes`` and the targets of its links, is watched where it lives (a folder as a
tree, a file in its folder alone) and a save of one is a swap, as a save in the flow folder is;
the runtime stages the flow again first where it serves a stage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import watchfiles

from ..ignore import IgnoreRules
from ..spec import LocalDeployment
from ..spec.flow_includes import includes_changed
from ..spec.mlflow_read import file_digest

# watchfiles yields a batch once a step passes with no new change, so one to two steps after a
# save. A save of code is the patch rung's whole critical path: its folders are watched with a
# short step (each step wakes the watcher, so idle cost grows as the step shrinks). Everything
# else (model, YAML, conda file, build context) starts work that takes seconds, and waits longer.
CODE_STEP_MS = 2
OTHER_STEP_MS = 50
# A file that is empty right after a change is most likely being written (an editor that
# truncates, then writes): the batch waits this long for the write before it is yielded.
EMPTY_SETTLE_S = 0.1


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


def classify(deployment: LocalDeployment, path: Path, rules: dict[Path, IgnoreRules] | None = None,
             connections: tuple[Path, ...] = ()) -> Action | None:
    """The action a change of ``path`` needs; None for a file that is not part of the deployment,
    or one the folder's ignore rules leave out (``rules``: folder -> its rules, read once per batch)."""
    path = path.resolve()
    if path in {deployment.deployment_file, deployment.endpoint_file} or _includes_changed(deployment, path):
        return Action.RESTART
    if _builds_the_image(deployment, path):
        return Action.REBUILD
    if _included(deployment, path) or path in connections:
        return Action.SWAP  # a connection file: the runtime sees it changed and swaps
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


def _builds_the_image(deployment: LocalDeployment, path: Path) -> bool:
    """Whether the container runtime builds the image from PATH (a change of it rebuilds)."""
    environment = deployment.environment
    return (path == environment.conda_file or _inside(path, environment.build_path)
            or _flow_requirements(deployment, path) or _mlflow_environment_changed(deployment, path))


def _mlflow_environment_changed(deployment: LocalDeployment, path: Path) -> bool:
    """A no-code MLflow model's conda.yaml, changed: the container runtime builds its image from it.
    MLflow saves a model by writing the whole folder, so a retrained model rewrites it too; unchanged,
    it is part of the model's save (a re-stage and a swap), not a rebuild."""
    mlflow = deployment.mlflow
    if mlflow is None or mlflow.environment_file is None or path != mlflow.environment_file.resolve():
        return False
    return file_digest(path) != mlflow.environment_digest


def _includes_changed(deployment: LocalDeployment, path: Path) -> bool:
    """A save of the flow file that changes its additional_includes: the deployment is read again
    (a restart), so the new includes are staged and watched."""
    flow = deployment.flow
    return flow is not None and path == (flow.folder / flow.flow_file).resolve() and includes_changed(flow)


def brought(deployment: LocalDeployment) -> list[tuple[Path, bool]]:
    """(where it lives, whether a folder) for what a flow brings from elsewhere: its includes, and
    what its links lead to (resolved, as a change is)."""
    flow = deployment.flow
    if flow is None:
        return []
    found = [(include.source, include.kind != "file") for include in flow.includes]
    return found + [(target, target.is_dir()) for target in (link.resolve() for link in flow.links)]


def _included(deployment: LocalDeployment, path: Path) -> bool:
    """Whether PATH is a file that the flow's includes or links bring (bytecode is not)."""
    if "__pycache__" in path.parts:
        return False
    return any(path == source or (folder and _inside(path, source)) for source, folder in brought(deployment))


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


@dataclass(frozen=True)
class Watch:
    """One watchfiles watcher: its folders, whether it goes into their subfolders, its step, and
    the folders inside them that a faster watcher covers."""

    paths: tuple[Path, ...]
    recursive: bool
    step_ms: int
    leave: tuple[Path, ...] = ()

    def wants(self, _change, name: str) -> bool:
        return not any(_inside(Path(name), folder) for folder in self.leave)


def watches(deployment: LocalDeployment, connections: tuple[Path, ...] = ()) -> list[Watch]:
    """The code (and a prompt flow's folder) on a fast watcher; the rest on slow ones."""
    trees, flat = roots(deployment)
    code = _code_folders(deployment)
    others = [t for t in trees if not any(_inside(t, c) for c in code)]
    found = [Watch(tuple(code), True, CODE_STEP_MS)] if code else []
    found += _brought_files(deployment, [*code, *trees], connections)
    if others:
        found.append(Watch(tuple(others), True, OTHER_STEP_MS, leave=tuple(code)))
    if flat:
        found.append(Watch(tuple(flat), False, OTHER_STEP_MS))
    return found


def _code_folders(deployment: LocalDeployment) -> list[Path]:
    """The code folder, a prompt flow's folder and the folders its includes and links bring."""
    flow = deployment.flow
    code = [p for p in (flow.folder if flow is not None else None, deployment.code_dir) if p]
    code += [source for source, folder in brought(deployment) if folder]
    return [c for c in dict.fromkeys(code) if not any(o != c and _inside(c, o) for o in code)]


def _brought_files(deployment: LocalDeployment, trees: list[Path], connections: tuple[Path, ...]) -> list[Watch]:
    """An included (or linked) file's folder, and a connection file's, alone: not what else is in it
    (a repository's top, say)."""
    files = [source for source, folder in brought(deployment) if not folder] + list(connections)
    folders = dict.fromkeys(file.parent for file in files)
    folders = [f for f in folders if not any(_inside(f, t) for t in trees)]
    return [Watch(tuple(folders), False, CODE_STEP_MS)] if folders else []


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


async def batches(deployment: LocalDeployment, stop: asyncio.Event,
                  connections: tuple[Path, ...] = ()) -> AsyncIterator[Batch]:
    """The changes that matter, as they come, until ``stop`` is set; ``connections``: a prompt
    flow's connection files (``--connections``), which a save applies as a swap."""
    connections = tuple(path.resolve() for path in connections)
    queue: asyncio.Queue[set] = asyncio.Queue()

    async def pump(watch: Watch) -> None:
        async for changes in watchfiles.awatch(*watch.paths, stop_event=stop, step=watch.step_ms, debounce=1600,
                                               recursive=watch.recursive, force_polling=None,
                                               watch_filter=watch.wants if watch.leave else None):
            queue.put_nowait(changes)

    pumps = [asyncio.create_task(pump(watch)) for watch in watches(deployment, connections)]
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
            while not queue.empty():  # two watchers may have seen the same save
                changes |= queue.get_nowait()
            actions = _actions(deployment, changes, connections)
            if any(_being_written(path) for path in actions):
                try:
                    changes |= await asyncio.wait_for(queue.get(), EMPTY_SETTLE_S)
                    actions = _actions(deployment, changes, connections)
                except TimeoutError:
                    pass  # it stays empty: that is the save
            if actions:
                yield Batch(max(actions.values()), tuple(sorted(actions)))
    finally:
        for task in (*pumps, stopped):
            task.cancel()


def _actions(deployment: LocalDeployment, changes: set, connections: tuple[Path, ...] = ()) -> dict[Path, Action]:
    actions = {}
    rules: dict[Path, IgnoreRules] = {}  # read once per batch: a save of .amlignore applies at once
    for _, name in changes:
        action = classify(deployment, Path(name), rules, connections)
        if action is not None:
            actions[Path(name)] = action
    return actions


def _being_written(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False
