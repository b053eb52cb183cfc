"""What the spec tests share: a good deployment YAML, and writing files into a test's folder."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


GOOD = textwrap.dedent("""
    $schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
    name: blue
    endpoint_name: my-endpoint
    model:
      path: ./model
    code_configuration:
      code: ./src
      scoring_script: score.py
    environment:
      image: python:3.11-slim
      conda_file: ./conda.yml
""").lstrip("\n")
