"""devtui.spec on prompt flow deployments: a flow folder (flow.dag.yaml, flow.flex.yaml or a .prompty)
as the model, recognised and read into a FlowSpec without prompt flow, and every broken flow file
or flow setting reported with its file, line and field."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from devtui.spec import PROMPTFLOW_RUNTIME_IMAGE, FlowInput, FlowNode, InferenceConfig, Problem, Route, SpecError, load

from helpers import ROOT, devtui
from spec_data import write

RUNTIME_IMAGE = f"{PROMPTFLOW_RUNTIME_IMAGE}:latest"
ROUTES = """
  inference_config:
    liveness_route: {port: 8080, path: /health}
    readiness_route: {port: 8080, path: /health}
    scoring_route: {port: 8080, path: /score}
"""

DAG = """
inputs:
  question:
    type: string
    default: What is a flow?
    is_chat_input: true
  chat_history:
    type: list
  top_k:
    type: int
outputs:
  answer:
    type: string
    reference: ${answer.output}
    is_chat_output: true
  debug:
    type: object
    reference: ${retrieve.output}
    evaluation_only: true
nodes:
- name: retrieve
  type: python
  source:
    type: code
    path: tools/retrieve.py
  inputs:
    question: ${inputs.question}
    top_k: ${flow.top_k}
- name: prompt
  type: prompt
  source:
    type: code
    path: chat.jinja2
  inputs:
    context: ${retrieve.output}
    history: ${inputs.chat_history}
  activate:
    when: ${retrieve.output.found}
    is: true
- name: answer
  type: python
  source:
    type: code
    path: answer.py
  inputs:
    prompt: ${prompt.output}
    style: plain
"""


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(SpecError) as caught:
        load(path)
    return caught.value.problems


def only(problems: list[Problem], field: str | None) -> Problem:
    matching = [p for p in problems if p.field == field]
    assert len(matching) == 1, "\n".join(map(str, problems))
    return matching[0]


def assert_reported(problem: Problem, file_name: str, line: int, field: str, *words: str) -> None:
    """PROBLEM is shown as `.../FILE_NAME:LINE: FIELD: ...` and says each of WORDS."""
    text = str(problem)
    assert f"{file_name}:{line}: {field}: " in text, text
    assert (problem.file.name, problem.line, problem.field) == (file_name, line, field), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def deployment(folder: Path, model: str = "./flow", image: str = RUNTIME_IMAGE, extra: str = "") -> Path:
    """A deployment YAML in the docs' shape for a flow: no code_configuration."""
    return write(folder, "deployment.yml", (
        "name: blue\n"
        "endpoint_name: my-endpoint\n"
        "model:\n"
        f"  path: {model}\n"
        "environment:\n"
        f"  image: {image}\n"
    ) + extra)


def dag_flow(folder: Path, text: str = DAG) -> Path:
    flow = folder / "flow"
    write(flow, "flow.dag.yaml", text)
    write(flow, "tools/retrieve.py", "def retrieve(question, top_k): return {'found': True}\n")
    write(flow, "chat.jinja2", "{{context}}\n")
    write(flow, "answer.py", "def answer(prompt, style): return prompt\n")
    return flow


# --------------------------------------------------------------------------- recognised and read


def test_dag_flow_is_read_into_a_flow_spec(tmp_path: Path) -> None:
    flow = dag_flow(tmp_path)
    result = load(deployment(tmp_path))

    assert result.code_dir is None and result.scoring_script is None
    spec = result.flow
    assert spec is not None
    assert (spec.folder, spec.flow_file, spec.kind, spec.runtime_image) == (flow, "flow.dag.yaml", "dag", True)
    assert spec.inputs == (
        FlowInput("question", "string", "What is a flow?", is_chat_input=True),
        FlowInput("chat_history", "list", None, is_chat_history=True),  # by its name, as prompt flow does
        FlowInput("top_k", "int", None),
    )
    assert spec.outputs == ("answer", "debug") and spec.chat_output == "answer"
    assert spec.nodes == (
        FlowNode("retrieve", "python", flow / "tools/retrieve.py"),
        FlowNode("prompt", "prompt", flow / "chat.jinja2"),
        FlowNode("answer", "python", flow / "answer.py"),
    )
    assert spec.is_chat and spec.chat_input == "question" and spec.chat_history == "chat_history"
    # No samples.json: the defaults, and an empty value of its type for an input without one.
    assert spec.sample == {"question": "What is a flow?", "chat_history": [], "top_k": 0}
    assert spec.requirements is None


