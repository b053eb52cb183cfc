"""Prompt flow deployments in the container runtime.

The first tests need no engine: which runtime a flow gets, what its server is told (``--flow``,
connections, the debugger's path mapping) and which saves rebuild. The rest run `devtui up
--runtime container` against the real Docker engine, as a user does: the flow-basic sample
answers exactly as prompt flow's own app (``flow_reference.FLOW_BASIC_ANSWER``), a save of a
node is applied in the same containers, a broken save keeps the last good revision serving, a
change of requirements.txt rebuilds the image, connection files reach the container, and a flow
on an image of the user's own runs as a bring-your-own container.

Every endpoint is named under this run's prefix (``run_id``) and taken down afterwards; nothing
labelled with it may remain. The stand-in for prompt flow's runtime image is shared by content
hash and cached between runs, as devtui's environment images are; an image a test built for a
requirements.txt of its own is removed with the test.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from devtui import runtimes, spec
from devtui.cli.views import LaunchConfig
from devtui.engine import DebugSettings, Engine, Launch
from devtui.events import SUCCEEDED, DebuggerChanged, Logs
from devtui.runtimes.container.flow_image import STAND_IN_LABEL, read_requirements
from devtui.runtimes.container.images import SERVER_LAYER_LABEL, ImageError
from devtui.engine.watch import Action, classify
from flow_reference import CONNECTED_FLOW, FLOW_BASIC_ANSWER, copy_sample
from helpers import async_wait_for, devtui, run_async, save, show, wait_for

pytestmark = pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                reason="promptflow-core is not installed (pip install -e '.[flow]')")

RUNTIME_IMAGE = "mcr.microsoft.com/azureml/promptflow/promptflow-runtime:latest"
FLOW_DIR = "/var/azureml-app/azureml-models/blue-model/1/flow"  # flow-basic's folder, in the container
REQUEST = {"text": "  hello   flow ", "count": 3}  # samples/flow-basic/sample-request.json


def runtime_for(folder: Path, tmp: Path, connections: tuple[Path, ...] = (), debug=None):
    deployment = spec.load(folder / "deployment.yml")
    return runtimes.create(deployment, Launch(runtime="container", debug=debug, connections=connections), tmp / "work",
                           None)


# -- without an engine --------------------------------------------------------------------------------


def test_a_flow_on_the_runtime_image_is_served_with_flow_from_its_staged_folder(tmp_path):
    folder = copy_sample("flow-basic", tmp_path)
    connection = tmp_path / "my_conn.yaml"
    connection.write_text("name: my_conn\ntype: custom\n")
    runtime = runtime_for(folder, tmp_path, (connection,))

    assert type(runtime.spec).__name__ == "FlowServer" and type(runtime.readiness).__name__ == "ServerEvents"
    assert str(runtime.spec.flow_dir) == FLOW_DIR and runtime.code_path == FLOW_DIR
    command = runtime.spec.container(runtime, 1)["command"]
    assert command[command.index("--flow") + 1] == FLOW_DIR
    environment = runtime.spec.environment(runtime)
    assert environment["DEVTUI_FLOW_CONNECTIONS"] == "/var/azureml-app/devtui-connections/0-my_conn.yaml"
    assert environment["AZUREML_MODEL_DIR"] == "/var/azureml-app/azureml-models/blue-model/1"
    assert "AML_APP_ROOT" not in environment


def test_the_debugger_maps_the_flow_folder_to_its_folder_in_the_container(tmp_path):
    folder = copy_sample("flow-basic", tmp_path)
    runtime = runtime_for(folder, tmp_path, debug=DebugSettings(5678, False, "127.0.0.1"))
    said = []
    engine = SimpleNamespace(placement=runtime.placement(), deployment=runtime.deployment,
                             log=lambda source, lines: said.extend(lines))
    LaunchConfig(engine, tmp_path)(DebuggerChanged(state="listening", host="127.0.0.1", port=5678))
    launch = json.loads((tmp_path / ".vscode" / "launch.json").read_text())
    mapping = launch["configurations"][0]["pathMappings"]
    assert mapping == [{"localRoot": str(folder / "flow"), "remoteRoot": FLOW_DIR}], (mapping, said)


def test_a_flow_on_an_image_of_its_own_is_still_a_bring_your_own_container(tmp_path):
    folder = copy_sample("flow-basic", tmp_path)
    (folder / "deployment.yml").write_text((folder / "deployment.yml").read_text().replace(
        RUNTIME_IMAGE, "myregistry.example/my-flow-server:1"))
    runtime = runtime_for(folder, tmp_path)
    assert type(runtime.spec).__name__ == "OwnImage" and type(runtime.readiness).__name__ == "Probes"


def test_requirements_txt_rebuilds_and_the_flows_files_swap(tmp_path):
    folder = copy_sample("flow-basic", tmp_path)
    deployment = spec.load(folder / "deployment.yml")
    flow = folder / "flow"
    assert classify(deployment, flow / "requirements.txt") == Action.REBUILD
    for name in ("repeat.py", "flow.dag.yaml", "samples.json"):
        assert classify(deployment, flow / name) == Action.SWAP, name
    assert classify(deployment, flow / ".promptflow" / "flow.json") is None

    # A flow without one: a requirements.txt created while devtui runs rebuilds too.
    (flow / "requirements.txt").unlink()
    deployment = spec.load(folder / "deployment.yml")
    assert deployment.flow.requirements is None
    assert classify(deployment, flow / "requirements.txt") == Action.REBUILD


def test_the_process_runtime_notes_a_requirements_change_and_keeps_serving(tmp_path):
    folder = copy_sample("flow-basic", tmp_path)

    async def scenario():
        engine = Engine(spec.load(folder / "deployment.yml"), tmp_path / "work", Launch(port=0))
        lines: list[str] = []
        engine.subscribe(lambda event: lines.extend(r.text for r in event.records) if isinstance(event, Logs) else None)
        try:
            assert await engine.start() == SUCCEEDED
            revision = engine.serving_revision
            save(folder / "flow" / "requirements.txt", "more-itertools\n")
            await async_wait_for(lambda: any("environment is not rebuilt" in line for line in lines), timeout=30,
                                 message="the process runtime's note")
            assert any("requirements.txt" in line and "not rebuilt" in line for line in lines), lines[-5:]
            assert engine.serving_revision == revision  # nothing restarted
        finally:
            await engine.stop()

    run_async(scenario())


def test_requirement_lines_are_read_and_pip_options_refused_with_their_line(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# a comment\n\nsix==1.16.0  # pinned\nidna; python_version >= '3'\n")
    assert read_requirements(requirements) == ["six==1.16.0", "idna; python_version >= '3'"]
    requirements.write_text("six\n--extra-index-url https://example.org/simple\n")
    with pytest.raises(ImageError, match=r"requirements.txt:2: `--extra-index-url"):
        read_requirements(requirements)


# -- against the Docker engine --------------------------------------------------------------------------


def up(folder: Path, name: str, *extra: str, check: int = 0) -> dict:
    result = devtui("up", str(folder), "--runtime", "container", "--detach", "-n", name, *extra, check=check,
                    timeout=600)
    return json.loads(result.stdout) if check == 0 else {}


def score(name: str, body: dict, path: str = "") -> httpx.Response | None:
    uri = show(name)["scoring_uri"]
    if not uri:
        return None
    try:
        return httpx.post(uri.removesuffix("/score") + (path or "/score"), json=body, timeout=30)
    except httpx.TransportError:
        return None


def answers(name: str, body: dict, predicate, timeout: float = 90) -> dict:
    """The first 200 answer that satisfies ``predicate``, polled until the deadline."""
    def answer():
        response = score(name, body)
        return response.json() if response is not None and response.status_code == 200 else None

    return wait_for(lambda: (lambda a: a if a is not None and predicate(a) else None)(answer()), timeout=timeout,
                    interval=0.2, message=f"an answer of {name} that satisfies the test")


def logs(name: str, container: str = "inference-server") -> str:
    return devtui("logs", "-n", name, "--container", container).stdout


def deployment_of(name: str) -> dict:
    return show(name)["deployments"][0]


def test_flow_basic_in_containers_answers_as_prompt_flow_and_reloads(tmp_path, endpoint, docker_client):
    name = endpoint("fc-basic")
    folder = copy_sample("flow-basic", tmp_path)
    node = folder / "flow" / "repeat.py"

    shown = up(folder, name)

    assert shown["provisioning_state"] == "Succeeded", shown
    first = shown["deployments"][0]
    assert first["runtime"] == "container" and first["image"].startswith("devtui-promptflow-runtime:")
    assert docker_client.images.get(first["image"]).labels[STAND_IN_LABEL] == RUNTIME_IMAGE
    assert score(name, REQUEST).json() == FLOW_BASIC_ANSWER
    missing = score(name, {"count": 2})
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "UserError", missing.text
    health = httpx.get(shown["scoring_uri"].removesuffix("/score") + "/health", timeout=10).json()
    assert health["status"] == "Healthy", health

    # The flow was staged as the model, and the server serves it from there with --flow.
    server = docker_client.containers.get(f"devtui-{name}-blue-inference-server")
    command = server.attrs["Config"]["Cmd"]
    assert command[command.index("--flow") + 1] == FLOW_DIR and server.attrs["Config"]["WorkingDir"] == FLOW_DIR
    assert "blue-model/1/flow/repeat.py" in logs(name, "storage-initializer")

    # A save of a node: synced into the same container, a new worker answers.
    save(node, node.read_text().replace('" ".join', '"-".join'))
    assert answers(name, REQUEST, lambda a: "-" in a["result"]) == {
        "result": "hello flow-hello flow-hello flow", "words": 4}
    revision = wait_for(lambda: deployment_of(name)["revision"], message="a serving revision")
    assert revision >= 2 and deployment_of(name)["container_ids"] == first["container_ids"]

    # A broken save: tried, failed; the last good revision keeps answering.
    save(node, node.read_text() + "\ndef broken(:\n")
    wait_for(lambda: deployment_of(name)["latest_revision"] > revision, timeout=60, interval=0.2,
             message="the broken revision to be tried")
    wait_for(lambda: "SyntaxError" in logs(name), timeout=30, interval=0.2, message="the syntax error in the log")
    assert "repeat.py" in logs(name)
    assert deployment_of(name)["revision"] == revision and show(name)["provisioning_state"] == "Succeeded"
    assert score(name, REQUEST).json()["result"] == "hello flow-hello flow-hello flow"

    # The next good save is served.
    save(node, node.read_text().replace("\ndef broken(:\n", "").replace('"-".join', '"+".join'))
    answers(name, REQUEST, lambda a: a["result"] == "hello flow+hello flow+hello flow")


def test_a_change_of_requirements_txt_rebuilds_the_image(tmp_path, endpoint, docker_client, run_id):
    name = endpoint("fc-requirements")
    folder = copy_sample("flow-basic", tmp_path)
    before = up(folder, name)["deployments"][0]["image"]
    probe = ["python", "-c", "import more_itertools"]
    assert docker_client.containers.get(f"devtui-{name}-blue-inference-server").exec_run(probe).exit_code != 0

    # The image is named by the requirements' content: a marker that always holds, but names this
    # run, makes it an image no other run builds, so this test alone removes it.
    save(folder / "flow" / "requirements.txt", f'more-itertools ; platform_system != "{run_id}"\n')

    def rebuilt():
        deployment = deployment_of(name)
        return deployment if deployment["image"] not in (None, before) and deployment["revision"] else None

    after = wait_for(rebuilt, timeout=400, interval=0.5, message="a new image serving")["image"]
    try:
        assert docker_client.containers.get(f"devtui-{name}-blue-inference-server").exec_run(probe).exit_code == 0
        assert score(name, REQUEST).json() == FLOW_BASIC_ANSWER
        assert "more-itertools" in logs(name, "devtui")  # the image build names what it installs

        # Only the flow's layer was rebuilt: both images are FROM the same server layer (with
        # promptflow-core), which the rebuild reused, and said so.
        layer = docker_client.images.get(after).labels[SERVER_LAYER_LABEL]
        assert docker_client.images.get(before).labels[SERVER_LAYER_LABEL] == layer
        layer_id = docker_client.images.get(layer).id
        for image in (before, after):
            assert layer_id in [step["Id"] for step in docker_client.images.get(image).history()], image
        log = logs(name, "devtui")
        rebuild = log[:log.index(f"Building image {after}")].rsplit("Server layer ", 1)[-1].splitlines()[0]
        assert rebuild.startswith(f"{layer} is up to date") and "reused" in rebuild, log
    finally:
        if f"Built {after}" in logs(name, "devtui"):  # built by this test: not a cache any other test shares
            devtui("down", "-n", name, check=None)
            docker_client.images.remove(after, force=True)


def test_connection_files_reach_the_container(tmp_path, endpoint, docker_client):
    name = endpoint("fc-connections")
    folder = copy_sample("flow-basic", tmp_path)
    flow = folder / "flow"
    for stale in ("clean.py", "repeat.py", "describe.py", "samples.json"):
        (flow / stale).unlink()
    for file_name, text in CONNECTED_FLOW.items():
        (flow / file_name).write_text(text)
    connection = tmp_path / "my_conn.yaml"
    connection.write_text("name: my_conn\ntype: custom\nconfigs:\n  base: http://x\nsecrets:\n  key: s3cret\n")

    shown = up(folder, name, "--connections", str(connection))

    assert score(name, {"text": "hi"}).json() == {"out": "hi via http://x, key of 6"}
    server = docker_client.containers.get(f"devtui-{name}-blue-inference-server")
    inside = "/var/azureml-app/devtui-connections/0-my_conn.yaml"
    assert f"DEVTUI_FLOW_CONNECTIONS={inside}" in server.attrs["Config"]["Env"]
    assert server.exec_run(["cat", inside]).output.decode() == connection.read_text()

    # An edit of the file (issue 24) is copied in again and the next worker reads it: no restart.
    save(connection, "name: my_conn\ntype: custom\nconfigs:\n  base: http://y\nsecrets:\n  key: an0ther-secret\n")
    assert answers(name, {"text": "hi"}, lambda a: "http://y" in a["out"]) == {"out": "hi via http://y, key of 14"}
    assert deployment_of(name)["container_ids"] == shown["deployments"][0]["container_ids"]
    log = logs(name, "devtui")
    assert f"Connections file {connection} changed: my_conn (configs.base, secrets.key)" in log, log
    assert "an0ther-secret" not in log and "s3cret" not in log


OWN_SERVER = """\
import http.server, json, os

