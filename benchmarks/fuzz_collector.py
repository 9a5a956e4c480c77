"""Coverage-guided fuzzing (atheris) of the collector's request decoding, validation and config.

Targets (each runs in its own child process for a fixed time budget):

- ``protobuf``: wire bytes -> decode -> validate (fast and exact paths must agree) -> normalize
  -> processors -> serialize -> the file exporter's OTLP/JSON, read back unchanged;
- ``json``: an OTLP/JSON body through the same chain;
- ``gzip``: a gzip body through the bounded decompressor, then the protobuf chain;
- ``http``: Content-Type, Content-Encoding, Authorization and body through the real OTLP/HTTP
  receiver on loopback (answers must be 200/400/401/413/415 with a decodable Status);
- ``grpc``: body and ``authorization`` metadata through the real OTLP/gRPC receiver
  (OK / INVALID_ARGUMENT / UNAUTHENTICATED only);
- ``config``: YAML text through the config loader (only ``ConfigError``, never a traceback).

Invariant everywhere: success or the documented error, never another exception, nothing logged
at ERROR (an internal error), and every input done within ``--timeout`` seconds (libFuzzer's
per-input cap). Crashing inputs land in ``WORK/<target>/crash-*``.

    .venv/bin/python benchmarks/fuzz_collector.py --seconds 60            # every target, 60 s each
    .venv/bin/python benchmarks/fuzz_collector.py --targets json,config --seconds 300
    .venv/bin/python benchmarks/fuzz_collector.py --export-corpus tests/faults_collector/corpus
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("protobuf", "json", "gzip", "http", "grpc", "config")
TOKEN = "fuzz-token-0123456789"
DECOMPRESSED_LIMIT = 1 << 20
EXPORT_PER_TARGET = 40
EXPORT_MAX_BYTES = 16384


class InvariantViolation(AssertionError):
    """The collector answered or behaved in a way its contract forbids."""


class _ErrorLog(logging.Handler):
    """Collects ERROR records of collector_processor: each one is an internal error."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())

    def check(self) -> None:
        if self.records:
            found, self.records = self.records, []
            raise InvariantViolation(f"logged at ERROR: {found}")


# -- seeds ----------------------------------------------------------------------------------
def _seed_requests() -> List[Any]:
    sys.path.insert(0, str(REPO / "tests"))
    from collector.payloads import make_request
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    requests = [
        make_request(samples_per_profile=3),
        make_request(samples_per_profile=20, seed=4, resource_attributes={"host.name": "h"}),
    ]
    referenced = make_request(samples_per_profile=2)
    strings = referenced.dictionary.string_table
    strings.append("deployment.environment")
    strings.append("prod")
    attributes = referenced.resource_profiles[0].resource.attributes
    attributes.add(
        key_strindex=len(strings) - 2, value=AnyValue(string_value_strindex=len(strings) - 1)
    )
    nested = attributes.add(key="nested")
    nested.value.kvlist_value.values.append(KeyValue(key="k", value=AnyValue(int_value=7)))
    nested.value.kvlist_value.values.append(
        KeyValue(key="arr", value=AnyValue(string_value_strindex=len(strings) - 1))
    )
    requests.append(referenced)
    return requests


def write_seeds(target: str, directory: Path) -> None:
    from collector_processor import otlp_json

    directory.mkdir(parents=True, exist_ok=True)
    requests = _seed_requests()
    blobs: List[bytes] = []
    if target == "protobuf":
        blobs = [r.SerializeToString() for r in requests] + [b""]
    elif target == "grpc":
        # Layout read by the grpc target: 1 selector byte (0 = the right token), then the body.
        blobs = [bytes([k]) + r.SerializeToString() for k in (0, 1) for r in requests]
    elif target == "json":
        blobs = [otlp_json.dumps(r).encode() for r in requests] + [b"{}"]
    elif target == "gzip":
        blobs = [gzip.compress(r.SerializeToString()) for r in requests]
        blobs.append(gzip.compress(b"a") + gzip.compress(b"b"))
    elif target == "http":
        # Layout read by the http target: 3 selector bytes, then the body.
        body = requests[0].SerializeToString()
        blobs = [bytes([0, 0, 0]) + body, bytes([1, 1, 0]) + gzip.compress(body)]
        blobs.append(bytes([2, 0, 0]) + otlp_json.dumps(requests[2]).encode())
    elif target == "config":
        blobs = [
            path.read_bytes() for path in sorted((REPO / "tests/collector/testdata").glob("*.yaml"))
        ]
        blobs.append(
            (REPO / "docs/collector.md").read_text().split("```yaml\n")[1].split("```")[0].encode()
        )
    for blob in blobs:
        (directory / hashlib.sha1(blob).hexdigest()).write_bytes(blob)


