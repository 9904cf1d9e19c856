"""Readable Dagster metadata: numbers rounded, comparisons and counts as Markdown tables, record lists as Dagster
tables, plots as embedded images; no JSON blobs where a table fits."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

DIGITS = 4


def number(value: float | int | None, digits: int = DIGITS) -> Any:
    """A float rounded for display (NaN and None stay as they are: "n/a" reads better than a made-up zero)."""
    if value is None:
        return MetadataValue.text("n/a")
    if isinstance(value, bool) or isinstance(value, int):
        return value
    return MetadataValue.float(round(float(value), digits) if value == value else float("nan"))


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, np.generic):  # pandas hands numpy scalars
        value = value.item()
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def escape(text: str) -> str:
    """Text shown as itself in Markdown: no emphasis, no table break, no HTML tag swallowed by the UI."""
    return re.sub(r"([|\\`*_<>\[\]])", r"\\\1", text)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], digits: int = DIGITS) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value, digits) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "none", digits: int = DIGITS) -> Any:
    rows = list(rows)
    return MetadataValue.md(markdown_table(header, rows, digits) if rows else empty)


def _size(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and value == value else 0.0


def counts(values: Mapping[str, Any], key: str, value: str = "rows", empty: str = "none", digits: int = DIGITS) -> Any:
    """A name -> count (or seconds, …) mapping as a two-column table, largest first."""
    ordered = sorted(values.items(), key=lambda item: (-_size(item[1]), str(item[0])))
    return table([key, value], ordered, empty, digits)


def records(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> Any:
    """Records as a Dagster table (typed columns, sortable in the UI, readable by code); `columns`: name -> type."""
    schema = TableSchema(columns=[TableColumn(name, kind) for name, kind in columns.items()])
    return MetadataValue.table([TableRecord({name: row.get(name) for name in columns}) for row in rows], schema)


def bullets(items: Sequence[str], shown: int = 20, empty: str = "none") -> Any:
    """Up to `shown` items as a Markdown list, in code font, and how many more."""
    lines = [f"- `{item}`" for item in items[:shown]]
    if len(items) > shown:
        lines.append(f"- … and {len(items) - shown} more")
    return MetadataValue.md("\n".join(lines) if lines else empty)


def image(png_base64: str, title: str) -> Any:
    return MetadataValue.md(f"![{title}](data:image/png;base64,{png_base64})")


def readable(values: Mapping[str, Any], headers: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Metadata reported from elsewhere (the Glue job through Pipes): mappings as two-column tables (`headers`: their
    column names by entry), lists as bullets, floats rounded; the rest as it came."""
    headers = headers or {}
    tidy = {}
    for name, value in values.items():
        raw = value.value if isinstance(value, MetadataValue) else value
        if isinstance(raw, Mapping):
            key, label = headers.get(name, ("name", "value"))
            tidy[name] = counts({str(k): v for k, v in raw.items()}, key, label, digits=2)
        elif isinstance(raw, list):
            tidy[name] = bullets([str(item) for item in raw])
        elif isinstance(raw, float):
            tidy[name] = number(raw)
        else:
            tidy[name] = value
    return tidy
