"""Secrets are masked by name and by what the value looks like (issue 13, item 2)."""

from __future__ import annotations

import pytest

from devtui.masking import MASK, mask


@pytest.mark.parametrize("name, value, shown", [
    ("DATABASE_URL", "postgres://user:pass@db.example:5432/app", f"postgres://user:{MASK}@db.example:5432/app"),
    ("BROKER", "amqp://guest@rabbit/", f"amqp://{MASK}@rabbit/"),
    ("BLOB", "https://acct.blob.core.windows.net/c/f?sv=2022-11-02&sr=b&sig=abc%2Fdef",
     f"https://acct.blob.core.windows.net/c/f?sv=2022-11-02&sr=b&sig={MASK}"),
    ("WEBHOOK", "https://fn.example/api/x?code=s3cr3t&name=a", f"https://fn.example/api/x?code={MASK}&name=a"),
    ("STORAGE", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc123==;EndpointSuffix=x",
     f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={MASK};EndpointSuffix=x"),
    ("SOMETHING", "AKIAIOSFODNN7EXAMPLE", MASK),
    ("GH", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", MASK),
    ("AZURE_OPENAI_API_KEY", "short", MASK),
    ("MY_PASSWORD", "hunter2", MASK),
    ("LOG_LEVEL", "INFO", "INFO"),
    ("ENDPOINT", "https://example.com/score?version=2", "https://example.com/score?version=2"),
    ("PREDICTION_ROUND_DIGITS", "2", "2"),
])
def test_mask(name, value, shown):
    assert mask(name, value) == shown


def test_devtui_home_and_its_files_are_private(devtui_home):
    """DEVTUI_HOME 700, its files 600: logs and records may hold what a script printed."""
    import os
    import stat

    from devtui import registry
    from devtui.events import DEVTUI, LogRecord
    from devtui.logs import LogFiles

    os.chmod(devtui_home, 0o755)  # as an earlier devtui left it
    claim = registry.claim("private-ep")
    claim.update(name="private-ep")
    files = LogFiles(claim.folder / "logs")
    files.write([LogRecord(DEVTUI, "hello")])
    files.close()
    claim.release(remove=False)
    for path in [devtui_home, devtui_home / "endpoints", claim.folder, claim.folder / "logs"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in [claim.folder / "endpoint.json", claim.folder / "lock", claim.folder / "logs" / "devtui.log"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_endpoint_name_is_never_a_path():
    from devtui import registry

    with pytest.raises(registry.BadName):
        registry.folder("../../x")
    with pytest.raises(registry.BadName):
        registry.folder("a/b")


@pytest.mark.parametrize("verb", [["logs"], ["show"], ["down"]])
def test_a_path_as_an_endpoint_name_is_refused_by_every_command(verb, devtui_home):
    from helpers import devtui

    outside = devtui_home.parent / "x"
    (outside / "logs").mkdir(parents=True, exist_ok=True)
    (outside / "logs" / "inference-server.log").write_text("a secret line outside DEVTUI_HOME\n")
    result = devtui(*verb, "-n", "../../x", check=2)
    assert "is not an endpoint name" in result.stderr
    assert "secret" not in result.stdout