# -- the request chain ----------------------------------------------------------------------
def _processors() -> List[Any]:
    from collector_processor.config import parse_config
    from collector_processor.processor.resource import ResourceProcessor
    from collector_processor.processor.resourcedetection import ResourceDetectionProcessor

    config = parse_config(
        {
            "receivers": {"otlp": {"protocols": {"http": None}}},
            "processors": {
                "resourcedetection": {"detectors": ["env"]},
                "resource": {
                    "attributes": [
                        {"key": "deployment.environment", "value": "prod", "action": "upsert"},
                        {"key": "team", "from_attribute": "service.name", "action": "insert"},
                        {"key": "host.name", "action": "hash"},
                        {"pattern": "^secret", "action": "delete"},
                        {"key": "service.name", "pattern": "^(?P<svc>[a-z]+)", "action": "extract"},
                        {"key": "nested", "converted_type": "string", "action": "convert"},
                    ]
                },
            },
            "exporters": {"file": {"path": os.devnull}},
            "service": {
                "pipelines": {
                    "profiles": {
                        "receivers": ["otlp"],
                        "processors": ["resourcedetection", "resource"],
                        "exporters": ["file"],
                    }
                }
            },
        }
    )
    return [
        ResourceDetectionProcessor(
            "resourcedetection", config.processors["resourcedetection"].settings
        ),
        ResourceProcessor("resource", config.processors["resource"].settings),
    ]


def make_request_chain() -> Callable[[Any, Optional[bytes]], None]:
    from opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2 import (
        ExportProfilesServiceRequest,
    )

    from collector_processor import otlp_json
    from collector_processor.errors import InvalidRequestError
    from collector_processor.normalize import resolve_string_references
    from collector_processor.validation import validate_request

    processors = _processors()

    def chain(request: Any, wire: Optional[bytes]) -> None:
        errors: List[Optional[str]] = []
        for with_wire in (wire, None) if wire is not None else (None,):
            copy = ExportProfilesServiceRequest()
            copy.CopyFrom(request)
            try:
                validate_request(copy, with_wire)
                errors.append(None)
            except InvalidRequestError as exc:
                errors.append(str(exc))
        if len({error is None for error in errors}) > 1:
            raise InvariantViolation(f"fast and exact validation disagree: {errors}")
        if errors[0] is not None:
            return
        resolve_string_references(request)
        for processor in processors:
            processor.process(request)
        payload = request.SerializeToString()
        stored = ExportProfilesServiceRequest.FromString(payload)
        stored.DiscardUnknownFields()  # OTLP/JSON cannot carry them: the file exporter drops them
        line = otlp_json.dumps(stored)  # what the file exporter writes
        if "\n" in line:
            raise InvariantViolation("an OTLP/JSON line contains a newline")
        back = otlp_json.loads(line)
        if back.SerializeToString(deterministic=True) != stored.SerializeToString(
            deterministic=True
        ):
            raise InvariantViolation("OTLP/JSON round trip changed the request")

    return chain


def target_protobuf() -> Callable[[bytes], None]:
    from collector_processor.errors import InvalidRequestError
    from collector_processor.receiver.ingest import parse_protobuf

    chain = make_request_chain()

    def run(data: bytes) -> None:
        try:
            request = parse_protobuf(data)
        except InvalidRequestError:
            return
        chain(request, data)

    return run


def target_json() -> Callable[[bytes], None]:
    from collector_processor import otlp_json
    from collector_processor.errors import InvalidRequestError

    chain = make_request_chain()

    def run(data: bytes) -> None:
        try:
            request = otlp_json.loads(data)
        except InvalidRequestError:
            return
        chain(request, None)

    return run


