"""The report as data (sections of tables, figures and notes) and its Markdown and HTML forms."""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from typing import Any

from mnist_suite.report.collect import number
from mnist_suite.text import code_span, markdown, printable
from mnist_suite.verdicts import p_text


def fmt(value: Any, kind: str = "text") -> str:
    """One table cell as text; missing values are an em dash.

    kind: ``text``; ``pct`` (fraction -> 92.51%); ``pp`` (fraction difference -> +1.23 pp);
    ``f4``/``f3``/``f2`` (fixed decimals); ``g`` (4 significant digits); ``int``;
    ``t`` (a time: 12,345 or 9.61); ``x`` (ratio -> 3.1x); ``±pct`` (half-width of a
    fraction's interval -> ± 0.12 pp); ``±f4`` (half-width -> ± 0.0012); ``p`` (a p-value ->
    0.050, :func:`mnist_suite.verdicts.p_text`); ``cell`` (the value is a ``(value, kind)``
    pair: rows of one column in different units).
    """
    if kind == "cell":  # a column whose rows differ in kind: the cell is (value, kind)
        return fmt(*value) if isinstance(value, tuple | list) else fmt(value)
    x = number(value)
    if value is None or value == "" or (isinstance(value, float) and x is None):
        return "—"
    if kind == "text" or x is None:
        return str(value)
    if kind == "pct":
        return f"{x:.2%}"
    if kind == "pp":
        return f"{100 * x:+.2f} pp"
    if kind in ("f2", "f3", "f4"):
        return f"{x:.{kind[1]}f}"
    if kind == "int":
        return f"{x:,.0f}"
    if kind == "t":  # times: whole units with separators, small ones with 3 digits
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    if kind == "x":
        return f"{x:.1f}×"
    if kind == "±pct":
        return f"± {100 * x:.2f} pp"
    if kind == "±f4":
        return f"± {x:.4f}"
    if kind == "p":
        return p_text(x)
    return f"{x:.4g}"


@dataclass
class Table:
    """Columns are (header, kind) pairs; rows hold raw values, formatted only when rendered."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[list[Any]]
    marked: set[int] = field(default_factory=set)  # row indices shown in bold (e.g. the best)
    note: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells in bold
    hide_empty: bool = False  # leave out columns with no value in any row (results.json keeps them)

    def shown(self) -> list[int]:
        """Indices of the columns the pages show."""
        return [
            j
            for j in range(len(self.columns))
            if not self.hide_empty or any(row[j] not in (None, "") for row in self.rows)
        ]

    def headers(self) -> list[tuple[str, str]]:
        return [self.columns[j] for j in self.shown()]

    def text_rows(self) -> list[list[str]]:
        shown = self.shown()
        return [[fmt(row[j], self.columns[j][1]) for j in shown] for row in self.rows]

    def keys(self) -> list[str]:
        """Each column's field name in ``results.json``: its header in snake case."""
        return [_field_name(name) for name, _ in self.columns]

    def to_json(self) -> dict:
        """Rows as records keyed by :meth:`keys`; raw values (fractions, seconds, None)."""
        keys = self.keys()
        return {
            "title": self.title,
            "columns": [
                {"key": k, "header": name, "kind": kind}
                for k, (name, kind) in zip(keys, self.columns, strict=True)
            ],
            "rows": [
                {k: _raw(v, kind) for k, (_, kind), v in zip(keys, self.columns, row, strict=True)}
                for row in self.rows
            ],
            "marked": sorted(self.marked),
            "bold": [{"row": r, "column": keys[c]} for r, c in sorted(self.bold)],
            "note": self.note,
        }


def _field_name(header: str) -> str:
    """``"95% CI ±"`` -> ``"95pct_ci"``, ``"ours (mean)"`` -> ``"ours_mean"``."""
    text = header.replace("%", "pct").replace("÷", "over").replace("Δ", "delta").replace("≥", "ge")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "value"


