"""The frame resolver: a code object's line table is decoded once while the code lives, and an
entry never outlives its code object (so a reused ``id`` cannot find another function's frames)."""

from __future__ import annotations

import gc
import threading
from types import CodeType
from typing import List

import pytest

from otelprof import frames
from otelprof.frames import FrameResolver
from otelprof.samplers.stack import StackSampler


def _code(name: str) -> CodeType:
    namespace: dict = {}
    exec(compile(f"def {name}():\n    x = 1\n    return x\n", f"<{name}>", "exec"), namespace)
    return namespace[name].__code__


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> List[CodeType]:
    """The code objects whose line tables were decoded, in order."""
    seen: List[CodeType] = []
    real = frames._line_starts

    def counting(code: CodeType):  # type: ignore[no-untyped-def]
        seen.append(code)
        return real(code)

    monkeypatch.setattr(frames, "_line_starts", counting)
    return seen


def test_a_line_table_is_decoded_once_across_exports(decoded: List[CodeType]) -> None:
    # A long-lived thread parked in one function (a fresh code object: the samplers share one
    # resolver per process); each export finds the same stack.
    parked, release = threading.Event(), threading.Event()
    namespace: dict = {"parked": parked, "release": release}
    source = "def park_here():\n    parked.set()\n    release.wait(60)\n"
    exec(compile(source, "<parked>", "exec"), namespace)
    park_code = namespace["park_here"].__code__
    thread = threading.Thread(target=namespace["park_here"], name="parked")
    thread.start()
    try:
        assert parked.wait(60)
        sampler = StackSampler(interval_seconds=0.01)
        exports = []
        for _ in range(3):
            sampler.sample_once()
            exports.append(sampler.drain())
    finally:
        release.set()
        thread.join()
    stacks = [next(s.stack for s in snap.samples if s.thread_name == "parked") for snap in exports]
    assert stacks[1] == stacks[0] == stacks[2]
    assert any(frame.function == "park_here" and frame.line == 3 for frame in stacks[0])
    # Decoded at the first export only (with a resolver per export: three times).
    assert decoded.count(park_code) == 1


def test_a_resolver_finds_the_same_frames_again(decoded: List[CodeType]) -> None:
    resolver = FrameResolver()
    code = _code("handler")
    first = [resolver.frame(code, offset) for offset in (0, 2, 4)]
    again = [resolver.frame(code, offset) for offset in (0, 2, 4)]
    assert decoded == [code]
    assert again == first and all(a is b for a, b in zip(again, first))
    assert first[0].function == "handler" and first[0].filename == "<handler>"


def test_an_entry_goes_with_its_code_object() -> None:
    resolver = FrameResolver()
    kept = _code("kept")
    resolver.frame(kept, 0)
    dropped = _code("dropped")
    resolver.frame(dropped, 0)
    assert len(resolver) == 2
    del dropped
    gc.collect()  # the function's namespace is a cycle (its __globals__ holds it)
    assert len(resolver) == 1
    assert resolver.frame(kept, 0).function == "kept"


def test_an_entry_for_another_code_object_at_the_same_id_is_not_used(
    decoded: List[CodeType],
) -> None:
    # What a reused id would look like if an entry outlived its code object.
    resolver = FrameResolver()
    old, new = _code("old_function"), _code("new_function")
    resolver.frame(old, 0)
    resolver._codes[id(new)] = resolver._codes[id(old)]
    assert resolver.frame(new, 0).function == "new_function"
    assert decoded == [old, new]
