"""Flows that share code (issue 24): a flow whose ``additional_includes`` pull another flow's files is
served with no build step, staged as `pf flow build` lays it out, and its includes are watched where
they live. The shape of prompt flow's ``flow-with-additional-includes`` example, from this test's own
files: ``web-classification`` (a flow of its own) and ``with-includes``, which includes its
``convert_to_dict.py`` (a file) and its ``labels`` folder (a package); and, for the model call, a
shared tool with its prompt folder calling a stand-in OpenAI server (``openai_stand_in``) through a
``--connections`` file. (An ``llm`` node itself needs promptflow-tools, which needs the whole
promptflow devkit: not part of devtui's flow extra.)

The reference is prompt flow's own serving app on the folder `pf flow build` would produce (built
here: the flow folder, each file include under its name, each folder include with its contents, and
``additional_includes`` dropped from the flow file, as the build does). The real scoring server in
the process runtime, a real debug client, and the CLI as a user runs it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from dap import DebugClient, local_variables, stopped_frame
from devtui import spec
from devtui.engine import Engine, Launch
from devtui.engine.watch import CODE_STEP_MS, Action, classify, watches
from devtui.events import SUCCEEDED, Logs, ReloadFinished, ReloadStarted
from flow_reference import start_flow_reference
from helpers import async_wait_for, devtui, free_port, new_run_id, save, show, unique_name, wait_for
from openai_stand_in import OpenAIStandIn

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                 reason="promptflow-core is not installed (pip install -e '.[flow]')")]

CONVERT = """\
from promptflow.core import tool


@tool
def convert_to_dict(text: str) -> dict:
    category, _, evidence = text.partition(": ")
    return {"category": category, "evidence": evidence}
"""
CATEGORIES = 'CATEGORIES = {"shop": "Shopping", "news": "News"}\n'
CLASSIFY = """\
from promptflow.core import tool

from labels.categories import CATEGORIES


@tool
def classify(url: str) -> str:
    kind = next((name for key, name in CATEGORIES.items() if key in url), "Other")
    return f"{kind}: {url}"
"""
# web-classification's own flow: the files the other flow includes are its nodes' too.
SHARED_FLOW = """\
inputs:
  text:
    type: string
outputs:
  category:
    type: string
    reference: ${convert.output.category}
nodes:
- name: convert
  type: python
  source:
    type: code
    path: convert_to_dict.py
  inputs:
    text: ${inputs.text}
"""
INCLUDES = """\
additional_includes:
- ../web-classification/convert_to_dict.py
- ../web-classification/labels
"""
FLOW = """\
inputs:
  url:
    type: string
    default: https://news.example.com/today
outputs:
  category:
    type: string
    reference: ${convert.output.category}
  evidence:
    type: string
    reference: ${convert.output.evidence}
nodes:
- name: classify
  type: python
  source:
    type: code
    path: classify.py
  inputs:
    url: ${inputs.url}
- name: convert
  type: python
  source:
    type: code
    path: convert_to_dict.py
  inputs:
    text: ${classify.output}
"""
DEPLOYMENT = """\
name: blue
endpoint_name: with-includes
model:
  path: ./with-includes
environment:
  image: mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest
