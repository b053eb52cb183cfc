"""The endpoint record: what ``endpoint.json`` holds and ``show`` prints, key for key."""

from __future__ import annotations

import json

from devtui import registry
from devtui.record import SHOWN, DeploymentRecord, EndpointRecord


def test_a_deployment_record_keeps_exactly_the_keys_it_was_given():
    process = DeploymentRecord(name="blue", runtime="process", revision=None, pid=None)
    assert process.dump() == {"name": "blue", "runtime": "process", "revision": None, "pid": None}
    container = DeploymentRecord(name="blue", container_ids=("abc",), image="devtui/x:1")
    assert container.dump() == {"name": "blue", "container_ids": ["abc"], "image": "devtui/x:1"}


def test_show_prints_the_az_keys_and_the_deployments_as_stored():
    record = EndpointRecord(name="ep", provisioning_state="Succeeded", host_pid=1, logs="/tmp/logs",
                            deployments=[DeploymentRecord(name="blue", pid=7)])
    shown = record.shown()
    assert tuple(shown) == SHOWN
    assert shown["deployments"] == [{"name": "blue", "pid": 7}]
    assert shown["auth_mode"] == "key" and shown["scoring_uri"] is None


def test_the_registry_reads_a_record_with_missing_and_unknown_keys():
    claim = registry.claim("ep")
    try:
        claim.update(provisioning_state="Creating", deployments=[DeploymentRecord(name="blue", runtime="process")])
        stored = json.loads((claim.folder / "endpoint.json").read_text())
        assert stored == {"name": "ep", "host_pid": stored["host_pid"], "provisioning_state": "Creating",
                          "deployments": [{"name": "blue", "runtime": "process"}]}
        stored["from_the_future"] = {"x": 1}
        stored["deployments"][0]["gpu"] = "H200"
        (claim.folder / "endpoint.json").write_text(json.dumps(stored))
        record = registry.read("ep")
        assert record.deployment.name == "blue" and record.deployment.request_settings is None
        assert record.deployment.dump()["gpu"] == "H200" and record.dump()["from_the_future"] == {"x": 1}
        (claim.folder / "endpoint.json").write_text('{"name": "ep", "traffic": "not a mapping"}')
        assert registry.read("ep") is None
    finally:
        claim.release()
    assert registry.read("ep") is None