def test_runtime_image_routes_default_to_the_docs_and_stay_off_the_environment(tmp_path: Path) -> None:
    dag_flow(tmp_path)
    result = load(deployment(tmp_path, image=PROMPTFLOW_RUNTIME_IMAGE + ":20240515.v1"))
    assert result.flow is not None and result.flow.runtime_image
    assert result.flow.inference_config == InferenceConfig(Route(8080, "/health"), Route(8080, "/health"),
                                                           Route(8080, "/score"))
    # An inference_config on the environment means a bring-your-own container; devtui serves this one.
    assert result.environment.inference_config is None

    write(tmp_path, "deployment.yml", deployment(tmp_path).read_text() + ROUTES.replace("/score", "/flow-score"))
    with_routes = load(tmp_path / "deployment.yml")
    assert with_routes.flow is not None and with_routes.flow.inference_config.scoring_route == Route(8080, "/flow-score")
    assert with_routes.environment.inference_config is None


def test_samples_json_and_requirements_beside_the_flow(tmp_path: Path) -> None:
    flow = dag_flow(tmp_path)
    write(flow, "samples.json", '[{"question": "from samples", "chat_history": [], "top_k": 3}]')
    write(flow, "requirements.txt", "numpy\n")
    spec = load(deployment(tmp_path)).flow
    assert spec is not None
    assert spec.sample == {"question": "from samples", "chat_history": [], "top_k": 3}
    assert spec.requirements == flow / "requirements.txt"

    # The flow file's own environment.python_requirements_txt wins over the default name.
    write(flow, "env/reqs.txt", "pandas\n")
    write(flow, "flow.dag.yaml", DAG + "environment:\n  python_requirements_txt: env/reqs.txt\n")
    spec = load(tmp_path / "deployment.yml").flow
    assert spec is not None and spec.requirements == flow / "env/reqs.txt"


def test_flex_flow_entry_and_inputs(tmp_path: Path) -> None:
    flow = tmp_path / "flow"
    write(flow, "flow.flex.yml", """
        entry: pkg.chat:ChatFlow
        init:
          model_name: {type: string, default: echo}
        inputs:
          question: {type: string, default: hello}
        outputs:
          answer: {type: string}
        sample:
          question: from the yaml
    """)
    write(flow, "pkg/chat.py", "class ChatFlow:\n    def __call__(self, question): return question\n")
    spec = load(deployment(tmp_path)).flow
    assert spec is not None
    assert (spec.kind, spec.flow_file) == ("flex", "flow.flex.yml")
    assert spec.nodes == (FlowNode("ChatFlow", "flex", flow / "pkg/chat.py"),)
    assert spec.inputs == (FlowInput("question", "string", "hello"),)
    assert spec.outputs == ("answer",)
    assert spec.sample == {"question": "from the yaml"}


def test_flex_flow_from_a_package_has_no_source_and_no_inputs(tmp_path: Path) -> None:
    write(tmp_path, "flow/flow.flex.yaml", "entry: some_package.flows:run\n")
    spec = load(deployment(tmp_path)).flow
    assert spec is not None
    assert spec.nodes == (FlowNode("run", "flex", None),) and spec.inputs == () and spec.sample is None


PROMPTY = """---
name: Basic
model:
  api: chat
inputs:
  question:
    type: string
    default: Why?
  chat_history:
    type: list
    default: []
sample:
  question: a sample
---
system:
Answer {{question}}
"""


def test_a_single_prompty_in_the_folder(tmp_path: Path) -> None:
    flow = tmp_path / "flow"
    write(flow, "basic.prompty", PROMPTY)
    write(flow, "requirements.txt", "jinja2\n")
    spec = load(deployment(tmp_path)).flow
    assert spec is not None
    assert (spec.kind, spec.flow_file, spec.folder) == ("prompty", "basic.prompty", flow)
    assert spec.nodes == (FlowNode("basic", "prompty", flow / "basic.prompty"),)
    assert spec.inputs == (FlowInput("question", "string", "Why?"),
                           FlowInput("chat_history", "list", [], is_chat_history=True))
    assert spec.sample == {"question": "a sample"}
    assert spec.requirements == flow / "requirements.txt"


