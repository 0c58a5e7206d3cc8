"""The terminal report: rich tables laid out to the terminal's width without ever breaking a name.

Every column gets an explicit width. Names (task, backend, mode, device, run) and numbers never wrap
and are never shortened; words (a status, "not reached") may wrap. When a table still does not fit,
columns give way in a fixed order: first the key columns that hold one value only (their value goes
to the table's title), then the least important figures; what was left out is said under the tables.
The overview splits its task columns over several tables instead; a table that cannot fit even so is
printed as a list, one line per row.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import sys
import textwrap

import pandas as pd
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report.tables import (
    INFERENCE_LATENCY,
    INFERENCE_THROUGHPUT,
    Report,
    Section,
    constant_settings,
    differences_line,
    display_rows,
    result_columns,
    steady_matrix_rows,
    varying_keys,
)

FAILURES_SHOWN = 5  # cells that did not finish ok, one line each, on the one-screen report
WRAP_MIN = 8  # a column of words is never made narrower than this (or its longest word)
# Figures of the results table in the order they give way (terminal headers); the rest always stay. Cold
# start has a headline table of its own; the steady epoch is the figure nothing else shows.
DROP_ORDER = ("samples/J", "device mem", "data", "host mem", "ran on", "CV", "excess", "compile", "samples/s", "cold",
              "to target", "epoch")


def terminal_width() -> int:
    """$COLUMNS, else the terminal's width; unlimited when output goes to a file or pipe (no wrapping there)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return max(60, int(os.environ["COLUMNS"]))
    if not sys.stdout.isatty():
        return 10_000
    return max(60, shutil.get_terminal_size().columns)


def _overhead(columns: int) -> int:
    return 3 * columns + 1  # rich's default box: one space of padding each side and a rule between columns


def _widths(header: list[str], rows: list[list[str]], wrap: frozenset[int]) -> tuple[list[int], list[int]]:
    """(natural, minimum) width of each column: minimum = natural except for columns of words."""
    natural = [max([cell_len(header[i]), *(cell_len(r[i]) for r in rows)]) for i in range(len(header))]
    minimum = list(natural)
    for i in wrap:
        longest = max(cell_len(w) for text in [header[i], *(r[i] for r in rows)] for w in text.split() or [""])
        minimum[i] = max(longest, min(natural[i], WRAP_MIN))
    return natural, minimum


def _dropped(widths: list[int], width: int, drop: list[int]) -> int | None:
    """How many columns of `drop` must go (in order) for columns this wide to fit; None if never."""
    for n in range(len(drop) + 1):
        kept = [w for i, w in enumerate(widths) if i not in drop[:n]]
        if sum(kept) + _overhead(len(kept)) <= width:
            return n
    return None


def fit(header: list[str], rows: list[list[str]], wrap: frozenset[int], width: int,
        drop: list[int]) -> tuple[list[int], dict[int, int]] | None:
    """Columns to keep and their widths so the table fits `width`, dropping columns in the order `drop`;
    a row stays on one line wherever dropping columns can make it fit; words wrap only where it cannot.
    None when nothing fits."""
    natural, minimum = _widths(header, rows, wrap)
    wrapped, unwrapped = _dropped(minimum, width, drop), _dropped(natural, width, drop)
    if wrapped is None:
        return None
    n = unwrapped if unwrapped is not None else wrapped
    kept = [i for i in range(len(header)) if i not in drop[:n]]
    widths = {i: minimum[i] for i in kept}
    spare = width - sum(widths.values()) - _overhead(len(kept))
    for i in kept:  # give words back their natural width, left to right, while there is room
        grow = min(natural[i] - widths[i], spare)
        widths[i] += grow
        spare -= grow
    return kept, widths


def _rich_table(title: str, header: list[str], rows: list[list[str]], kept: list[int], widths: dict[int, int],
                section: Section) -> Table:
    table = Table(title=escape(title) if title else None, title_justify="left")
    for i in kept:
        right = i in section.numeric and i not in section.wrap
        table.add_column(escape(header[i]), width=widths[i], no_wrap=i not in section.wrap, overflow="fold",
                         justify="right" if right else "left")
    for row in rows:
        table.add_row(*(escape(row[i]) for i in kept))
    return table


