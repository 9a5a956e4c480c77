"""The issue's targets, checked against a run's summaries and said in one line each."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

OVERHEAD_BUDGET_PCT = 1.0
SHARE_ERROR_POINTS = 2.0


def _median(entry: Optional[Dict[str, Any]], key: str) -> Optional[float]:
    if not entry or key not in entry:
        return None
    value: float = entry[key]["median"]
    return value


def _overhead_lines(name: str, summary: Dict[str, Any], budgeted: bool) -> List[str]:
    lines = []
    bare = summary.get("bare")
    if bare and "cpu" in bare:
        cpu = bare["cpu"]
        lines.append(
            f"{name}: noise: bare process CPU ranged {100 * (cpu['max'] / cpu['min'] - 1):.1f}% "
            f"(max/min) over {cpu['n']} rounds"
        )
    return lines + _agent_overhead_lines(name, summary, budgeted)


def _agent_overhead_lines(name: str, summary: Dict[str, Any], budgeted: bool) -> List[str]:
    agent = summary.get("otelprof")
    ratio = _median(agent, "cpu_ratio")
    own = _median(agent, "profiler_share_pct")
    if ratio is None or own is None:
        return [f"{name}: otelprof overhead not measured"]
    overhead = (ratio - 1) * 100
    line = (
        f"{name}: otelprof process CPU {overhead:+.1f}% vs bare (median of paired rounds); "
        f"its own threads {own:.2f}% of the work-phase CPU"
    )
    if budgeted:
        met = overhead <= OVERHEAD_BUDGET_PCT
        line += f" -> {'MET' if met else 'MISSED'} (budget {OVERHEAD_BUDGET_PCT:.0f}%)"
    spy = _median(summary.get("py-spy"), "cpu_ratio")
    spy_own = _median(summary.get("py-spy"), "profiler_share_pct")
    if spy is not None and spy_own is not None:
        spy_overhead = (spy - 1) * 100
        verdict = "no worse than" if overhead <= spy_overhead + 0.5 else "WORSE than"
        own_verdict = "no worse than" if own <= spy_own else "WORSE than"
        line += (
            f"; py-spy {spy_overhead:+.1f}% -> {verdict} py-spy on process CPU (0.5-point "
            f"noise allowance); py-spy's own CPU {spy_own:.2f}% -> {own_verdict} py-spy on it"
        )
    return [line]


def _accuracy_lines(name: str, summary: Dict[str, Any], budgeted: bool) -> List[str]:
    agent = _median(summary.get("otelprof"), "max_error")
    if agent is None:
        return [f"{name}: otelprof accuracy not measured"]
    line = f"{name}: otelprof max share error {agent:.2f} points"
    if budgeted:
        met = agent <= SHARE_ERROR_POINTS
        line += f" -> {'MET' if met else 'MISSED'} (target {SHARE_ERROR_POINTS:.0f})"
    spy = _median(summary.get("py-spy"), "max_error")
    if spy is not None:
        line += f"; py-spy {spy:.2f} -> {'no worse than' if agent <= spy + 0.5 else 'WORSE than'}"
        line += " py-spy"
    return [line]


def verdicts(results: Dict[str, Any]) -> List[str]:
    """One line per target: the web-workload budget, the call-heavy report, the CPU-share error."""
    lines: List[str] = []
    for name, summary in results.get("overhead", {}).items():
        lines += _overhead_lines(name, summary, budgeted=name == "web_service")
    for name, summary in results.get("accuracy", {}).items():
        lines += _accuracy_lines(name, summary, budgeted=name == "cpu_split/cpu")
    return lines