def target_gzip() -> Callable[[bytes], None]:
    from collector_processor.errors import InvalidRequestError
    from collector_processor.receiver.http import BodyTooLarge, gunzip_limited

    protobuf = target_protobuf()

    def run(data: bytes) -> None:
        try:
            body = gunzip_limited(data, DECOMPRESSED_LIMIT)
        except (InvalidRequestError, BodyTooLarge):
            return
        try:
            expected = gzip.decompress(data)
        except Exception:
            expected = None
        if expected is not None and expected != body:
            raise InvariantViolation("gunzip_limited differs from gzip.decompress")
        protobuf(body)

    return run


# -- the real receivers ---------------------------------------------------------------------
def _start_service() -> Any:
    sys.path.insert(0, str(REPO / "tests"))
    from collector.backends import BackgroundLoop
    from collector.harness import InProcessService

    config = {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {
                        "endpoint": "127.0.0.1:0",
                        "auth": {"authenticator": "bearertokenauth"},
                    },
                    "http": {
                        "endpoint": "127.0.0.1:0",
                        "auth": {"authenticator": "bearertokenauth"},
                        "max_request_body_size": DECOMPRESSED_LIMIT,
                    },
                }
            }
        },
        "extensions": {"bearertokenauth": {"token": TOKEN}},
        # No queue: the file export runs before the answer, so its errors belong to this input.
        "exporters": {"file": {"path": os.devnull, "sending_queue": {"enabled": False}}},
        "service": {
            "extensions": ["bearertokenauth"],
            "pipelines": {"profiles": {"receivers": ["otlp"], "exporters": ["file"]}},
        },
    }
    return InProcessService(BackgroundLoop(), config).start()


CONTENT_TYPES = ("application/x-protobuf", "application/json", "application/json; charset=utf-8")
ENCODINGS = ("", "gzip", "identity")
AUTHS = (f"Bearer {TOKEN}", "", "Bearer wrong", f"Basic {TOKEN}")
HTTP_ALLOWED = {200, 400, 401, 413, 415}
_HEADER_SAFE = re.compile(rb"[^\x20-\x7e]")


def _pick(options: Any, selector: int, data: bytes) -> str:
    if selector < len(options) * 60:
        return str(options[selector % len(options)])
    return _HEADER_SAFE.sub(b"", data[:40]).decode("ascii")


def target_http() -> Callable[[bytes], None]:
    import http.client

    from google.protobuf import json_format
    from google.rpc import status_pb2

    service = _start_service()
    port = service.service.receivers["otlp"].http.port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def run(data: bytes) -> None:
        if len(data) < 3:
            return
        body = data[3:]
        headers = {
            "Content-Type": _pick(CONTENT_TYPES, data[0], body),
            "Content-Encoding": _pick(ENCODINGS, data[1], body[::-1]),
            "Authorization": _pick(AUTHS, data[2], body[1:]),
        }
        headers = {key: value.strip() for key, value in headers.items() if value.strip()}
        connection.request("POST", "/v1development/profiles", body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status not in HTTP_ALLOWED:
            raise InvariantViolation(f"HTTP {response.status}: {answer[:200]!r}")
        if response.status != 200:
            status = status_pb2.Status()
            if response.getheader("Content-Type", "").startswith("application/json"):
                json_format.Parse(answer, status)
            else:
                status.ParseFromString(answer)
            if not status.message:
                raise InvariantViolation(f"HTTP {response.status} without a message")
        ERROR_LOG.check()

    return run


def target_grpc() -> Callable[[bytes], None]:
    import grpc

    service = _start_service()
    channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc_port}")
    export = channel.unary_unary(
        "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
    )
    allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED}

    def run(data: bytes) -> None:
        if not data:
            return
        auth = _pick(AUTHS, data[0], data[1:])
        metadata = (("authorization", auth),) if auth else ()
        try:
            export(data[1:], metadata=metadata, timeout=30)
        except grpc.RpcError as error:
            if error.code() not in allowed or not error.details():
                raise InvariantViolation(f"gRPC {error.code()}: {error.details()}") from None
        ERROR_LOG.check()

    return run


def target_config() -> Callable[[bytes], None]:
    from collector_processor.config import load_config
    from collector_processor.confparse import ConfigError

    directory = Path(tempfile.mkdtemp(prefix="fuzz-config-"))
    path = directory / "config.yaml"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        try:
            load_config([str(path)])
        except ConfigError as exc:
            if not str(exc):
                raise InvariantViolation("a ConfigError without a message") from None

    return run