def _lines(console: Console, text: str, width: int, indent: str = "  ", more: str = "      ") -> None:
    """Text wrapped at spaces only: a name is never split, even one longer than the line."""
    for line in textwrap.wrap(text, width - len(indent), subsequent_indent=more[len(indent):],
                              break_long_words=False, break_on_hyphens=False):
        console.print(indent + escape(line), soft_wrap=True)


def _as_list(console: Console, section: Section, width: int, title: str) -> None:
    """A table too wide for the terminal, one wrapped line per row (names first)."""
    _lines(console, title, width, indent="")
    names = [i for i in range(len(section.header)) if i in section.names]
    for row in section.rows:
        _lines(console, " ".join(row[i] for i in names) + ": " + "; ".join(
            f"{section.header[i]} {row[i]}" for i in range(len(row)) if i not in section.names), width)


def render_failures(console: Console, section: Section, width: int) -> None:
    """Each failed or skipped cell (or group of them): its names and status, then the reason, wrapped."""
    _lines(console, section.title, width, indent="")
    header = section.header
    status, count, why = header.index("status"), header.index("configurations"), header.index("why")
    for row in section.rows:
        settings = [f"{header[i]} {row[i]}" for i in range(status) if i not in section.names]
        line = " ".join(row[i] for i in sorted(section.names)) + (f" ({', '.join(settings)})" if settings else "")
        line += f": {row[status]}" + (f", {row[count]} configurations" if row[count] != "1" else "")
        _lines(console, line, width)
        _lines(console, row[why], width, indent="      ")


def _constant_names(section: Section) -> list[int]:
    return [i for i in sorted(section.names) if len({row[i] for row in section.rows}) == 1]


def render_section(console: Console, section: Section, width: int, drop: list[int] | None = None,
                   title: str | None = None) -> list[int]:
    """Print one section as a table that fits, leaving out first the name columns holding one value (named
    in the title instead), then the columns `drop`, in order; a table with a task column that still does
    not fit is split by task, and as a last resort printed as a list. Returns the columns left out."""
    title = section.title if title is None else title
    constant = [i for i in _constant_names(section) if len(section.rows) > 1 or i != 0]  # one row keeps a name
    laid_out = fit(section.header, section.rows, section.wrap, width, constant + (drop or []))
    if laid_out is None and section.header[:1] == ["task"] and len({r[0] for r in section.rows}) > 1:
        left_out: set[int] = set()
        for task in sorted({r[0] for r in section.rows}):
            part = Section(title, section.header, [r for r in section.rows if r[0] == task], names=section.names,
                           numeric=section.numeric, wrap=section.wrap)
            left_out |= set(render_section(console, part, width, drop, title=f"{title}: {task}"))
        return sorted(left_out)
    if laid_out is None:
        _as_list(console, section, width, title)
        return []
    kept, widths = laid_out
    shared = [f"{section.header[i]} {section.rows[0][i]}" for i in constant if i not in kept]
    console.print(_rich_table("; ".join([title, ", ".join(shared)]) if shared else title, section.header,
                              section.rows, kept, widths, section))
    return [i for i in range(len(section.header)) if i not in kept and i not in constant]


def render_overview(console: Console, section: Section, width: int) -> None:
    """The backend × task overview, its task columns split over as many tables as the width needs."""
    keys = sorted(section.names)
    tasks = [i for i in range(len(section.header)) if i not in section.names]
    natural, _ = _widths(section.header, section.rows, frozenset())
    chunks: list[list[int]] = []
    for i in tasks:
        if chunks and sum(natural[j] for j in keys + chunks[-1] + [i]) + _overhead(len(keys + chunks[-1]) + 1) <= width:
            chunks[-1].append(i)
        else:
            chunks.append([i])
    for n, chunk in enumerate(chunks):
        columns = keys + chunk
        part = Section(section.title + (f" ({n + 1}/{len(chunks)})" if len(chunks) > 1 else ""),
                       [section.header[i] for i in columns], [[r[i] for i in columns] for r in section.rows],
                       names=frozenset(range(len(keys))), numeric=frozenset(range(len(keys), len(columns))))
        render_section(console, part, width)


