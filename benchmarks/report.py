"""Results: sections of rows and targets, their JSON form, a plain-text table and reST."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Column", "Section", "Target", "load", "render_rst", "render_text", "save"]


@dataclass
class Column:
    """One column: the row key, its header and a ``str.format`` spec for numbers."""

    key: str
    header: str
    fmt: str = "{}"


@dataclass
class Target:
    """A goal from the issue, checked against a measured figure.

    :param id: ``T1`` ... ``T6``.
    :param what: the goal in words.
    :param scope: what it was measured on (a driver, a variant).
    :param value: the measured figure.
    :param limit: the bound it must not exceed (or, with ``at_least``, reach).
    :param unit: for display.
    :param met: ``None`` when it could not be judged (skipped, quick run).
    """

    id: str
    what: str
    scope: str
    value: float | bool | None
    limit: float
    unit: str = ""
    at_least: bool = False
    met: bool | None = None

    def judge(self) -> Target:
        """Set :attr:`met` from the value and the limit; returns self."""
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            self.met = None
        elif self.at_least:
            self.met = self.value >= self.limit
        else:
            self.met = self.value <= self.limit
        return self


@dataclass
class Section:
    """The result of one benchmark."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def _cell(value: Any, fmt: str, empty: str = "-") -> str:
    if value is None:
        return empty
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, (int, float)):
        try:
            return fmt.format(value)
        except (ValueError, TypeError):
            return str(value)
    return str(value)


def _grid(section: Section, empty: str = "-") -> list[list[str]]:
    header = [column.header for column in section.columns]
    body = [[_cell(row.get(c.key), c.fmt, empty) for c in section.columns] for row in section.rows]
    return [header, *body]


def _verdict(target: Target) -> str:
    return {True: "met", False: "MISSED", None: "not judged"}[target.met]


def _goal(target: Target) -> str:
    if isinstance(target.value, bool):
        return "yes"
    return f"{'>=' if target.at_least else '<='} {target.limit:g}{target.unit}"


def _measured(target: Target) -> str:
    if isinstance(target.value, bool) or target.value is None:
        return _cell(target.value, "")
    if isinstance(target.value, int) or float(target.value).is_integer():
        return f"{target.value:,.0f}{target.unit}"
    return f"{_cell(target.value, '{:.3g}')}{target.unit}"


def _target_line(target: Target) -> str:
    return (
        f"{target.id} {target.what} [{target.scope}]: {_measured(target)} "
        f"(goal {_goal(target)}) -> {_verdict(target)}"
    )


def render_text(machine: dict[str, Any], sections: list[Section]) -> str:
    """The report printed at the end of a run."""
    lines = ["PyMySQLLock benchmarks", *(f"  {key}: {value}" for key, value in machine.items())]
    for section in sections:
        lines += ["", f"== {section.title} [{section.name}]"]
        if section.skipped:
            lines.append(f"  skipped: {section.skipped}")
            continue
        grid = _grid(section)
        widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
        for number, row in enumerate(grid):
            cells = [
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths))
            ]
            lines.append("  " + "  ".join(cells))
            if number == 0:
                lines.append("  " + "  ".join("-" * width for width in widths))
        lines += [f"  note: {note}" for note in section.notes]
        lines += [f"  target {_target_line(target)}" for target in section.targets]
    targets = [target for section in sections for target in section.targets]
    if targets:
        met = sum(target.met is True for target in targets)
        missed = sum(target.met is False for target in targets)
        lines += [
            "",
            f"targets: {met} met, {missed} missed, {len(targets) - met - missed} not judged",
        ]
    return "\n".join(lines)


def _rst_table(grid: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    rule = "  ".join("=" * width for width in widths)
    out = [rule]
    for number, row in enumerate(grid):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if number == 0:
            out.append(rule)
    out.append(rule)
    return out


def render_rst(machine: dict[str, Any], sections: list[Section], command: str) -> str:
    """The report as reStructuredText, for the documentation to include."""
    title = "Benchmark results"
    lines = [
        ".. This file is written by the benchmark suite; regenerate it, do not edit it.",
        "",
        title,
        "=" * len(title),
        "",
        "Measured with::",
        "",
        f"    {command.strip()}",
        "",
        "(``make bench`` runs ``python -m benchmarks``, with ``BENCH_ARGS`` appended.)",
        "",
        "Machine and versions:",
        "",
        *(f"* {key}: {value}" for key, value in machine.items() if key != "command"),
    ]
    for section in sections:
        lines += ["", section.title, "-" * len(section.title), ""]
        if section.skipped:
            lines.append(f"Skipped: {section.skipped}")
            continue
        # A lone "-" in a reST table cell is an empty bullet list.
        lines += _rst_table(_grid(section, empty="\\-"))
        if section.notes:
            lines.append("")
            lines += [f"* {note}" for note in section.notes]
    targets = [target for section in sections for target in section.targets]
    if targets:
        heading = "Targets"
        lines += ["", heading, "-" * len(heading), ""]
        grid = [["target", "scope", "measured", "goal", "verdict"]]
        for target in targets:
            grid.append(
                [
                    f"{target.id} {target.what}",
                    target.scope,
                    _measured(target),
                    _goal(target),
                    _verdict(target),
                ]
            )
        lines += _rst_table(grid)
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def save(
    path: Path, machine: dict[str, Any], config: dict[str, Any], sections: list[Section]
) -> None:
    """Write the machine-readable result file."""
    document = {
        "machine": machine,
        "config": config,
        "sections": [asdict(section) for section in sections],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(document), indent=2, sort_keys=False) + "\n")


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any], list[Section]]:
    """Read a result file back (for ``--report``)."""
    document = json.loads(path.read_text())
    sections = []
    for raw in document["sections"]:
        columns = [Column(**column) for column in raw.pop("columns")]
        targets = [Target(**target) for target in raw.pop("targets")]
        sections.append(Section(columns=columns, targets=targets, **raw))
    return document["machine"], document["config"], sections