def _raw(value: Any, kind: str) -> Any:
    """A cell as JSON: the value of a ``(value, kind)`` cell; non-finite numbers as None."""
    if kind == "cell" and isinstance(value, tuple | list):
        value = value[0]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class FigureRef:
    file: str  # relative to the report folder, e.g. figures/confusion.png
    title: str
    caption: str = ""
    alt: str = ""  # what the figure shows, as a sentence with its takeaway (the image's alt)

    @property
    def alt_text(self) -> str:
        return self.alt or f"{self.title}. {self.caption}".strip()


@dataclass
class Section:
    key: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureRef] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is missing, failed, diverged

    def to_json(self) -> dict:
        return {
            "key": self.key,
            "title": self.title,
            "tables": [t.to_json() for t in self.tables],
            "figures": [f.file for f in self.figures],
            "notes": self.notes,
        }


def _md_text(text: str) -> str:
    """Text from runs (names, configs, problems) as inert markdown on one line: no raw HTML,
    link, heading or control character passes (:func:`mnist_suite.text.markdown`)."""
    return markdown(text)


_md_cell = _md_text  # "|" is escaped too, so a cell cannot split a table row

# The two marks the report's prose uses: `code` and **emphasis**. Everything else is text.
_INLINE = re.compile(r"`([^`]+)`|\*\*([^*]+)\*\*")


def _inline(text: str, plain, code, strong) -> str:
    """Prose with its `code` and **emphasis** marks rendered by ``code`` and ``strong``, the
    rest by ``plain``: each piece is escaped for its medium, whatever the marks enclose."""
    out, at = [], 0
    for m in _INLINE.finditer(text):
        out.append(plain(text[at : m.start()]))
        out.append(code(m[1]) if m[1] is not None else strong(m[2]))
        at = m.end()
    return "".join(out) + plain(text[at:])


def _md_prose(text: str) -> str:
    """Prose (intros, notes, captions) as markdown: its marks kept, everything else inert."""
    return _inline(text, markdown, code_span, lambda t: f"**{markdown(t)}**")


def _html(text: object) -> str:
    """Text as HTML: entities for markup, control characters shown as escapes."""
    return html.escape(printable(text))


def _html_prose(text: str) -> str:
    """Prose as HTML: `code` as <code>, **emphasis** as <strong>; no markdown left raw."""
    return _inline(
        printable(text),
        html.escape,
        lambda t: f"<code>{html.escape(t)}</code>",
        lambda t: f"<strong>{html.escape(t)}</strong>",
    )


def _breakable(escaped: str) -> str:
    """Escaped text that may wrap after ``_`` and ``/`` (``test_accuracy``,
    ``ae-original/original-2d``): a narrow table wraps its names instead of overflowing."""
    return re.sub(r"([_/])", r"\1<wbr>", escaped)


def render_markdown(title: str, sections: list[Section], subtitle: str = "") -> str:
    lines = [f"# {title}", ""] + ([_md_prose(subtitle), ""] if subtitle else [])
    lines += [f"- [{s.title}](#{s.key})" for s in sections] + [""]
    for s in sections:
        lines += [f'<a id="{s.key}"></a>', "", f"## {s.title}", ""]
        if s.intro:
            lines += [_md_prose(s.intro), ""]
        lines += [f"> {_md_prose(note)}" for note in s.notes] + ([""] if s.notes else [])
        for t in s.tables:
            lines += [f"**{_md_text(t.title)}**", ""]
            lines.append("| " + " | ".join(_md_cell(n) for n, _ in t.headers()) + " |")
            lines.append("|" + "|".join("---" for _ in t.headers()) + "|")
            shown = t.shown()
            for i, row in enumerate(t.text_rows()):
                cells = [_md_cell(c) for c in row]
                if i in t.marked:
                    cells = [f"**{c}**" for c in cells]
                else:
                    cells = [
                        f"**{c}**" if (i, shown[j]) in t.bold and c != "—" else c
                        for j, c in enumerate(cells)
                    ]
                lines.append("| " + " | ".join(cells) + " |")
            lines += (["", _md_prose(t.note)] if t.note else []) + [""]
        for f in s.figures:
            lines += [f"![{_md_cell(f.alt_text)}]({f.file})", ""]
            if f.caption:
                lines += [f"*{_md_prose(f.caption)}*", ""]
    return "\n".join(lines).rstrip() + "\n"


