"""The table of medians as ratios to the reference, the targets (issues 6 and 18), the chart."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """``ratio >= value`` (higher is better) or ``ratio <= value``; ``absolute`` compares the
    rjupyter value itself."""

    value: float
    higher_is_better: bool
    absolute: bool = False

    def met(self, number: float) -> bool:
        """Whether ``number`` (a ratio, or the absolute value) meets the target."""
        return number >= self.value if self.higher_is_better else number <= self.value

    def __str__(self) -> str:
        sign = ">=" if self.higher_is_better else ("<" if self.absolute else "<=")
        return f"{sign} {self.value:g}" + ("" if self.absolute else "x")


#: Issue 6's targets, raised where issue 18 raised them, and issue 18's new rows.
TARGETS = {
    "bulk download, fast link": Target(0.9, higher_is_better=True),
    "bulk download, fast link, vs OpenSSH AES-GCM": Target(1.0, higher_is_better=True),
    "bulk download, 40 ms RTT": Target(4.0, higher_is_better=True),
    "bulk download, 40 ms RTT, first transfer": Target(3.0, higher_is_better=True),
    "bulk download, 40 ms RTT, second transfer": Target(4.0, higher_is_better=True),
    "bulk download through a jump host, fast link": Target(1.0, higher_is_better=True),
    "bulk download through a jump host, 40 ms RTT, first transfer": Target(
        3.0, higher_is_better=True
    ),
    "small request/response": Target(1.0, higher_is_better=False),
    "new connection + first byte": Target(1.5, higher_is_better=False),
    "200 concurrent, p99": Target(1.0, higher_is_better=False),
    "200 concurrent, p99, tunnel in its own process": Target(1.0, higher_is_better=False),
    "200 concurrent, p99, tunnel in the requesting process": Target(1.2, higher_is_better=False),
    "time to ready (enter to /api/status 200)": Target(1.15, higher_is_better=False),
    "RSS growth moving 2 GiB": Target(50, higher_is_better=False, absolute=True),
    "RSS growth moving 2 GiB through a jump host": Target(
        50, higher_is_better=False, absolute=True
    ),
    "JupyterLab page load": Target(1.2, higher_is_better=False),
    # Parity, within the run-to-run noise of this machine.
    "bulk download to a Unix socket": Target(0.95, higher_is_better=True),
    "small request/response to a Unix socket": Target(1.05, higher_is_better=False),
    "Slurm submit to ready (to /api/status 200)": Target(1.15, higher_is_better=False),
    "JupyterLab first page load, 40 ms RTT": Target(0.9, higher_is_better=False),
    "JupyterLab first page load, 100 ms RTT": Target(0.9, higher_is_better=False),
}


@dataclass(frozen=True)
class Result:
    """One row: the median per tool, in ``unit``."""

    name: str
    unit: str
    values: dict[str, float]
    failures: dict[str, int] = field(default_factory=dict)
    reference: str = "openssh"

    def ratio(self, tool: str) -> float:
        """``tool``'s value over the reference's."""
        reference = self.values.get(self.reference, math.nan)
        return self.values.get(tool, math.nan) / reference if reference else math.nan

    def verdict(self) -> str:
        """ "met" / "NOT met" against the target, or "" for rows without one."""
        target = TARGETS.get(self.name)
        if target is None:
            return ""
        number = self.values["rjupyter"] if target.absolute else self.ratio("rjupyter")
        # The "0 failures" part of a target is rjupyter's own; the references may fail.
        ok = target.met(number) and not self.failures.get("rjupyter", 0)
        return "met" if ok else "NOT met"


_REFERENCES = {"openssh": "OpenSSH", "openssh-gcm": "OpenSSH AES-GCM"}


def _ratio(value: float) -> str:
    """``1.23x``; empty when there is no ratio (e.g. a reference of 0)."""
    return "" if math.isnan(value) else f"{value:.2f}x"


def _number(value: float | None, suffix: str = "") -> str:
    return "" if value is None or math.isnan(value) else f"{value:.3g}{suffix}"


def _cells(result: Result) -> list[str]:
    failures = ", ".join(f"{tool} {count}" for tool, count in result.failures.items())
    reference = _REFERENCES.get(result.reference, result.reference)
    if result.reference != "openssh" and "openssh" in result.values:
        reference += f"; OpenSSH default {_number(result.values['openssh'])}"
    has_sshtunnel = "sshtunnel" in result.values
    return [
        f"{result.name} ({result.unit})" + (f"; failures: {failures}" if failures else ""),
        _number(result.values["rjupyter"]),
        f"{_number(result.values[result.reference])} ({reference})",
        _number(result.values.get("sshtunnel")),
        _ratio(result.ratio("rjupyter")),
        _ratio(result.ratio("sshtunnel")) if has_sshtunnel else "",
        str(TARGETS.get(result.name, "")),
        result.verdict(),
    ]


def render_table(results: list[Result]) -> str:
    """A Markdown table: values per tool, ratios to the reference, target, verdict."""
    lines = [
        "| measure | rjupyter | reference | sshtunnel | rjupyter ÷ ref | sshtunnel ÷ ref "
        "| target | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        lines.append("| " + " | ".join(_cells(result)) + " |")
    return "\n".join(lines)


def write_plot(results: list[Result], path: Path) -> None:
    """A bar chart of each tool's ratio to the reference, per row, with the targets.

    Needs matplotlib (``pip install -e .[bench]``).
    """
    import matplotlib  # noqa: PLC0415 - a benchmark-only extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = [result for result in results if not TARGETS.get(result.name, Target(1, True)).absolute]
    figure, axis = plt.subplots(figsize=(max(10.0, 0.7 * len(rows)), 7))
    width = 0.38
    for offset, tool in ((-width / 2, "rjupyter"), (width / 2, "sshtunnel")):
        ratios = [result.ratio(tool) for result in rows]
        axis.bar([i + offset for i in range(len(rows))], ratios, width, label=tool)
    for index, result in enumerate(rows):
        target = TARGETS.get(result.name)
        if target is not None:
            axis.plot([index - 0.45, index + 0.45], [target.value] * 2, "k--", linewidth=1)
    axis.axhline(1.0, color="grey", linewidth=0.8)
    axis.set_xticks(range(len(rows)))
    axis.set_xticklabels(
        [f"{r.name}\n({'higher' if 'MB/s' in r.unit else 'lower'} is better)" for r in rows],
        rotation=55,
        ha="right",
        fontsize=7,
    )
    axis.set_ylabel("ratio to ssh -L (AES-GCM where named)")
    axis.set_yscale("log")
    axis.set_title("rjupyter and stock sshtunnel vs OpenSSH; dashed: targets")
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