def _task_tables(console: Console, listed: pd.DataFrame, width: int, prefix: str,
                 targets: dict[str, str]) -> set[str]:
    """The results table, one table per task (its name, shared settings and target in the title); returns
    the headers of the figures hidden to fit."""
    hidden: set[str] = set()
    for task, rows in listed.groupby("task", sort=True):
        header, cells = display_rows(rows, compact=True)
        keys = [k for k in varying_keys(rows) if k != "task"]
        header, cells = header[1:], [row[1:] for row in cells]  # the task is in the title
        columns = result_columns(rows)
        figure = {c.short: len(keys) + j for j, c in enumerate(columns)}
        drop = [figure[name] for name in DROP_ORDER if name in figure]
        if all(row[figure["status"]] == "ok" for row in cells):
            drop.insert(0, figure["status"])  # says nothing when every row says ok
        section = Section("", header, cells, names=frozenset(range(len(keys))),
                          numeric=frozenset(i for c, i in figure.items() if c != "status"),
                          wrap=frozenset(figure[c.short] for c in columns if c.text))
        metric = rows["metric"].dropna()
        target = (f"target {targets[str(task)]}" + (f" (metric: {metric.iloc[0]})" if len(metric) else "")
                  if str(task) in targets else "")
        title = "; ".join(p for p in (f"{prefix}{task}", constant_settings(rows), target) if p)
        hidden |= {header[i] for i in render_section(console, section, width, drop, title=title)}
    return hidden


def _grid(console: Console, section: Section, width: int) -> None:
    """An overview on one screen: its name columns joined into one label, a light box; split by task
    columns (render_overview) only where even that does not fit."""
    keys = sorted(section.names)
    tasks = [i for i in range(len(section.header)) if i not in section.names]
    rows = [[" ".join(r[i] for i in keys if r[i] != "-" and not (section.header[i] == "device" and
                                                                   len({x[i] for x in section.rows}) == 1)),
             *(r[i] for i in tasks)] for r in section.rows]
    header = [" ".join(section.header[i] for i in keys if section.header[i] != "device"
                       or len({x[i] for x in section.rows}) > 1), *(section.header[i] for i in tasks)]
    natural, _ = _widths(header, rows, frozenset())
    if sum(natural) + 2 * (len(header) - 1) > width:
        render_overview(console, section, width)
        return
    _lines(console, section.title, width, indent="")  # above, not as the table's title: that wraps to its width
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False, collapse_padding=True)
    for i, name in enumerate(header):
        table.add_column(escape(name), justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(c) for c in row))
    console.print(table)


def render_keras_cost(console: Console, section: Section, width: int) -> None:
    """The Keras-cost table one task at a time, each pair as "Keras / native" beside its ratio, so that it
    reads at 80 columns; pairs measured as first-epoch excesses are marked."""
    h = {name: i for i, name in enumerate(section.header)}
    devices = {r[h["device"]] for r in section.rows}
    excess = False
    for task in sorted({r[h["task"]] for r in section.rows}):
        rows = []
        for r in (r for r in section.rows if r[h["task"]] == task):
            marked = "excess" in r[h["compile measured as"]]
            excess |= marked
            rows.append([r[h["mode"]] + (f" {r[h['device']]}" if len(devices) > 1 else ""), r[h["engine"]],
                         f"{r[h['Keras epoch']]} / {r[h['native epoch']]}", r[h["epoch ×"]],
                         f"{r[h['Keras compile']]} / {r[h['native compile']]}" + (" *" if marked else ""),
                         r[h["compile ×"]]])
        part = Section(f"Keras cost, {task}: Keras / native on the same engine",
                       ["mode", "engine", "epoch", "×", "compile", "×"], rows,
                       names=frozenset({0, 1}), numeric=frozenset(range(2, 6)))
        _grid(console, part, width)
    note = section.note + (" *: compile as first-epoch excesses (the engine reports no compile time there)."
                           if excess else "")
    _lines(console, note, width, indent="")