# Every table, figure and line fits the window from 800 px up: text cells wrap (at spaces and
# after ``_`` and ``/``), figures scale to the column; a table that still cannot fit scrolls in
# its own box, never the page.
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em;
       color: #222; }
h1 { margin: 0.3em 0; }
.subtitle { font-size: 0.85em; color: #555; }
nav ul { display: flex; flex-wrap: wrap; gap: 0.2em 1.2em; list-style: none; padding: 0;
         margin: 0.5em 0 1em; }
summary { cursor: pointer; }
summary h2 { display: inline; }
section { margin: 1.2em 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left;
         overflow-wrap: break-word; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.marked td, tr.marked th { font-weight: bold; background: #eef7ee; }
tbody th { font-weight: normal; background: none; }
caption { caption-side: top; text-align: left; font-weight: bold; padding: 0.3em 0; }
figure { margin: 1em 0 2em; max-width: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
code { font-size: 0.95em; background: #f4f4f4; padding: 0 0.2em; overflow-wrap: anywhere; }
.wide { max-width: 100%; overflow-x: auto; }
.note { background: #fff6e0; border-left: 4px solid #e0a800; padding: 0.3em 0.8em; }
@media (max-width: 1000px) {
  body { padding: 0 0.5em; }
  table { font-size: 0.78em; }
  th, td { padding: 0.2em 0.3em; }
  /* Names and words give way before numbers do: a number never breaks inside. */
  th, td { overflow-wrap: anywhere; }
  td.num { white-space: nowrap; }
}
"""


def _table_html(t: Table) -> list[str]:
    e = _html
    out = ['<div class="wide">']  # a table wider than the window scrolls on its own
    out.append(f'<table data-table="{e(t.title)}"><caption>{e(t.title)}</caption>')
    out.append(
        "<thead><tr>"
        + "".join(f'<th scope="col">{_breakable(e(n))}</th>' for n, _ in t.headers())
        + "</tr></thead><tbody>"
    )
    shown = t.shown()
    for i, row in enumerate(t.text_rows()):
        cls = ' class="marked"' if i in t.marked else ""
        cells = []
        for j, (c, (_, kind)) in enumerate(zip(row, t.headers(), strict=True)):
            text = e(c) if kind != "text" else _breakable(e(c))
            if (i, shown[j]) in t.bold and c != "—":
                text = f"<strong>{text}</strong>"
            if j == 0:  # the first column names the row
                cells.append(f'<th scope="row">{text}</th>')
            else:
                cells.append(
                    f'<td class="num">{text}</td>' if kind != "text" else f"<td>{text}</td>"
                )
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if t.note:
        out.append(f"<p>{_html_prose(t.note)}</p>")
    return out


def render_html(title: str, sections: list[Section], subtitle: str = "") -> str:
    """One static page (no scripts, relative image paths): it opens from disk or a server.

    Each section folds (``<details open>`` under its heading), so a reader keeps the answer on
    screen and opens the detail they want.
    """
    e = _html
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        # An empty data: icon stops browsers requesting /favicon.ico (a 404 in the console).
        '<link rel="icon" href="data:,">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f'<p class="subtitle">{_html_prose(subtitle)}</p>' if subtitle else "",
        "<nav><ul>",
        *(f'<li><a href="#{e(s.key)}">{e(s.title)}</a></li>' for s in sections),
        "</ul></nav>",
    ]
    for s in sections:
        out.append(
            f'<section id="{e(s.key)}"><details open><summary><h2>{e(s.title)}</h2></summary>'
        )
        if s.intro:
            out.append(f"<p>{_html_prose(s.intro)}</p>")
        out += [f'<p class="note">{_html_prose(note)}</p>' for note in s.notes]
        for t in s.tables:
            out += _table_html(t)
        for f in s.figures:
            out.append(
                f'<figure><img src="{e(f.file)}" alt="{e(f.alt_text)}" loading="eager">'
                f"<figcaption>{_html_prose(f.caption or f.title)}</figcaption></figure>"
            )
        out.append("</details></section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
