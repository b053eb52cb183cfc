"""The `devtui` command as a user runs it: a real process, real files, real signals."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading

import httpx
import pytest

from helpers import ROOT, children_of, devtui, devtui_command, pid_alive, wait_for


@pytest.fixture
def detached(sample):
    """Start a sample with `up --detach`; `down --all` afterwards, and prove nothing is left."""
    started: list[dict] = []

    def up(name: str = "sklearn-regression", *extra: str, check: int = 0) -> dict:
        folder = sample(name) if isinstance(name, str) else name
        result = devtui("up", str(folder), "--detach", *extra, check=check)
        shown = json.loads(result.stdout) if check == 0 else {}
        started.append(shown)
        return shown

    yield up
    records = devtui("list", "-o", "json").stdout
    pids = [d.get("pid") for r in json.loads(records) for d in r["deployments"]]
    devtui("down", "--all")
    for pid in pids:
        wait_for(lambda: not pid_alive(pid), timeout=20, message=f"server {pid} to exit")


def test_validate_a_good_deployment():
    result = devtui("validate", "samples/sklearn-regression")
    assert "deployment 'blue' of endpoint 'my-endpoint' is valid" in result.stdout


def test_validate_prints_warnings_and_still_exits_0(sample):
    folder = sample("sklearn-regression")
    deployment = folder / "deployment.yml"
    deployment.write_text(deployment.read_text() + "enviroment_variables: {LOG_LEVEL: debug}\n")
    result = devtui("validate", str(folder))
    assert "is valid" in result.stdout
    line = len(deployment.read_text().splitlines())
    assert f"warning: {deployment}:{line}: enviroment_variables: " in result.stderr, result.stderr
    assert "did you mean environment_variables?" in result.stderr, result.stderr


BAD = {
    "yaml syntax": ("name: blue\n  endpoint_name: my-endpoint\n", "deployment.yml:2:", ""),
    "empty file": ("# nothing here\n", ":1", "empty"),
    "wrong type": (None, "instance_count", "instance_count: many"),
    "missing code folder": (None, "code_configuration.code", "code: ./nowhere"),
    "missing scoring script": (None, "code_configuration.scoring_script", "scoring_script: nope.py"),
    "missing model path": (None, "model.path", "path: ./no-model"),
    "registered asset": (None, "azureml:", "model: azureml:my-model:1"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
@pytest.mark.parametrize("verb", ["validate", "up"])
def test_bad_deployment_is_one_clear_error_and_exit_2(sample, case, verb):
    folder = sample("sklearn-regression")
    deployment = folder / "deployment.yml"
    text, expected, edit = BAD[case]
    if text is None:
        original = deployment.read_text()
        replacements = {
            "instance_count: many": ("instance_count: 1", "instance_count: many"),
            "code: ./nowhere": ("code: ./onlinescoring", "code: ./nowhere"),
            "scoring_script: nope.py": ("scoring_script: score.py", "scoring_script: nope.py"),
            "path: ./no-model": ("path: ./model", "path: ./no-model"),
            "model: azureml:my-model:1": ("model:\n  path: ./model", "model: azureml:my-model:1"),
        }
        old, new = replacements[edit]
        assert old in original
        text = original.replace(old, new)
    deployment.write_text(text)

    result = devtui(verb, str(deployment), "--endpoint-file", str(folder / "endpoint.yml"), check=2)

    assert "deployment.yml:" in result.stderr and expected in result.stderr, result.stderr
    assert result.stderr.startswith("error: ")
    assert devtui("list", "-o", "json").stdout.strip() == "[]"


def test_endpoint_name_mismatch_names_both_files(sample):
    folder = sample("sklearn-regression")
    endpoint = folder / "endpoint.yml"
    endpoint.write_text(endpoint.read_text().replace("name: my-endpoint", "name: other-endpoint"))
    result = devtui("validate", str(folder), check=2)
    assert "endpoint.yml" in result.stderr and "deployment.yml" in result.stderr
    assert "other-endpoint" in result.stderr and "-n" in result.stderr


def test_up_detach_show_list_invoke_logs_down(detached, tmp_path):
    shown = detached()
    assert shown["name"] == "my-endpoint" and shown["location"] == "local"
    assert shown["provisioning_state"] == "Succeeded" and shown["auth_mode"] == "key"
    assert shown["traffic"] == {"blue": 100}
    assert shown["scoring_uri"].endswith("/score") and shown["swagger_uri"].endswith("/swagger.json")
    deployment = shown["deployments"][0]
    assert deployment["name"] == "blue" and deployment["runtime"] == "process" and deployment["revision"] == 1
    assert pid_alive(deployment["pid"])

    assert json.loads(devtui("show").stdout)["scoring_uri"] == shown["scoring_uri"]
    assert json.loads(devtui("show", "-n", "my-endpoint").stdout)["name"] == "my-endpoint"
    table = devtui("list").stdout
    assert "my-endpoint" in table and "Succeeded" in table

    answer = devtui("invoke", "--request-file", "samples/sklearn-regression/sample-request.json").stdout
    assert len(json.loads(answer)) == 2
    devtui("invoke", "-n", "my-endpoint", "--deployment-name", "blue",
           "--request-file", "samples/sklearn-regression/sample-request.json")
    wrong = devtui("invoke", "--deployment-name", "green",
                   "--request-file", "samples/sklearn-regression/sample-request.json", check=2)
    assert "green" in wrong.stderr

    bad_request = tmp_path / "bad.json"
    bad_request.write_text('{"data": "not rows"}')
    failed = devtui("invoke", "--request-file", str(bad_request), check=1)
    assert "500" in failed.stderr
    assert json.loads(failed.stdout)["message"].startswith("An unexpected error occurred in scoring script")

    server_log = devtui("logs").stdout
    assert "Users's init has completed successfully" in server_log and "Traceback" in server_log
    assert "sklearn_regression_model.pkl" in devtui("logs", "--container", "storage-initializer").stdout
    assert len(devtui("logs", "--lines", "3").stdout.splitlines()) == 3

    devtui("down", "-n", "my-endpoint")
    wait_for(lambda: not pid_alive(deployment["pid"]), timeout=20)
    assert devtui("list", "-o", "json").stdout.strip() == "[]"
    assert "no local endpoint" in devtui("show", check=1).stderr


def test_one_yaml_runs_as_two_endpoints_with_n(detached, sample):
    folder = sample("sklearn-regression")
    first = detached(folder, "-n", "first-ep")
    second = detached(folder, "-n", "second-ep")
    assert first["scoring_uri"] != second["scoring_uri"]
    names = sorted(r["name"] for r in json.loads(devtui("list", "-o", "json").stdout))
    assert names == ["first-ep", "second-ep"]
    # With two running, NAME is required.
    assert "choose one with -n" in devtui("show", check=1).stderr


def test_second_deployment_for_a_running_endpoint_is_refused(detached, sample):
    detached()
    again = devtui("up", str(sample("inference-schema")), "-n", "my-endpoint", "--detach", check=2)
    assert "already has a deployment" in again.stderr and "devtui down -n my-endpoint" in again.stderr


def test_port_in_use_is_refused(sample):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = devtui("up", str(sample("sklearn-regression")), "--port", str(port), "--detach", check=2)
    assert f"port {port}" in result.stderr and "already in use" in result.stderr
    assert devtui("list", "-o", "json").stdout.strip() == "[]"


def test_failed_init_detaches_with_exit_1_and_the_traceback(detached, sample):
    folder = sample("sklearn-regression")
    score = folder / "onlinescoring" / "score.py"
    score.write_text(score.read_text().replace("def init():", "def init():\n    raise RuntimeError('model missing')"))
    result = devtui("up", str(folder), "--detach", check=1)
    assert "RuntimeError: model missing" in result.stderr
    shown = json.loads(devtui("show").stdout)
    assert shown["provisioning_state"] == "Failed"


def test_foreground_up_prefixes_sources_and_ctrl_c_leaves_nothing(sample):
    folder = sample("sklearn-regression")
    process = subprocess.Popen([*devtui_command(), "up", str(folder)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        def succeeded():
            line = process.stdout.readline()
            lines.append(line)
            return "provisioning_state: Succeeded" in line or not line

        wait_for(succeeded, timeout=60)
        server = json.loads(devtui("show").stdout)["deployments"][0]["pid"]
        descendants = children_of(process.pid)
        assert server in descendants and len(descendants) >= 2  # supervisor and its worker
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 0
    assert any(line.startswith("storage-initializer | ") for line in output.splitlines())
    assert any(line.startswith("inference-server    | ") for line in output.splitlines())
    assert "Stopped; nothing is left running." in output
    for pid in descendants:
        wait_for(lambda: not pid_alive(pid), timeout=10, message=f"{pid} to exit")
    assert devtui("list", "-o", "json").stdout.strip() == "[]"


def test_killed_host_takes_its_server_with_it(sample):
    """If devtui itself is killed (no chance to clean up), the server does not outlive it."""
    folder = sample("sklearn-regression")
    output = open(folder.parent / "host.log", "w")
    process = subprocess.Popen([*devtui_command(), "up", str(folder)], stdout=output, stderr=subprocess.STDOUT)
    try:
        # The record exists from the start; the server's pid is in it once the server runs.
        record = wait_for(lambda: (r := json.loads(devtui("show").stdout))["deployments"][0].get("pid") and r,
                          timeout=60)
        server = record["deployments"][0]["pid"]
        worker = wait_for(lambda: children_of(server), timeout=30)[0]
    finally:
        process.kill()
        process.wait()
        output.close()  # host.log stays in the test's folder, to read when this fails
    for pid in (server, worker):
        wait_for(lambda: not pid_alive(pid), timeout=15, message=f"{pid} to exit after its parent died")
    assert devtui("list", "-o", "json").stdout.strip() == "[]"


def test_logs_follow_streams_new_lines(detached):
    shown = detached()
    follower = subprocess.Popen([*devtui_command(), "logs", "-f", "--lines", "0"], stdout=subprocess.PIPE,
                                text=True, cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    body = (ROOT / "samples/sklearn-regression/sample-request.json").read_bytes()
    try:
        # Keep sending until the follower, which starts at the end of the file, shows one.
        wait_for(lambda: httpx.post(shown["scoring_uri"], content=body) and
                 any("POST /score 200" in line for line in lines), timeout=30)
    finally:
        follower.terminate()
        follower.wait(10)


def test_help_and_errors_never_show_a_traceback(tmp_path):
    assert "COMMAND" in devtui("--help").stdout
    # `devtui PATH` opens the app, but a PATH without a deployment is an error before any screen.
    assert "no deployment YAML" in devtui(str(tmp_path), check=2).stderr
    result = devtui("invoke", "--request-file", "/nonexistent.json", check=1)
    assert result.stderr.startswith("error: ")


def test_out_of_range_ports_and_an_unwritable_home_are_bad_input(tmp_path):
    for flags in (["--port", "99999"], ["--port", "-1"], ["--debug-port", "70000"]):
        result = devtui("up", "samples/sklearn-regression", *flags, check=2)
        assert "not within 0-65535" in result.stderr
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = subprocess.run([*devtui_command(), "list"], capture_output=True, text=True, cwd=ROOT,
                            env={**__import__("os").environ, "DEVTUI_HOME": str(blocked / "home")})
    assert result.returncode == 2 and "DEVTUI_HOME" in result.stderr and "Traceback" not in result.stderr


def test_a_closed_pipe_is_not_a_crash(detached):
    detached()
    shell = subprocess.run(f"{' '.join(devtui_command())} logs | head -1", shell=True, capture_output=True,
                           text=True, cwd=ROOT)
    assert shell.stdout.count("\n") == 1
    assert "failed unexpectedly" not in shell.stderr and "Traceback" not in shell.stderr


def test_commands_that_read_no_yaml_load_neither_it_nor_the_engine():
    """`show`, `list` and `down` are called in loops by scripts (and these tests): they start
    without the YAML models, the engine or the app, which they never use."""
    code = ("import sys\nfrom devtui.cli import main\n"
            "for argv in (['show', '-n', 'nope'], ['list'], ['down', '-n', 'nope'], ['--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('devtui.spec', 'devtui.engine', 'devtui.runtimes.container.images', 'textual') if m in sys.modules))")
    result = subprocess.run([*devtui_command()[:1], "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]", result.stdout
