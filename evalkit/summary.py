"""The data summary `evalkit validate` prints: what was loaded, without fitting anything."""

from __future__ import annotations

from .data import AnalysisData
from .design import Design


def summarize(design: Design, data: AnalysisData) -> str:
    lines = [f"design: {design.where} ({design.title})", f"data: {design.data.source} ({design.data.layout}, {data.rows:,} rows)"]
    lines.append(f"periods: {data.periods[0]} to {data.periods[-1]} ({len(data.periods)} {design.data.frequency}s)")
    lines.append(f"units: {len(data.units)}")
    treated = sorted(data.adoption.items(), key=lambda kv: (str(kv[1]), str(kv[0])))
    lines.append(f"treated units: {len(treated)}")
    for unit, period in treated:
        lines.append(f"  {unit}: adopts {period}")
    comparison = data.comparison_units
    shown = ", ".join(map(str, comparison[:10])) + (f", ... ({len(comparison)} in all)" if len(comparison) > 10 else "")
    lines.append(f"comparison units: {len(comparison)}" + (f" ({shown})" if comparison else ""))
    if data.episodes is not None:
        episodes = data.episodes
        lines.append(f"episodes in the window: {len(episodes):,}")
        lines.append(f"open at extraction (censored): {int(episodes['censored'].sum()):,}")
        if "person" in episodes:
            lines.append(f"persons: {episodes['person'].nunique():,}; repeat reports: {int(episodes['repeat'].sum()):,}")
    if data.has_exposure:
        lines.append(f"exposure: {design.data.exposure.source if design.data.exposure else design.data.columns.get('exposure') or 'looked-after child-days (SSDA903 Episodes tables)'}")
    for check in getattr(data, "checks", []):  # data checks of the reader (DfE rules, caveats)
        lines.append(f"data check {check.name} ({check.status}): {check.detail}")
    lines.append("outcomes:")
    for outcome in design.outcomes:
        extra = ""
        if outcome.name in data.panel:
            total = data.panel[outcome.name].sum()
            extra = f", total {total:,.0f}" if outcome.measure == "count" else ""
        lines.append(f"  {outcome.name}: {outcome.measure}{extra}")
    lines.append("plan: " + ", ".join(f"{a.method} on {a.outcome}" for a in design.analysis))
    return "\n".join(lines)