"""
SHOP = {"url": "https://shop.example.com/cart"}


def two_flows(root: Path, includes: str = INCLUDES) -> Path:
    """web-classification and with-includes side by side, and the deployment of the second."""
    shared = root / "web-classification"
    (shared / "labels").mkdir(parents=True)
    (shared / "flow.dag.yaml").write_text(SHARED_FLOW)
    (shared / "convert_to_dict.py").write_text(CONVERT)
    (shared / "labels" / "categories.py").write_text(CATEGORIES)
    flow = root / "with-includes"
    flow.mkdir()
    (flow / "flow.dag.yaml").write_text(includes + FLOW)
    (flow / "classify.py").write_text(CLASSIFY)
    (root / "deployment.yml").write_text(DEPLOYMENT)
    return root


def pf_flow_build(flow: Path, into: Path) -> Path:
    """The flow folder as `pf flow build` lays it out: its files, each include copied in (a file
    under its name, a folder with its contents), and additional_includes gone from the flow file."""
    built = into / flow.name
    shutil.copytree(flow, built)
    document = yaml.safe_load((flow / "flow.dag.yaml").read_text())
    for entry in document.pop("additional_includes"):
        source = (flow / entry).resolve()
        if source.is_dir():
            shutil.copytree(source, built / source.name, dirs_exist_ok=True)
        else:
            shutil.copy2(source, built / source.name)
    (built / "flow.dag.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return built


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


class Running:
    """The engine on the deployment, in this process, with what it reported."""

    def __init__(self, root: Path, tmp: Path, connections: tuple[Path, ...] = ()):
        self.engine = Engine(spec.load(root / "deployment.yml"), tmp / "work", Launch(port=0, connections=connections))
        self.events: list = []
        self.engine.subscribe(self.events.append)

    def lines(self) -> list[str]:
        return [record.text for event in self.events if isinstance(event, Logs) for record in event.records]

    def finished(self) -> list[ReloadFinished]:
        return [event for event in self.events if isinstance(event, ReloadFinished)]

    async def answer(self, body: dict) -> dict:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(self.engine.scoring_uri, json=body)
            assert response.status_code == 200, response.text
            return response.json()

    async def save(self, path: Path, text: str) -> ReloadFinished:
        count = len(self.finished())
        save(path, text)
        await async_wait_for(lambda: len(self.finished()) > count, 60, message=f"the save of {path} to be applied")
        return self.finished()[-1]


async def test_served_as_prompt_flow_serves_its_build_and_the_users_folders_are_left_alone(tmp_path):
    root = two_flows(tmp_path / "repo")
    before = tree(root)
    reference = start_flow_reference(pf_flow_build(root / "with-includes", tmp_path / "built"), tmp_path)
    running = Running(root, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        for body in (SHOP, {}):
            expected = httpx.post(f"{reference.url}/score", json=body, timeout=30)
            assert expected.status_code == 200, expected.text
            assert await running.answer(body) == expected.json()
        assert await running.answer(SHOP) == {"category": "Shopping", "evidence": SHOP["url"]}
        lines = "\n".join(running.lines())
        assert f"additional include convert_to_dict.py <- {root / 'web-classification' / 'convert_to_dict.py'}" in lines
        assert f"additional include labels <- {root / 'web-classification' / 'labels'}" in lines
    finally:
        await running.engine.stop()
        reference.stop()
    assert tree(root) == before  # nothing written into either flow (no .promptflow/, no __pycache__)


SUMMARIZE = """\
from pathlib import Path

from openai import OpenAI
from promptflow.connections import CustomConnection
from promptflow.core import tool

# Beside this file once staged: the prompts folder is an include too.
PROMPT = Path(__file__).with_name("prompts") / "summarize.txt"


@tool
def summarize(url: str, conn: CustomConnection) -> str:
    client = OpenAI(base_url=conn.configs["api_base"], api_key=conn.secrets["api_key"])
    prompt = PROMPT.read_text().format(url=url)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
    return reply.choices[0].message.content
"""
LLM_FLOW = """\
additional_includes:
- ../web-classification/summarize.py
- ../web-classification/prompts
inputs:
  url:
    type: string
outputs:
  summary:
    type: string
    reference: ${summarize.output}
nodes:
- name: summarize
  type: python
  source:
    type: code
    path: summarize.py
  inputs:
    url: ${inputs.url}
    conn: openai_conn
