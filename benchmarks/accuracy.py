"""Compares a profile's time shares per function with a workload's measured ground truth."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from benchmarks.profiles import Samples, short_name


def owner(stack: tuple[str, ...], targets: Mapping[str, float]) -> Optional[str]:
    """The innermost target function on a leaf-first stack (targets never nest)."""
    for frame in stack:
        name = short_name(frame)
        if name in targets:
            return name
    return None


def evaluate(samples: Samples, truth: Mapping[str, float]) -> Dict[str, Any]:
    """Shares of the targets among the samples that fall in a target, against the truth.

    Error is the absolute difference in percentage points per function; ``coverage`` is the
    fraction of the whole profile that fell in a target (informative: startup, the harness
    loop and teardown are outside every target).
    """
    measured: Dict[str, float] = dict.fromkeys(truth, 0.0)
    total = 0.0
    for stack, value in samples:
        total += value
        name = owner(stack, truth)
        if name is not None:
            measured[name] += value
    in_targets = sum(measured.values())
    truth_total = sum(truth.values())
    if in_targets <= 0 or truth_total <= 0:
        raise ValueError(f"no samples in any target function ({len(samples)} samples read)")
    shares = {name: 100.0 * measured[name] / in_targets for name in truth}
    true_shares = {name: 100.0 * truth[name] / truth_total for name in truth}
    errors = {name: abs(shares[name] - true_shares[name]) for name in truth}
    return {
        "shares": shares,
        "truth": true_shares,
        "errors": errors,
        "max_error": max(errors.values()),
        "mean_error": sum(errors.values()) / len(errors),
        "coverage": in_targets / total if total else 0.0,
        "samples": len(samples),
    }
