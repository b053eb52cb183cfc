"""Flows that share code through symbolic links (prompt flow's ``flow-with-symlinks`` example; issue
24): links are followed as prompt flow follows them, to a file or a folder, inside the flow's tree or
out of it; a link prompt flow could not follow (one that leads nowhere, a folder link into a folder
that holds it) is refused with the link named, exit 2. The flows are test_flow_includes' two, with
links in place of ``additional_includes``; the reference is prompt flow's app on the folder its
build produces (the links' targets copied in)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import httpx
import pytest

from flow_reference import start_flow_reference
from helpers import devtui, save, show, wait_for
from test_flow_includes import CONVERT, SHOP, Running, tree, two_flows

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(importlib.util.find_spec("promptflow.core") is None,
                                 reason="promptflow-core is not installed (pip install -e '.[flow]')")]


def linked_flows(root: Path) -> Path:
    """with-includes sharing web-classification's file and folder by relative links."""
    two_flows(root, includes="")
    flow = root / "with-includes"
    os.symlink("../web-classification/convert_to_dict.py", flow / "convert_to_dict.py")
    os.symlink("../web-classification/labels", flow / "labels")
    return root


def pf_build(flow: Path, into: Path) -> Path:
    """What prompt flow's build makes of it: the links' targets copied in."""
    return Path(shutil.copytree(flow, into / flow.name, symlinks=False))


async def test_links_are_followed_and_a_save_of_a_linked_file_is_served(tmp_path):
    root = linked_flows(tmp_path / "repo")
    reference = start_flow_reference(pf_build(root / "with-includes", tmp_path / "built"), tmp_path)
    running = Running(root, tmp_path)
    try:
        assert await running.engine.start() == "Succeeded"
        expected = httpx.post(f"{reference.url}/score", json=SHOP, timeout=30)
        assert await running.answer(SHOP) == expected.json() == {"category": "Shopping", "evidence": SHOP["url"]}
        finished = await running.save(root / "web-classification" / "convert_to_dict.py",
                                      CONVERT.replace('"category": category', '"category": category.upper()'))
        assert finished.ok, finished
        assert (await running.answer(SHOP))["category"] == "SHOPPING"
    finally:
        await running.engine.stop()
        reference.stop()


def test_in_containers_a_link_carries_what_it_leads_to(tmp_path, endpoint):
    """A copy through the Docker API would carry the link itself, dangling in the container: the
    flow is staged with the targets, and a save of a target reaches the running container."""
    root = linked_flows(tmp_path / "repo")
    before = tree(root)
    name = endpoint("fc-links")
    devtui("up", str(root / "deployment.yml"), "--runtime", "container", "--detach", "-n", name, timeout=600)
    url = show(name)["scoring_uri"]
    assert httpx.post(url, json=SHOP, timeout=30).json() == {"category": "Shopping", "evidence": SHOP["url"]}
    save(root / "web-classification" / "labels" / "categories.py",
         'CATEGORIES = {"shop": "Retail", "news": "News"}\n')
    wait_for(lambda: httpx.post(url, json=SHOP, timeout=30).json()["category"] == "Retail", timeout=90,
             interval=0.2, message="the linked folder's save to be served in the container")
    assert set(tree(root)) == set(before)


@pytest.mark.parametrize("verb", ["validate", "up"])
def test_a_link_that_leads_nowhere_or_loops_exits_2_naming_the_link(tmp_path, verb):
    root = linked_flows(tmp_path)
    flow = root / "with-includes"
    os.symlink("../web-classification/gone.py", flow / "gone.py")
    os.symlink("..", flow / "up")
    result = devtui(verb, str(root / "deployment.yml"), check=2)
    assert f"error: {flow / 'gone.py'}: a link to ../web-classification/gone.py, which leads nowhere" in result.stderr
    assert f"error: {flow / 'up'}: a link to {root}, a folder that holds the link itself" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_link_out_of_the_tree_is_allowed_as_prompt_flow_allows_it_and_an_ignored_one_is_not_read(tmp_path):
    root = linked_flows(tmp_path)
    flow = root / "with-includes"
    (flow / ".amlignore").write_text("scratch/\n")
    (flow / "scratch").mkdir()
    os.symlink("/nonexistent/anywhere", flow / "scratch" / "dangling")
    out = devtui("validate", str(root / "deployment.yml")).stdout
    assert "is valid" in out


@pytest.mark.parametrize("runtime", ["process", "container"])
def test_a_breakpoint_in_a_linked_file_hits_there(tmp_path, request, runtime):
    """VS Code opens the link's target (web-classification/convert_to_dict.py); the breakpoint set
    there hits, and the stop is shown there."""
    from test_flow_includes import debug_stop_in_shared_file

    if runtime == "container":
        request.getfixturevalue("docker_client")  # skips (or, under CI, fails) without an engine
    debug_stop_in_shared_file(linked_flows(tmp_path / "repo"), tmp_path, runtime)