ERROR_LOG = _ErrorLog()
FACTORIES: Dict[str, Callable[[], Callable[[bytes], None]]] = {
    "protobuf": target_protobuf,
    "json": target_json,
    "gzip": target_gzip,
    "http": target_http,
    "grpc": target_grpc,
    "config": target_config,
}


def run_child(target: str, libfuzzer_args: List[str]) -> None:
    import atheris

    logging.getLogger("collector_processor").addHandler(ERROR_LOG)
    with atheris.instrument_imports(include=["collector_processor"]):
        import collector_processor.app
        import collector_processor.config  # noqa: F401
    body = FACTORIES[target]()

    def one_input(data: bytes) -> None:
        body(data)
        ERROR_LOG.check()

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


# -- the driver -----------------------------------------------------------------------------
_STATS = re.compile(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)\s+cov: (\d+) ft: (\d+) corp: (\d+)")


def fuzz_target(
    target: str, work: Path, seconds: int, timeout: int, regression: Path
) -> Dict[str, Any]:
    seeds, corpus = work / target / "seeds", work / target / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    write_seeds(target, seeds)
    dirs = [corpus, seeds] + ([regression / target] if (regression / target).is_dir() else [])
    args = [
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        "-rss_limit_mb=2048",
        "-max_len=32768",
        f"-artifact_prefix={work / target}/",
        "-print_final_stats=1",
        *map(str, dirs),
    ]
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, __file__, "--child", target, "--", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    (work / target / "fuzz.log").write_text(process.stdout)
    stats = _STATS.findall(process.stdout)
    runs, cov, _, corp = (int(x) for x in stats[-1]) if stats else (0, 0, 0, 0)
    crashes = sorted(p.name for p in (work / target).glob("crash-*"))
    crashes += sorted(p.name for p in (work / target).glob("timeout-*"))
    crashes += sorted(p.name for p in (work / target).glob("oom-*"))
    return {
        "target": target,
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
        "coverage": cov,
        "corpus": corp,
        "crashes": crashes,
        "exit": process.returncode,
    }


def export_corpus(target: str, work: Path, out: Path) -> int:
    """Keep crashers and the smallest distinct corpus inputs as regression inputs."""
    chosen = sorted((work / target).glob("crash-*")) + sorted((work / target).glob("timeout-*"))
    files = [
        p for p in (work / target / "corpus").iterdir() if p.stat().st_size <= EXPORT_MAX_BYTES
    ]
    chosen += sorted(files, key=lambda p: (p.stat().st_size, p.name))[:EXPORT_PER_TARGET]
    (out / target).mkdir(parents=True, exist_ok=True)
    for path in chosen:
        data = path.read_bytes()
        shutil.copyfile(path, out / target / hashlib.sha1(data).hexdigest()[:16])
    return len(chosen)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_child(sys.argv[2], sys.argv[4:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--seconds", type=int, default=60, help="budget per target")
    parser.add_argument("--timeout", type=int, default=5, help="per-input cap (seconds)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "fuzz_collector")
    parser.add_argument("--export-corpus", type=Path, default=None)
    args = parser.parse_args()
    regression = REPO / "tests/faults_collector/corpus"
    failed = False
    print(f"{'target':9} {'runs':>9} {'s':>6} {'exec/s':>7} {'cov':>6} {'corpus':>6}  crashes")
    for target in args.targets.split(","):
        result = fuzz_target(target, args.work, args.seconds, args.timeout, regression)
        rate = result["runs"] / max(result["seconds"], 1e-9)
        print(
            f"{target:9} {result['runs']:9d} {result['seconds']:6.0f} {rate:7.0f} "
            f"{result['coverage']:6d} {result['corpus']:6d}  {result['crashes'] or 'none'}"
            + (f" (exit {result['exit']})" if result["exit"] and not result["crashes"] else "")
        )
        failed |= bool(result["crashes"]) or result["exit"] not in (0,)
        if args.export_corpus is not None:
            export_corpus(target, args.work, args.export_corpus)
    print(f"logs and crashing inputs: {args.work}/<target>/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