FLOW = os.path.join(os.environ["AZUREML_MODEL_DIR"], "flow")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer({"status": "Healthy"})

    def do_POST(self):
        self.answer({"greeting": open(os.path.join(FLOW, "greeting.txt")).read().strip()})

    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(data)


http.server.HTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"""


def test_a_flow_on_an_image_of_its_own_runs_as_it_is_and_gets_saves(tmp_path, endpoint, docker_client):
    name = endpoint("fc-own")
    folder = copy_sample("flow-basic", tmp_path)
    (folder / "server").mkdir()
    (folder / "server" / "app.py").write_text(OWN_SERVER)
    (folder / "server" / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY app.py /app.py\n"
                                                  'CMD ["python", "/app.py"]\n')
    (folder / "flow" / "greeting.txt").write_text("hello\n")
    deployment = folder / "deployment.yml"
    deployment.write_text(deployment.read_text().replace(f"image: {RUNTIME_IMAGE}",
                                                         "build:\n    path: ./server"))

    up(folder, name)

    assert score(name, {}).json() == {"greeting": "hello"}
    server = docker_client.containers.get(f"devtui-{name}-blue-inference-server")
    assert server.attrs["Config"]["Cmd"] == ["python", "/app.py"]  # the image's own server
    save(folder / "flow" / "greeting.txt", "bonjour\n")
    answers(name, {}, lambda a: a == {"greeting": "bonjour"})


def test_a_chat_flow_streams_and_a_flex_flow_answers_in_containers(tmp_path, endpoint):
    """The other two samples through the same stand-in image: server-sent events come through the
    container's published port chunk by chunk, and a flex flow's init config reaches its class."""
    from flow_reference import FLOW_CHAT_ANSWER, FLOW_FLEX_ANSWER

    chat = copy_sample("flow-chat", tmp_path)
    name = endpoint("fc-chat")
    up(chat, name)
    uri = show(name)["scoring_uri"]
    body = (chat / "sample-request.json").read_bytes()
    with httpx.stream("POST", uri, content=body, timeout=60,
                      headers={"content-type": "application/json", "accept": "text/event-stream"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line]
    assert len(events) > 3 and "".join(e["answer"] for e in events) == FLOW_CHAT_ANSWER["answer"]
    devtui("down", "-n", name)

    flex = copy_sample("flow-flex", tmp_path)
    name = endpoint("fc-flex")
    up(flex, name)
    answer = httpx.post(show(name)["scoring_uri"], content=(flex / "sample-request.json").read_bytes(),
                        headers={"content-type": "application/json"}, timeout=60)
    assert answer.status_code == 200 and answer.json() == FLOW_FLEX_ANSWER, answer.text
