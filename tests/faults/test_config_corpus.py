"""Replays the configuration fuzzing corpus, plus a seeded sweep of random inputs.

``corpus/*.json`` holds the inputs the fuzzer (``benchmarks/fuzz_agent_config.py``) found
breaking the invariant of ``tests/faults/config_oracle.py``, and a few hand-picked edges; each
must keep it now. The same files seed the fuzzer.
"""

from __future__ import annotations

import json
import pathlib
import random
from typing import Any, Dict, Tuple

import pytest

from tests.faults.config_oracle import check, decode, encode, problem_of, to_json

CORPUS = sorted((pathlib.Path(__file__).parent / "corpus").glob("*.json"))


def _load(path: pathlib.Path) -> Dict[str, Any]:
    entry = json.loads(path.read_text())
    assert entry["note"], f"{path.name}: say what the case is for"
    case: Dict[str, Any] = entry["case"]
    return case


def test_the_corpus_is_there() -> None:
    assert len(CORPUS) >= 20
    assert {_load(path)["target"] for path in CORPUS} == {"env", "explicit", "headers", "cli"}


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.stem)
def test_corpus_case_keeps_the_invariant(path: pathlib.Path) -> None:
    check(_load(path))


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.stem)
def test_corpus_case_is_spelled_by_an_input(path: pathlib.Path) -> None:
    case = _load(path)
    assert to_json(decode(encode(case))) == to_json(case)


def test_seeded_random_inputs_keep_the_invariant() -> None:
    rng = random.Random(20261121)
    failures: Dict[str, Tuple[str, str]] = {}
    for _ in range(2000):
        size = rng.randint(0, 64)
        # NULs separate settings: make them common enough to get several per input.
        data = bytes(0 if rng.random() < 0.15 else rng.randrange(256) for _ in range(size))
        problem = problem_of(decode(data))
        if problem is not None:
            failures.setdefault(problem[0], (problem[1], to_json(decode(data))))
    assert not failures, failures