"""


async def test_a_shared_model_call_with_its_prompt_answers_as_prompt_flow_serves_its_build(tmp_path):
    """The example's shape with its model call: the shared tool and its prompt (a folder) come from
    web-classification, the call goes to a stand-in OpenAI server through a connection file."""
    root = two_flows(tmp_path / "repo")
    shared = root / "web-classification"
    (shared / "summarize.py").write_text(SUMMARIZE)
    (shared / "prompts").mkdir()
    (shared / "prompts" / "summarize.txt").write_text("Summarize {url} in one word.")
    (root / "with-includes" / "flow.dag.yaml").write_text(LLM_FLOW)
    key = "sk-stand-in-0123456789"
    with OpenAIStandIn(key) as model:
        connection = {"name": "openai_conn", "type": "custom", "configs": {"api_base": model.base_url},
                      "secrets": {"api_key": key}}
        connection_file = tmp_path / "openai_conn.yaml"
        connection_file.write_text(yaml.safe_dump(connection))
        reference = start_flow_reference(pf_flow_build(root / "with-includes", tmp_path / "built"), tmp_path,
                                         connections=[connection])
        running = Running(root, tmp_path, (connection_file,))
        try:
            assert await running.engine.start() == SUCCEEDED
            expected = httpx.post(f"{reference.url}/score", json=SHOP, timeout=30)
            assert expected.status_code == 200, expected.text
            assert await running.answer(SHOP) == expected.json() == {
                "summary": f"stand-in says: Summarize {SHOP['url']} in one word."}
            assert [r["messages"][-1]["content"] for r in model.requests] == [
                f"Summarize {SHOP['url']} in one word."] * 2  # the reference's call, then devtui's

            finished = await running.save(shared / "prompts" / "summarize.txt", "Name {url}'s topic.")
            assert finished.ok, finished
            assert await running.answer(SHOP) == {"summary": f"stand-in says: Name {SHOP['url']}'s topic."}
            assert key not in "\n".join(running.lines())
        finally:
            await running.engine.stop()
            reference.stop()


async def test_an_edit_of_an_included_file_or_folder_is_staged_served_and_named(tmp_path):
    root = two_flows(tmp_path / "repo")
    shared = root / "web-classification"
    running = Running(root, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        assert (await running.answer(SHOP))["category"] == "Shopping"

        finished = await running.save(shared / "convert_to_dict.py", CONVERT.replace('"category": category',
                                                                                     '"category": category.upper()'))
        assert finished.ok and finished.rung == "swap", finished
        assert (await running.answer(SHOP))["category"] == "SHOPPING"
        started = [e for e in running.events if isinstance(e, ReloadStarted)][-1]
        assert str(shared / "convert_to_dict.py") in started.files
        assert any(f"convert_to_dict.py <- {shared / 'convert_to_dict.py'}" in line for line in running.lines()
                   if line.startswith("Flow staged again")), running.lines()

        # A module inside an included folder: the new worker imports it afresh.
        finished = await running.save(shared / "labels" / "categories.py", CATEGORIES.replace("Shopping", "Retail"))
        assert finished.ok, finished
        assert (await running.answer(SHOP))["category"] == "RETAIL"
    finally:
        await running.engine.stop()


async def test_an_include_added_to_the_flow_file_is_staged_and_watched_from_then_on(tmp_path):
    """A save of flow.dag.yaml that changes additional_includes reads the deployment again (a restart):
    the new include is served, then a save of it is too. A later include wins over the flow's own
    file of the same name, as in prompt flow's copy."""
    root = two_flows(tmp_path / "repo", INCLUDES.replace("- ../web-classification/convert_to_dict.py\n", ""))
    shared = root / "web-classification" / "convert_to_dict.py"
    (root / "with-includes" / "convert_to_dict.py").write_text(CONVERT)
    save(shared, CONVERT.replace('"category": category', '"category": category.upper()'))
    running = Running(root, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        assert (await running.answer(SHOP))["category"] == "Shopping"

        async def category() -> str:
            try:
                return (await running.answer(SHOP))["category"]
            except (httpx.TransportError, AssertionError):
                return ""  # restarting

        save(root / "with-includes" / "flow.dag.yaml", INCLUDES + FLOW)
        await async_wait_for_async(category, "SHOPPING")
        save(shared, CONVERT.replace('"category": category', '"category": category.lower()'))
        await async_wait_for_async(category, "shopping")
    finally:
        await running.engine.stop()


async def test_an_include_removed_while_serving_is_said_and_the_last_good_flow_keeps_serving(tmp_path):
    root = two_flows(tmp_path / "repo")
    shared = root / "web-classification" / "convert_to_dict.py"
    running = Running(root, tmp_path)
    try:
        assert await running.engine.start() == SUCCEEDED
        shared.unlink()
        await async_wait_for(lambda: any("no longer exists" in line for line in running.lines()), 60,
                             message="the missing include to be said")
        line = next(line for line in running.lines() if "no longer exists" in line)
        assert f"{shared}, which additional_includes bring into the flow ('../web-classification/convert_to_dict.py'" \
               in line and "restore it, or remove the entry" in line, line
        assert (await running.answer(SHOP))["category"] == "Shopping"
    finally:
        await running.engine.stop()


async def async_wait_for_async(answer, expected: str, timeout: float = 60) -> None:
    """Poll the coroutine function ANSWER until it gives EXPECTED, up to the deadline."""
    seen: list[str] = []

    async def check() -> bool:
        seen.append(await answer())
        return seen[-1] == expected

    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"expected {expected!r}, last answers {seen[-5:]}"
        await asyncio.sleep(0.05)  # the poll's interval, with a deadline: not a wait for a state


def test_validate_lists_each_include_and_where_it_comes_from(tmp_path):
    root = two_flows(tmp_path)
    out = devtui("validate", str(root / "deployment.yml")).stdout
    assert f"includes:        convert_to_dict.py <- {root / 'web-classification' / 'convert_to_dict.py'} (file; " \
           "../web-classification/convert_to_dict.py)" in out, out
    assert f"labels <- {root / 'web-classification' / 'labels'} (folder; ../web-classification/labels)" in out, out


@pytest.mark.parametrize("entry, says", [
    ("../web-classification/missing.py", "'../web-classification/missing.py' not found: "),
    ("../web-classification/*.py", "'../web-classification/*.py' is a pattern; prompt flow copies each entry"),
])
@pytest.mark.parametrize("verb", ["validate", "up"])
def test_a_missing_include_or_a_glob_exits_2_naming_the_flow_file_line_and_entry(tmp_path, entry, says, verb):
    root = two_flows(tmp_path, INCLUDES + f"- {entry}\n")
    result = devtui(verb, str(root / "deployment.yml"), "-n", unique_name(new_run_id(), "badinclude"), check=2)
    flow_file = root / "with-includes" / "flow.dag.yaml"
    assert f"error: {flow_file}:4: additional_includes.2: {says}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_node_file_no_include_brings_names_the_includes(tmp_path):
    root = two_flows(tmp_path, INCLUDES.replace("- ../web-classification/convert_to_dict.py\n", ""))
    result = devtui("validate", str(root / "deployment.yml"), check=2)
    assert "node 'convert': " in result.stderr and "or to what additional_includes bring into it: labels" \
        in result.stderr, result.stderr


def test_includes_are_watched_where_they_live_and_a_save_of_one_is_a_swap(tmp_path):
    """A folder include as a tree on the fast watcher; a file include's folder alone (not the rest of
    web-classification's tree), and only that file in it counts."""
    root = two_flows(tmp_path)
    (root / "web-classification" / "convert_to_dict.py").rename(root / "convert_to_dict.py")
    (root / "with-includes" / "flow.dag.yaml").write_text(INCLUDES.replace("../web-classification/convert", "../convert")
                                                          + FLOW)
    deployment = spec.load(root / "deployment.yml")
    shared = root / "web-classification"
    assert classify(deployment, root / "convert_to_dict.py") == Action.SWAP
    assert classify(deployment, shared / "labels" / "categories.py") == Action.SWAP
    assert classify(deployment, shared / "labels" / "__pycache__" / "categories.cpython-311.pyc") is None
    assert classify(deployment, shared / "flow.dag.yaml") is None  # not included
    assert classify(deployment, root / "notes.txt") is None  # beside the included file
    fast = [(w.paths, w.recursive) for w in watches(deployment) if w.step_ms == CODE_STEP_MS]
    assert ((root / "with-includes", shared / "labels"), True) in fast
    assert ((root,), False) in fast


@pytest.mark.parametrize("runtime", ["process", "container"])
def test_a_breakpoint_in_an_included_file_hits_there(tmp_path, request, runtime):
    """launch.json maps the staged copy of each include to its source: VS Code sets the breakpoint
    in web-classification/convert_to_dict.py, and the stop is reported in that file."""
    if runtime == "container":
        request.getfixturevalue("docker_client")  # skips (or, under CI, fails) without an engine
    root = two_flows(tmp_path / "repo")
    configuration = debug_stop_in_shared_file(root, tmp_path, runtime)
    locals_ = {m["localRoot"] for m in configuration["pathMappings"]}
    assert str(root / "web-classification" / "labels") in locals_


def debug_stop_in_shared_file(root: Path, tmp_path: Path, runtime: str) -> dict:
    """`up --debug`, a real debug client attached with the configuration devtui wrote, a breakpoint
    in web-classification/convert_to_dict.py: a request stops there, shown in that file. Returns the
    configuration."""
    cwd = tmp_path / "workspace"
    cwd.mkdir()
    name = unique_name(new_run_id(), f"shareddebug{runtime[0]}")
    shared = root / "web-classification" / "convert_to_dict.py"
    line = CONVERT.splitlines().index('    return {"category": category, "evidence": evidence}') + 1
    devtui("up", str(root / "deployment.yml"), "-n", name, "--runtime", runtime, "--debug", "--debug-port",
           str(free_port()), "--detach", cwd=cwd, timeout=600)
    try:
        configuration = next(c for c in json.loads((cwd / ".vscode" / "launch.json").read_text())["configurations"]
                             if c["name"] == f"devtui: attach to {name}")
        client = DebugClient(configuration)
        try:
            client.set_breakpoints(str(shared), [line])
            child = client.next_child()
            wait_for(lambda: show(name, cwd=cwd)["deployments"][0]["debugger"]["state"] == "attached", timeout=30)
            answer: dict = {}
            thread = threading.Thread(target=lambda: answer.update(
                response=httpx.post(show(name, cwd=cwd)["scoring_uri"], json=SHOP, timeout=60)), daemon=True)
            thread.start()
            thread_id, frame = stopped_frame(child)
            assert Path(frame["source"]["path"]) == shared and frame["line"] == line
            assert local_variables(child, frame["id"])["category"] == "'Shopping'"
            child.request("continue", {"threadId": thread_id})
            thread.join(60)
            assert answer["response"].json() == {"category": "Shopping", "evidence": SHOP["url"]}
        finally:
            client.close()
    finally:
        devtui("down", "-n", name, cwd=cwd, check=None)
    return configuration


def test_launch_json_maps_each_include_before_the_flow_folder_entry_by_entry(tmp_path):
    """debugpy tries every folder mapping before any file mapping: with a file included, the flow
    folder is mapped entry by entry, or its folder mapping would claim the included file."""
    from devtui.runtimes import create

    root = two_flows(tmp_path)
    deployment = spec.load(root / "deployment.yml")
    runtime = create(deployment, Launch(), tmp_path / "work", None)
    stage, flow, shared = runtime.code_path, root / "with-includes", root / "web-classification"
    assert runtime.debug_mappings() == [
        (str(shared / "convert_to_dict.py"), f"{stage}/convert_to_dict.py"), (str(shared / "labels"), f"{stage}/labels"),
        (str(flow / "classify.py"), f"{stage}/classify.py"), (str(flow / "flow.dag.yaml"), f"{stage}/flow.dag.yaml")]
    assert stage == str(tmp_path / "work" / "azureml-models" / "blue-model" / "1" / "with-includes")
    container = create(deployment, Launch(runtime="container"), tmp_path / "work", None)
    assert container.debug_mappings()[0] == (str(shared / "convert_to_dict.py"),
                                              "/var/azureml-app/azureml-models/blue-model/1/with-includes/convert_to_dict.py")


def test_in_containers_the_stage_is_what_the_storage_initializer_copies_and_a_save_syncs(tmp_path, endpoint):
    """The container runtime serves the same stage: the storage-initializer copies it into the model
    volume (the included files under the flow folder), and a save of an included file is staged and
    synced into the running container."""
    root = two_flows(tmp_path / "repo")
    before = tree(root)
    name = endpoint("fc-includes")
    reference = start_flow_reference(pf_flow_build(root / "with-includes", tmp_path / "built"), tmp_path)
    try:
        devtui("up", str(root / "deployment.yml"), "--runtime", "container", "--detach", "-n", name, timeout=600)
        url = show(name)["scoring_uri"]
        assert httpx.post(url, json=SHOP, timeout=30).json() == httpx.post(f"{reference.url}/score", json=SHOP,
                                                                           timeout=30).json()
    finally:
        reference.stop()
    initializer = devtui("logs", "-n", name, "--container", "storage-initializer").stdout
    assert "blue-model/1/with-includes/convert_to_dict.py" in initializer, initializer
    assert "blue-model/1/with-includes/labels/categories.py" in initializer, initializer
    assert f"additional include convert_to_dict.py <- {root / 'web-classification' / 'convert_to_dict.py'}" \
        in initializer, initializer

    save(root / "web-classification" / "convert_to_dict.py",
         CONVERT.replace('"category": category', '"category": category.upper()'))
    wait_for(lambda: httpx.post(url, json=SHOP, timeout=30).json()["category"] == "SHOPPING", timeout=90,
             interval=0.2, message="the included file's save to be served in the container")
    assert {k: v for k, v in tree(root).items() if k != "web-classification/convert_to_dict.py"} == \
        {k: v for k, v in before.items() if k != "web-classification/convert_to_dict.py"}