def test_model_path_may_be_the_prompty_file_itself(tmp_path: Path) -> None:
    write(tmp_path, "flow/basic.prompty", PROMPTY)
    # Only the .prompty is deployed then: what lies beside it is not part of the flow.
    write(tmp_path, "flow/requirements.txt", "jinja2\n")
    write(tmp_path, "flow/samples.json", '[{"question": "not deployed"}]')
    spec = load(deployment(tmp_path, model="./flow/basic.prompty")).flow
    assert spec is not None
    assert (spec.kind, spec.folder, spec.flow_file) == ("prompty", tmp_path / "flow", "basic.prompty")
    assert spec.requirements is None and spec.sample == {"question": "a sample"}


# --------------------------------------------------------------------------- which image serves it


def test_custom_image_with_routes_runs_the_flow_as_its_own_container(tmp_path: Path) -> None:
    dag_flow(tmp_path)
    result = load(deployment(tmp_path, image="myregistry.azurecr.io/my-flow:1", extra=ROUTES))
    assert result.flow is not None and not result.flow.runtime_image
    assert result.environment.inference_config is not None  # the bring-your-own container's routes
    assert result.flow.inference_config == result.environment.inference_config


@pytest.mark.parametrize("image", ["myregistry.azurecr.io/my-flow:1", PROMPTFLOW_RUNTIME_IMAGE + "-custom:1"])
def test_custom_flow_image_without_inference_config(tmp_path: Path, image: str) -> None:
    flow = dag_flow(tmp_path)
    problem = only(problems_of(deployment(tmp_path, image=image)), "environment.inference_config")
    assert_reported(problem, "deployment.yml", 5, "environment.inference_config", "missing", str(flow),
                    "bring-your-own container", "scoring_route: {port: 8080, path: /score}", PROMPTFLOW_RUNTIME_IMAGE)


def test_flow_built_from_a_dockerfile_needs_inference_config(tmp_path: Path) -> None:
    dag_flow(tmp_path)
    write(tmp_path, "docker/Dockerfile", f"FROM {RUNTIME_IMAGE}\n")
    text = deployment(tmp_path).read_text().replace(f"  image: {RUNTIME_IMAGE}\n", "  build: {path: ./docker}\n")
    problem = only(problems_of(write(tmp_path, "deployment.yml", text)), "environment.inference_config")
    assert_reported(problem, "deployment.yml", 5, "environment.inference_config", "environment.build")

    write(tmp_path, "deployment.yml", text + ROUTES)
    result = load(tmp_path / "deployment.yml")
    assert result.flow is not None and not result.flow.runtime_image


def test_code_configuration_makes_it_an_ordinary_deployment(tmp_path: Path) -> None:
    dag_flow(tmp_path)
    write(tmp_path, "src/score.py", "def init(): pass\ndef run(raw): return raw\n")
    extra = "code_configuration: {code: ./src, scoring_script: score.py}\n"
    result = load(deployment(tmp_path, extra=extra))
    assert result.flow is None and result.scoring_script == "score.py"


def test_a_model_folder_without_flow_file_on_another_image_needs_code_configuration(tmp_path: Path) -> None:
    write(tmp_path, "model/weights.pkl", "weights")
    problem = only(problems_of(deployment(tmp_path, model="./model", image="python:3.11-slim")), "code_configuration")
    assert_reported(problem, "deployment.yml", 1, "code_configuration", "missing", "scoring_script: score.py",
                    "flow.dag.yaml", ".prompty", PROMPTFLOW_RUNTIME_IMAGE)


# --------------------------------------------------------------------------- bad input: the flow folder


def test_flow_folder_without_a_flow_file(tmp_path: Path) -> None:
    write(tmp_path, "flow/answer.py", "def answer(): pass\n")
    problems = problems_of(deployment(tmp_path))
    problem = only(problems, "model.path")
    assert_reported(problem, "deployment.yml", 4, "model.path", str(tmp_path / "flow"), "no flow file",
                    "flow.dag.yaml", "flow.flex.yaml", ".prompty")
    # It is a flow deployment, so code_configuration is not what is missing.
    assert not [p for p in problems if p.field == "code_configuration"]


