"""Where the commands' output goes: the terminal (its width), a file written whole, a last line on a
terminal that may be gone, and table cells from plugin-supplied text."""

from __future__ import annotations

import os
import sys

from harness.exits import UsageError
from harness.store.safe_text import one_line


def emit(text: str, output: str | None) -> None:
    """Print, or write the file whole (atomically): a failed write leaves no partial file."""
    if not output:
        print(text, end="" if text.endswith("\n") else "\n")
        return
    from harness.store import durable

    try:
        durable.replace(output, text.encode("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def tell(line: str) -> None:
    """A last line on stderr, which may be a terminal that is gone (SIGHUP): losing it must not turn a clean
    stop into a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def terminal_width() -> int:
    """The terminal's width; unlimited when output goes to a file or pipe, so lines never wrap there."""
    if not sys.stdout.isatty():
        return 10_000
    return os.get_terminal_size().columns


def table_cells(*values: object) -> list[str]:
    """Table cells from plugin-supplied values: printable (no escape sequence reaches the terminal) and
    free of rich markup."""
    from rich.markup import escape

    return [escape(one_line(str(value))) for value in values]
