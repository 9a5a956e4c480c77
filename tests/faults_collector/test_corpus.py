"""The fuzzing regression corpus (corpus/<target>/, kept by benchmarks/fuzz_collector.py) replayed
through the real receivers: every input gets OK or a clear refusal, never an internal error."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, List, Tuple

import grpc
import pytest
from collector.harness import InProcessService, base_config, grpc_export, http_post
from collector.payloads import make_request

from collector_processor.config import load_config
from collector_processor.confparse import ConfigError

CORPUS = Path(__file__).parent / "corpus"
PROTOBUF, JSON = "application/x-protobuf", "application/json"
# Where the request body starts in each target's inputs (the fuzz targets' selector bytes).
BODY_OFFSET = {"protobuf": 0, "json": 0, "gzip": 0, "http": 3, "grpc": 1}
GRPC_ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT}
HTTP_ANSWERS = {200, 400, 413}


def inputs(target: str) -> List[Path]:
    return sorted((CORPUS / target).iterdir()) if (CORPUS / target).is_dir() else []


def bodies() -> List[Tuple[str, bytes]]:
    found = []
    for target, offset in BODY_OFFSET.items():
        found += [(f"{target}/{path.name}", path.read_bytes()[offset:]) for path in inputs(target)]
    return found


def test_the_corpus_is_there() -> None:
    for target in (*BODY_OFFSET, "config"):
        assert len(inputs(target)) >= 5, target


def test_every_corpus_body_gets_a_clear_answer_from_both_receivers(
    start_service: Callable[..., InProcessService],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="collector_processor")
    service = start_service(base_config({"file": {"path": str(tmp_path / "out.jsonl")}}))
    answers = []
    for name, body in bodies():
        # Each body three ways: gRPC, HTTP protobuf, HTTP JSON; gzip inputs also gzip-encoded.
        code, details, _ = grpc_export(service.grpc_port, body)
        assert code in GRPC_ANSWERS and (code == grpc.StatusCode.OK or details), (name, code)
        for content_type in (PROTOBUF, JSON):
            response = http_post(service.http_url, body, content_type)
            assert response.status_code in HTTP_ANSWERS, (name, content_type, response.content)
        if name.startswith("gzip/"):
            response = http_post(service.http_url, body, PROTOBUF, **{"Content-Encoding": "gzip"})
            assert response.status_code in HTTP_ANSWERS, (name, response.content)
        answers.append(code)
    assert grpc.StatusCode.OK in answers and grpc.StatusCode.INVALID_ARGUMENT in answers
    # Nothing logged at WARNING or above: no internal error, no exporter failure.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert (
        grpc_export(service.grpc_port, make_request().SerializeToString())[0] == grpc.StatusCode.OK
    )


def test_every_corpus_config_is_valid_or_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    outcomes = {"valid": 0, "error": 0}
    for source in inputs("config"):
        path.write_bytes(source.read_bytes())
        try:
            load_config([str(path)])
            outcomes["valid"] += 1
        except ConfigError as exc:
            assert str(exc), source.name
            outcomes["error"] += 1
    assert outcomes["error"] > 0