def test_two_prompty_files_or_two_flow_files(tmp_path: Path) -> None:
    write(tmp_path, "flow/a.prompty", PROMPTY)
    write(tmp_path, "flow/b.prompty", PROMPTY)
    problem = only(problems_of(deployment(tmp_path)), "model.path")
    assert_reported(problem, "deployment.yml", 4, "model.path", "2 .prompty files (a.prompty, b.prompty)")

    write(tmp_path, "flow/flow.dag.yaml", DAG)
    write(tmp_path, "flow/flow.flex.yaml", "entry: flow:run\n")
    problem = only(problems_of(tmp_path / "deployment.yml"), "model.path")
    assert_reported(problem, "deployment.yml", 4, "model.path", "flow.dag.yaml and flow.flex.yaml", "exactly one")


def test_missing_model_on_the_runtime_image(tmp_path: Path) -> None:
    text = f"name: blue\nendpoint_name: my-endpoint\nenvironment:\n  image: {RUNTIME_IMAGE}\n"
    problems = problems_of(write(tmp_path, "deployment.yml", text))
    assert_reported(only(problems, "model"), "deployment.yml", 1, "model", "missing", "model: {path: ./my-flow}")
    assert not [p for p in problems if p.field == "code_configuration"]


# --------------------------------------------------------------------------- bad input: flow.dag.yaml


def test_yaml_error_in_flow_dag_yaml(tmp_path: Path) -> None:
    dag_flow(tmp_path, "inputs:\n  question:\n    type: string\n  bad: [unclosed\noutputs: {}\n")
    problems = problems_of(deployment(tmp_path))
    assert len(problems) == 1, problems
    assert problems[0].file == tmp_path / "flow/flow.dag.yaml" and problems[0].line == 5
    assert "flow.dag.yaml:5: YAML syntax error" in str(problems[0])


def test_flow_dag_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    dag_flow(tmp_path, "- name: answer\n")
    problems = problems_of(deployment(tmp_path))
    assert len(problems) == 1 and problems[0].line == 1
    assert "flow.dag.yaml:1: flow.dag.yaml is a list, but it must be a mapping" in str(problems[0])


def test_node_source_that_does_not_exist(tmp_path: Path) -> None:
    flow = dag_flow(tmp_path, DAG.replace("path: answer.py", "path: answr.py"))
    problem = only(problems_of(deployment(tmp_path)), "nodes.2.source.path")
    assert_reported(problem, "flow.dag.yaml", 43, "nodes.2.source.path", "node 'answer'", str(flow / "answr.py"),
                    "not found", "relative to the flow folder")


def test_node_source_without_path(tmp_path: Path) -> None:
    dag_flow(tmp_path, DAG.replace("    path: chat.jinja2\n", ""))
    problem = only(problems_of(deployment(tmp_path)), "nodes.1.source.path")
    assert_reported(problem, "flow.dag.yaml", 30, "nodes.1.source.path", "node 'prompt'", "missing", "path: ")


@pytest.mark.parametrize("old, new, field, line, words", [
    ("question: ${inputs.question}", "question: ${inputs.questoin}", "nodes.0.inputs.question", 26,
     ["${inputs.questoin}", "flow input 'questoin'", "chat_history, question, top_k", "under `inputs:`"]),
    ("context: ${retrieve.output}", "context: ${retreive.output}", "nodes.1.inputs.context", 34,
     ["${retreive.output}", "node 'retreive'", "answer, prompt, retrieve"]),
    ("reference: ${answer.output}", "reference: ${anwser.output}", "outputs.answer.reference", 13,
     ["node 'anwser'"]),
    ("when: ${retrieve.output.found}", "when: ${inputs.found}", "nodes.1.activate.when", 37,
     ["flow input 'found'"]),
])
def test_reference_to_an_undefined_input_or_node(tmp_path: Path, old: str, new: str, field: str, line: int,
                                                 words: list[str]) -> None:
    assert old in DAG
    dag_flow(tmp_path, DAG.replace(old, new))
    problem = only(problems_of(deployment(tmp_path)), field)
    assert_reported(problem, "flow.dag.yaml", line, field, *words)


def test_activate_without_is(tmp_path: Path) -> None:
    dag_flow(tmp_path, DAG.replace("    is: true\n", ""))
    problem = only(problems_of(deployment(tmp_path)), "nodes.1.activate")
    assert_reported(problem, "flow.dag.yaml", 36, "nodes.1.activate", "`when:` and `is:`")


def test_input_type_and_duplicate_node_name(tmp_path: Path) -> None:
    text = DAG.replace("type: int", "type: integer").replace("- name: answer", "- name: prompt")
    dag_flow(tmp_path, text)
    problems = problems_of(deployment(tmp_path))
    assert_reported(only(problems, "inputs.top_k.type"), "flow.dag.yaml", 9, "inputs.top_k.type",
                    "'integer' is not a prompt flow type", "int")
    assert_reported(only(problems, "nodes.2.name"), "flow.dag.yaml", 39, "nodes.2.name", "'prompt'", "unique")


