"""Ground truth by construction for asyncio: a task parks its loop thread at a known place (a
blocking wait inside its own step), so the test knows which task runs while it samples.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Dict, List

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

from otelprof.correlation import OTHER, TASK_NAME_ATTRIBUTE

from .harness import TIMEOUT, Harness, LoopThread, Parking, Score, attrs, functions, link, link_of

TASKS = 3
ROUNDS = 40  # 3 tasks x 40 parks in spans = 120 samples, plus 3 outside


def in_task_span(parking: Parking, place: str) -> None:
    parking.park(place)


def outside_task_span(parking: Parking, place: str) -> None:
    parking.park(place)


def test_interleaved_tasks_each_in_their_own_span(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[int, Any] = {}

    async def job(index: int) -> None:
        with harness.tracer.start_as_current_span(f"job-{index}") as span:
            spans[index] = span
            for _ in range(ROUNDS):
                in_task_span(parking, f"in-{index}")
                await asyncio.sleep(0)  # the other tasks run here
        outside_task_span(parking, f"out-{index}")

    async def main() -> None:
        tasks = [asyncio.create_task(job(i), name=f"job-{i}") for i in range(TASKS)]
        await asyncio.gather(*tasks)

    score = Score()
    order: List[str] = []
    with LoopThread(main) as loop:
        for _ in range(TASKS * (ROUNDS + 1)):
            place = parking.arrived()
            order.append(place)
            side, index = place.split("-")
            sample = harness.tick_thread(loop.thread)
            expected = link_of(spans[int(index)]) if side == "in" else None
            score.expect(sample, expected, place)
            assert ("in_task_span" in functions(sample)) == (side == "in")
            assert attrs(sample)[TASK_NAME_ATTRIBUTE] == f"job-{index}"
            parking.release(place)
    score.check(min_in_span=TASKS * ROUNDS, min_outside=TASKS)
    # The tasks really interleaved: consecutive samples came from different tasks.
    assert order[:TASKS] == [f"in-{i}" for i in range(TASKS)]


def test_an_idle_loop_is_not_charged_to_a_waiting_task(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}
    wake: List[Any] = []

    async def waiter() -> None:
        with harness.tracer.start_as_current_span("waiting for I/O") as span:
            spans["waiting"] = span
            in_task_span(parking, "before-wait")
            future = asyncio.get_running_loop().create_future()
            wake.append(future)
            await future  # suspended inside its span; the loop sits in its selector

    async def main() -> None:
        await asyncio.create_task(waiter())

    with LoopThread(main) as loop:
        assert parking.arrived() == "before-wait"
        assert link(harness.tick_thread(loop.thread)) == link_of(spans["waiting"])
        parking.release("before-wait")
        idle = wait_for_selector(harness, loop)
        assert link(idle) is None
        loop_object = wake[0].get_loop()
        loop_object.call_soon_threadsafe(wake[0].set_result, None)


def wait_for_selector(harness: Harness, loop: LoopThread) -> Any:
    """Sample until the loop thread is seen inside its selector (polling, bounded)."""
    for _ in range(int(TIMEOUT / 0.001)):
        sample = harness.tick_thread(loop.thread)
        if "select" in [f.function.rsplit(".", 1)[-1] for f in sample.stack[:3]]:
            return sample
        loop.thread.join(0.001)
    raise AssertionError("the loop never went idle")


def test_a_task_inherits_the_span_of_its_creator(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}

    async def child(place: str) -> None:
        in_task_span(parking, place)  # no span of its own

    async def main() -> None:
        with harness.tracer.start_as_current_span("parent") as parent:
            spans["parent"] = parent
            await asyncio.create_task(child("created"))
            await asyncio.gather(child("gathered"))
        await asyncio.create_task(child("no-span"))

    with LoopThread(main) as loop:
        for place, expected in (("created", "parent"), ("gathered", "parent"), ("no-span", None)):
            assert parking.arrived() == place
            sample = harness.tick_thread(loop.thread)
            assert link(sample) == (link_of(spans[expected]) if expected else None), place
            parking.release(place)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="create_task(context=) is new in 3.11")
def test_a_task_given_a_context_gets_that_contexts_span(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}

    async def child() -> None:
        in_task_span(parking, "explicit")

    async def main() -> None:
        other = harness.tracer.start_span("other request")
        spans["other"] = other
        context = otel_context.get_current()
        token = otel_context.attach(trace.set_span_in_context(other, context))
        explicit = __import__("contextvars").copy_context()
        otel_context.detach(token)
        with harness.tracer.start_as_current_span("creator"):
            task = asyncio.get_running_loop().create_task(child(), context=explicit)
        await task
        other.end()

    with LoopThread(main) as loop:
        assert parking.arrived() == "explicit"
        assert link(harness.tick_thread(loop.thread)) == link_of(spans["other"])
        parking.release("explicit")


def test_a_loop_callback_outside_any_task_uses_the_thread_slot(harness: Harness) -> None:
    parking = Parking()
    spans: Dict[str, Any] = {}
    done: List[Any] = []

    def callback() -> None:
        with harness.tracer.start_as_current_span("callback") as span:
            spans["callback"] = span
            in_task_span(parking, "callback")
        done[0].set_result(None)

    async def main() -> None:
        done.append(asyncio.get_running_loop().create_future())
        asyncio.get_running_loop().call_soon(callback)
        await done[0]

    with LoopThread(main) as loop:
        assert parking.arrived() == "callback"
        assert link(harness.tick_thread(loop.thread)) == link_of(spans["callback"])
        parking.release("callback")


def test_task_names_are_capped_and_default_names_dropped() -> None:
    parking = Parking()

    async def named() -> None:
        in_task_span(parking, asyncio.current_task().get_name())  # type: ignore[union-attr]

    async def main() -> None:
        for name in ("alpha", "beta", "gamma"):
            await asyncio.create_task(named(), name=name)
        await asyncio.create_task(named())  # Task-<n>

    seen: Dict[str, Any] = {}
    with Harness(max_task_names=2) as harness, LoopThread(main) as loop:
        for _ in range(4):
            place = parking.arrived()
            seen[place] = attrs(harness.tick_thread(loop.thread)).get(TASK_NAME_ATTRIBUTE)
            parking.release(place)
    default_name = next(p for p in seen if p.startswith("Task-"))
    assert seen == {"alpha": "alpha", "beta": "beta", "gamma": OTHER, default_name: None}
