"""Running real programs under ``otelprof run`` and reading what they wrote."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Dict, List, Optional, Sequence

from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
    ExportProfilesServiceRequest,
)

APPS = pathlib.Path(__file__).parent / "apps"
BIN = pathlib.Path(sys.executable).parent
OTELPROF = [sys.executable, "-m", "otelprof"]


def child_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("OTEL_", "BUSY_APP_")):
            del env[key]
    env["PYTHONPATH"] = str(APPS.parent.parent.parent)  # the checkout, for tests.* imports
    env.update(extra)
    return env


def run(args: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: float = 120):
    return subprocess.run(
        list(args),
        env=env or child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def load_requests(directory: pathlib.Path) -> List[ExportProfilesServiceRequest]:
    requests = []
    for path in sorted(directory.glob("*.otlp.pb")):
        request = ExportProfilesServiceRequest()
        request.ParseFromString(path.read_bytes())
        requests.append(request)
    return requests


def function_names(request: ExportProfilesServiceRequest) -> set:
    d = request.dictionary
    return {d.string_table[f.name_strindex] for f in d.function_table}


def resource_of(request: ExportProfilesServiceRequest) -> Dict[str, str]:
    attributes = request.resource_profiles[0].resource.attributes
    return {a.key: a.value.string_value for a in attributes}


def sampled_functions(request: ExportProfilesServiceRequest, sample_type: str = "cpu") -> set:
    """Functions appearing in the stacks of samples of one sample type."""
    d = request.dictionary
    names = set()
    for profile in request.resource_profiles[0].scope_profiles[0].profiles:
        if d.string_table[profile.sample_type.type_strindex] != sample_type:
            continue
        for sample in profile.samples:
            for location_index in d.stack_table[sample.stack_index].location_indices:
                for line in d.location_table[location_index].lines:
                    names.add(d.string_table[d.function_table[line.function_index].name_strindex])
    return names