def test_python_requirements_txt_that_does_not_exist(tmp_path: Path) -> None:
    dag_flow(tmp_path, DAG + "environment:\n  python_requirements_txt: reqs.txt\n")
    problem = only(problems_of(deployment(tmp_path)), "environment.python_requirements_txt")
    assert_reported(problem, "flow.dag.yaml", 48, "environment.python_requirements_txt", "reqs.txt", "not found")


def test_samples_json_that_is_not_json(tmp_path: Path) -> None:
    flow = dag_flow(tmp_path)
    write(flow, "samples.json", '[\n  {"question": "hi",}\n]\n')
    problems = problems_of(deployment(tmp_path))
    assert len(problems) == 1 and problems[0].file == flow / "samples.json" and problems[0].line == 2
    assert "samples.json:2: is not valid JSON" in str(problems[0])


def test_flex_flow_without_entry(tmp_path: Path) -> None:
    write(tmp_path, "flow/flow.flex.yaml", "inputs:\n  question: {type: string}\nentry: flow.run\n")
    problem = only(problems_of(deployment(tmp_path)), "entry")
    assert_reported(problem, "flow.flex.yaml", 3, "entry", "'flow.run' is not `module:function`", "entry: flow:ChatFlow")


# --------------------------------------------------------------------------- bad input: a .prompty


