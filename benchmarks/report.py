"""Summaries of benchmark runs: medians, spreads, ratios against bare, markdown tables."""

from __future__ import annotations

import statistics
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.harness import Run


def spread(values: Sequence[float]) -> Dict[str, float]:
    """Median, min, max and the interquartile range of ``values``."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "q1": q1,
        "q3": q3,
        "n": len(ordered),
    }


def _paired_ratios(runs: Sequence[Run], base: Sequence[Run], metric: str) -> List[float]:
    """config / bare for each round both completed: interleaving makes rounds comparable."""
    base_by_round = {r.round: getattr(r, metric) for r in base if r.ok}
    return [
        getattr(r, metric) / base_by_round[r.round]
        for r in runs
        if r.ok and base_by_round.get(r.round)
    ]


def summarize_overhead(runs: Sequence[Run], baseline: str = "bare") -> Dict[str, Any]:
    """Per configuration: medians and spreads, and paired ratios against ``baseline``."""
    by_config: Dict[str, List[Run]] = {}
    for run in runs:
        by_config.setdefault(run.config, []).append(run)
    base = by_config.get(baseline, [])
    out: Dict[str, Any] = {}
    for name, config_runs in by_config.items():
        ok = [r for r in config_runs if r.ok]
        entry: Dict[str, Any] = {"runs": len(config_runs), "ok": len(ok)}
        if not ok:
            entry["error"] = next((r.error for r in config_runs if r.error), "no run completed")
            out[name] = entry
            continue
        for metric in ("cpu", "work_cpu", "work_wall", "profiler_cpu", "external_cpu"):
            entry[metric] = spread([getattr(r, metric) for r in ok])
        entry["profiler_share_pct"] = spread([100 * r.profiler_cpu / r.work_cpu for r in ok])
        if base and name != baseline:
            for metric in ("cpu", "work_cpu", "work_wall"):
                ratios = _paired_ratios(ok, base, metric)
                if ratios:
                    entry[f"{metric}_ratio"] = spread(ratios)
        out[name] = entry
    return out


def summarize_accuracy(runs: Sequence[Run]) -> Dict[str, Any]:
    """Per configuration: the error over rounds and the median share per function."""
    by_config: Dict[str, List[Run]] = {}
    for run in runs:
        by_config.setdefault(run.config, []).append(run)
    out: Dict[str, Any] = {}
    for name, config_runs in by_config.items():
        ok = [r.accuracy for r in config_runs if r.ok and r.accuracy]
        entry: Dict[str, Any] = {"runs": len(config_runs), "ok": len(ok)}
        if not ok:
            entry["error"] = next((r.error for r in config_runs if r.error), "no profile read")
            out[name] = entry
            continue
        entry["max_error"] = spread([a["max_error"] for a in ok])
        entry["mean_error"] = spread([a["mean_error"] for a in ok])
        entry["coverage"] = spread([a["coverage"] for a in ok])
        entry["truth"] = ok[0]["truth"]
        entry["shares"] = {
            fn: statistics.median(a["shares"][fn] for a in ok) for fn in ok[0]["shares"]
        }
        out[name] = entry
    return out


def _range(s: Optional[Dict[str, float]], fmt: str = "{:.2f}", scale: float = 1.0) -> str:
    if not s:
        return "n/a"
    return (
        f"{fmt.format(s['median'] * scale)} "
        f"[{fmt.format(s['min'] * scale)}, {fmt.format(s['max'] * scale)}]"
    )


def _pct(s: Optional[Dict[str, float]]) -> str:
    """A ratio's spread as overhead percentages."""
    if not s:
        return "n/a"

    def p(x: float) -> str:
        return f"{(x - 1) * 100:+.1f}%"

    return f"{p(s['median'])} [{p(s['min'])}, {p(s['max'])}]"


def overhead_table(title: str, summary: Dict[str, Any], missing: Dict[str, str]) -> str:
    lines = [
        f"#### {title}",
        "",
        "| config | runs | process CPU s | CPU vs bare | work-phase CPU vs bare "
        "| work wall vs bare | profiler's own CPU (% of work CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, e in summary.items():
        if "error" in e:
            lines.append(f"| {name} | 0/{e['runs']} | failed: {e['error'][:80]} | | | | |")
            continue
        lines.append(
            f"| {name} | {e['ok']}/{e['runs']} | {_range(e['cpu'])} | {_pct(e.get('cpu_ratio'))} "
            f"| {_pct(e.get('work_cpu_ratio'))} | {_pct(e.get('work_wall_ratio'))} "
            f"| {_range(e['profiler_share_pct'])} |"
        )
    for name, reason in missing.items():
        lines.append(f"| {name} | - | not available: {reason} | | | | |")
    return "\n".join(lines) + "\n"


def accuracy_table(title: str, summary: Dict[str, Any], missing: Dict[str, str]) -> str:
    truth_row: Dict[str, float] = next((e["truth"] for e in summary.values() if "truth" in e), {})
    functions = sorted(truth_row, key=lambda fn: -truth_row[fn])
    header = " | ".join(f"{fn} %" for fn in functions)
    lines = [
        f"#### {title}",
        "",
        f"| config | runs | max error, points | mean error, points | {header} | coverage |",
        "|---|---|---|---|" + "---|" * len(functions) + "---|",
        "| *ground truth* | | | | "
        + " | ".join(f"{truth_row[fn]:.1f}" for fn in functions)
        + " | |",
    ]
    for name, e in summary.items():
        if "error" in e:
            lines.append(
                f"| {name} | 0/{e['runs']} | failed: {e['error'][:80]} | |"
                + " |" * len(functions)
                + " |"
            )
            continue
        shares = " | ".join(f"{e['shares'][fn]:.1f}" for fn in functions)
        lines.append(
            f"| {name} | {e['ok']}/{e['runs']} | {_range(e['max_error'])} "
            f"| {_range(e['mean_error'])} | {shares} | {e['coverage']['median']:.0%} |"
        )
    for name, reason in missing.items():
        lines.append(f"| {name} | - | not available: {reason} | |" + " |" * len(functions) + " |")
    return "\n".join(lines) + "\n"
