"""The shipped deployment configs load in the service they are for, and the docs quote them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from .otelcol import FEATURE_GATES, REPO_ROOT

CONFIGS = REPO_ROOT / "deploy" / "configs"
KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
BACKENDS_DOC = REPO_ROOT / "docs" / "backends.md"
OTELCOL_CONFIGS = ["otelcol-profiles.yaml"]
OUR_CONFIGS = ["gateway-to-otelcol.yaml", "gateway-to-pyroscope.yaml"]
# What the manifests' containers get from the downward API and Secrets.
MANIFEST_ENV = {"OTELPROF_GATEWAY_TOKEN": "test-token", "CLUSTER_NAME": "test-cluster"}


def validate_ours(config: Path, env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "collector_processor", "--config", str(config), "--validate"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def config_maps(manifest: Path) -> List[str]:
    documents = yaml.safe_load_all(manifest.read_text())
    return [doc["data"]["config.yaml"] for doc in documents if doc and doc["kind"] == "ConfigMap"]


@pytest.mark.collector
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("name", OTELCOL_CONFIGS)
def test_otelcol_config_validates_with_the_feature_gate_only(
    otelcol_binary: Path, name: str
) -> None:
    command = [str(otelcol_binary), "validate", "--config", str(CONFIGS / name)]
    with_gate = subprocess.run(
        [*command, FEATURE_GATES], check=False, capture_output=True, text=True
    )
    assert with_gate.returncode == 0, with_gate.stderr
    without_gate = subprocess.run(command, check=False, capture_output=True, text=True)
    assert without_gate.returncode != 0
    assert "service.profilesSupport" in without_gate.stderr


@pytest.mark.parametrize("name", OUR_CONFIGS)
def test_collector_processor_config_validates(name: str) -> None:
    result = validate_ours(CONFIGS / name, {"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "config OK"


@pytest.mark.parametrize("manifest", ["gateway.yaml", "app-with-sidecar.yaml"])
def test_kubernetes_config_maps_validate(manifest: str, tmp_path: Path) -> None:
    embedded = config_maps(KUBERNETES / manifest)
    assert embedded, f"{manifest} has no ConfigMap"
    for index, text in enumerate(embedded):
        path = tmp_path / f"config-{index}.yaml"
        path.write_text(text)
        result = validate_ours(path, {"PATH": "/usr/bin:/bin", **MANIFEST_ENV})
        assert result.returncode == 0, result.stderr


def test_backends_doc_quotes_the_config_files_verbatim() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", BACKENDS_DOC.read_text(), flags=re.S)
    files = {path.name: path.read_text() for path in CONFIGS.glob("*.yaml")}
    assert sorted(blocks) == sorted(files.values()), "docs/backends.md and deploy/configs differ"
