"""Text from plugins, workers and result files, made safe to show and to save: the one place for those rules.

Everything that reaches a record, an error line or a terminal passes `one_line`; CSV output passes
`csv_safe` as well, because a spreadsheet runs cells that look like formulas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

# OWASP's CSV injection advice: a cell starting with one of these is a formula to a spreadsheet.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def one_line(text: str) -> str:
    """Every character that is not printable shown as its Python escape: control characters (ESC of a
    terminal escape sequence, BEL, line breaks), lone surrogates (a file name that is not UTF-8, as
    os.fsdecode gives it), bidirectional overrides. The result is one line, encodes as UTF-8, and cannot
    drive a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def last_line(exc: BaseException, named: bool = True) -> str:
    """An exception as one line: its message's last non-blank line (where tracebacks put the cause), after
    its type's name unless `named` is false."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return one_line(f"{type(exc).__name__}: {lines[-1]}" if named else lines[-1])


MAX_TEXT = 2000  # characters in one text of a record; bench's own longest is under 300
CUT = f"… (cut: longer than {MAX_TEXT:,} characters)"


def capped(text: str) -> str:
    """`text` cut to at most MAX_TEXT characters, saying so: a plugin's megabyte exception message must not
    become every report's page. Capped text is left as it is (the cut stays within MAX_TEXT)."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - len(CUT)] + CUT


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with a quote (OWASP); anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_safe(df: "pd.DataFrame") -> "pd.DataFrame":
    """A copy of `df` whose text cells are safe to open in a spreadsheet. Number columns are left alone: a
    negative number is not a formula."""
    from pandas.api.types import is_numeric_dtype

    out = df.copy()
    for column in out.columns:
        if not is_numeric_dtype(out[column]):  # text, object (mixed) and pandas' string columns
            out[column] = out[column].map(csv_cell)
    return out