@pytest.mark.parametrize("text, line, words", [
    ("---\nname: Basic\ninputs:\n  question: {type: string}\nsystem:\nAnswer {{question}}\n", 1,
     ["opened by `---` on line 1 is never closed", "Add a line `---`"]),
    ("system:\nAnswer {{question}}\n", 1, ["starts with its front matter"]),
    ("---\nname: Basic\ninputs:\n  question: [string\n---\nAnswer\n", 5, ["YAML syntax error"]),
    ("---\n- one\n- two\n---\nAnswer\n", 2, ["the front matter is a list", "must be a mapping"]),
    ("---\n---\nAnswer\n", 2, ["the front matter is empty"]),
])
def test_prompty_with_bad_front_matter(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    write(tmp_path, "flow/basic.prompty", text)
    problems = problems_of(deployment(tmp_path))
    assert len(problems) == 1, problems
    problem = problems[0]
    assert problem.file == tmp_path / "flow/basic.prompty" and problem.line == line, str(problem)
    assert str(problem).startswith(f"{tmp_path / 'flow/basic.prompty'}:{line}: ")
    for word in words:
        assert word in str(problem), str(problem)


def test_prompty_yaml_error_keeps_the_prompty_line(tmp_path: Path) -> None:
    write(tmp_path, "flow/basic.prompty", "---\nname: Basic\ninputs:\n  question:\n    type: string\n   bad\n---\nAnswer\n")
    problems = problems_of(deployment(tmp_path))
    assert [p.line for p in problems] == [6], problems


# --------------------------------------------------------------------------- bad input: the deployment's settings


@pytest.mark.parametrize("value, why", [
    ("answer", "not JSON"),
    ("'{\"answer\": true}'", "not a list of output names"),
    ("'[1, 2]'", "not a list of output names"),
])
def test_response_included_fields_must_be_a_json_list(tmp_path: Path, value: str, why: str) -> None:
    dag_flow(tmp_path)
    extra = f"environment_variables:\n  LOG_LEVEL: debug\n  PROMPTFLOW_RESPONSE_INCLUDED_FIELDS: {value}\n"
    field = "environment_variables.PROMPTFLOW_RESPONSE_INCLUDED_FIELDS"
    problem = only(problems_of(deployment(tmp_path, extra=extra)), field)
    assert_reported(problem, "deployment.yml", 9, field, why, "JSON list", "'[\"answer\"]'")


def test_response_included_fields_as_a_json_list_loads(tmp_path: Path) -> None:
    dag_flow(tmp_path)
    extra = "environment_variables:\n  PROMPTFLOW_RESPONSE_INCLUDED_FIELDS: '[\"answer\"]'\n"
    assert load(deployment(tmp_path, extra=extra)).environment_variables == {
        "PROMPTFLOW_RESPONSE_INCLUDED_FIELDS": '["answer"]'}


def _without_promptflow(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name.split(".")[0] == "promptflow" else real(name, *args))


def test_promptflow_core_missing_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dag_flow(tmp_path)
    _without_promptflow(monkeypatch)
    problem = only(problems_of(deployment(tmp_path)), "environment.image")
    assert_reported(problem, "deployment.yml", 6, "environment.image", "promptflow-core", "not installed",
                    "pip install 'devtui[flow]'", "make install")


def test_promptflow_core_is_not_needed_for_a_custom_flow_image(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    dag_flow(tmp_path)
    _without_promptflow(monkeypatch)
    result = load(deployment(tmp_path, image="myregistry.azurecr.io/my-flow:1", extra=ROUTES))
    assert result.flow is not None and not result.flow.runtime_image


def test_reading_a_flow_imports_no_prompt_flow(tmp_path: Path) -> None:
    dag_flow(tmp_path)
    deployment(tmp_path)
    code = ("import sys; from devtui.spec import load; load(sys.argv[1]); "
            "assert not [m for m in sys.modules if m.startswith('promptflow')], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "deployment.yml")], check=True, cwd=ROOT,
                   capture_output=True, timeout=60)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("verb", ["validate", "up"])
def test_cli_on_a_broken_flow_exits_2_with_file_line_and_field(tmp_path: Path, verb: str) -> None:
    dag_flow(tmp_path, DAG.replace("question: ${inputs.question}", "question: ${inputs.missing}"))
    deployment(tmp_path)
    result = devtui(verb, str(tmp_path / "deployment.yml"), check=2)
    flow_file = tmp_path / "flow/flow.dag.yaml"
    assert result.stderr.startswith(f"error: {flow_file}:26: nodes.0.inputs.question: "), result.stderr
    assert "flow input 'missing'" in result.stderr and "Traceback" not in result.stderr


def test_the_models_chat_properties_name_the_chats_input_and_output(tmp_path):
    """The docs' chat flow model carries azureml.promptflow.chat_input/chat_output: they win over
    the flow file's markers, and a name the flow does not have is a problem on its line."""
    from flow_reference import copy_sample

    sample = copy_sample("flow-chat", tmp_path)
    flow = load(sample).flow
    assert flow.is_chat and flow.chat_input == "question" and flow.chat_output == "answer"
    text = (sample / "deployment.yml").read_text()
    (sample / "deployment.yml").write_text(text.replace("chat_input: question", "chat_input: query"))
    with pytest.raises(SpecError) as error:
        load(sample)
    line = next(i for i, l in enumerate((sample / "deployment.yml").read_text().splitlines(), 1) if "query" in l)
    assert f"deployment.yml:{line}: model.properties.azureml.promptflow.chat_input: 'query' is not one of the " \
           "flow's inputs (question, chat_history)" in str(error.value)


def test_a_source_that_additional_includes_bring_is_the_included_file(tmp_path):
    """The node's file is where the user edits it, not a copy; the include is listed as prompt flow
    resolves it (relative to the flow folder, landing under its own name)."""
    from flow_reference import copy_sample

    sample = copy_sample("flow-basic", tmp_path)
    flow_file = sample / "flow" / "flow.dag.yaml"
    (sample / "flow" / "clean.py").rename(tmp_path / "clean.py")
    flow_file.write_text("additional_includes:\n- ../../clean.py\n" + flow_file.read_text())
    flow = load(sample).flow
    assert [(i.entry, i.source, i.kind, i.name, i.line) for i in flow.includes] == [
        ("../../clean.py", tmp_path / "clean.py", "file", "clean.py", 2)]
    assert tmp_path / "clean.py" in {node.source for node in flow.nodes}


def test_additional_includes_that_are_no_list_or_no_path_are_refused_on_their_line(tmp_path):
    from flow_reference import copy_sample

    sample = copy_sample("flow-basic", tmp_path)
    flow_file = sample / "flow" / "flow.dag.yaml"
    text = flow_file.read_text()
    flow_file.write_text("additional_includes: ../shared\n" + text)
    with pytest.raises(SpecError) as error:
        load(sample)
    assert f"{flow_file}:1: additional_includes: expected a list of files and folders" in str(error.value)
    flow_file.write_text("additional_includes:\n- 3\n" + text)
    with pytest.raises(SpecError) as error:
        load(sample)
    assert f"{flow_file}:2: additional_includes.0: expected the path of a file or folder" in str(error.value)