def _one_screen(report: Report, console: Console, width: int, say) -> None:
    """The headline: training time and steady epoch per backend and task, what did not finish in one line
    each, and where the rest is."""
    for section in report.sections:
        if section.kind == "overview" and section.title.startswith("Training time"):
            _grid(console, dataclasses.replace(section, title="Training time (all epochs, compile included; "
                                                                "✓: target met)"), width)
    steady = pd.to_numeric(report.shown.get("steady_epoch_s", pd.Series(dtype=float)), errors="coerce")
    if steady.notna().any():
        header, rows = steady_matrix_rows(report.shown, None if not report.sweep else
                                          [k for k in ("run", "backend", "mode", "device") if k in report.shown])
        _grid(console, Section("Steady epoch (median epoch after the first)", header, rows,
                               names=frozenset(i for i, h in enumerate(header)
                                               if h not in set(report.shown["task"].astype(str)))), width)
    else:  # a grid of dashes says nothing: say why there is none
        say("Steady epoch: none, every cell ran one epoch (the first compiles); --epochs 2 or more gives one.")
    bad = report.s[report.s["ok"] < report.s["repeats"]]
    for _, row in bad.head(FAILURES_SHOWN).iterrows():
        what = " ".join(str(row[k]) for k in ("backend", "mode", "task") if isinstance(row.get(k), str))
        line = f"{what}: {row['status']}: {row['message'] if isinstance(row['message'], str) else ''}".rstrip(": ")
        say(line if len(line) <= width else line[: width - 1] + "…")
    if len(bad) > FAILURES_SHOWN:
        say(f"… and {len(bad) - FAILURES_SHOWN} more cells that did not all finish ok")
    kinds = {section.kind for section in report.sections}
    rest = ["cold start" if "Cold start" in " ".join(s.title for s in report.sections) else "",
            "every figure per task", "reasons in full" if "failures" in kinds else "",
            "Keras cost" if "keras_cost" in kinds else ""]
    say(f"The rest ({', '.join(r for r in rest if r)}): add --full, or --format md or html.")


def to_table(report: Report, width: int | None = None, full: bool = False) -> str:
    """The report for a terminal `width` columns wide (default: the terminal's): the headline on one screen,
    or with `full` every section."""
    width = width or terminal_width()
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=False, no_color=True, highlight=False)

    def say(text: str) -> None:
        if text:
            console.print(escape(text))

    say(f"bench report: {report.runs}")
    if report.s.empty and report.inference.empty:
        say("no records (no cell of these runs has finished yet)")
        return buffer.getvalue()
    say(report.busy)
    say(report.machine)
    say(differences_line(report.differences))
    if not full:
        if not report.s.empty:
            _one_screen(report, console, width, say)
        for section in report.sections:  # inference cells: their overviews are their headline
            if section.kind == "overview" and section.title in (INFERENCE_LATENCY, INFERENCE_THROUGHPUT):
                _grid(console, section, width)
        return buffer.getvalue()
    say(report.digest_note)
    hidden: set[str] = set()
    shown_notes: list[str] = []
    for section in report.sections:
        if section.kind == "overview":
            render_overview(console, section, width)
            say(section.note)
        elif section.kind == "failures":
            render_failures(console, section, width)
        elif section.kind == "keras_cost":
            render_keras_cost(console, section, width)
        elif section.kind == "results":
            prefix = "fastest and slowest of " if report.sweep else ""
            hidden |= _task_tables(console, report.listed, width, prefix, report.targets)
            shown_notes = [c.note for c in result_columns(report.listed) if c.short not in hidden]
        else:
            render_section(console, section, width)
            say(section.note)
    named = [h for h in DROP_ORDER if h in hidden] + (["status (ok in every row)"] if "status" in hidden else [])
    if named:
        say(f"hidden to fit {width} columns: {', '.join(named)} (widen the terminal, or use --format md or html)")
    if report.compile_sources:
        say("compile measured by: " + "; ".join(report.compile_sources))
    say("; ".join(shown_notes) + "." if shown_notes else "")
    return buffer.getvalue()
