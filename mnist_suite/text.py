"""Text from runs, plans and files made safe for where it is shown.

Names, configs and messages come from shared folders and the command line, and may hold
anything: an ANSI escape that rewrites a terminal, a newline that forges a line of output, or
markdown (``## Gate passed``, ``](javascript:…)``) that forges a heading or a link in a report.
"""

from __future__ import annotations

import re

# Markdown's punctuation that opens or closes syntax anywhere on a line: emphasis, code, links
# and images (``[``, ``]``; ``(`` only counts after ``]``), headings, tables, HTML, strikethrough.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|~])")


def printable(text: object) -> str:
    """``text`` on one line: control characters (newlines, ESC, ...) shown as ``\\n``, ``\\x1b``."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def markdown(text: object) -> str:
    """``text`` as inert inline markdown on one line: every syntax character backslash-escaped,
    ``&`` and ``<`` as entities, control characters shown as escapes (after the markdown
    escaping, so their backslashes stay literal text)."""
    escaped = str(text).replace("&", "&amp;")
    escaped = _MARKDOWN.sub(r"\\\1", escaped).replace("\\<", "&lt;").replace("\\>", "&gt;")
    return printable(escaped)


def code_span(text: object, in_table: bool = False) -> str:
    """``text`` as one inline code span, shown literally: the fence is one backtick longer than
    the longest run of backticks inside, so nothing inside can close it; control characters
    shown as escapes. ``in_table``: ``|`` escaped too (GFM splits a row at a bare ``|`` even
    inside a code span)."""
    text = printable(text)
    if not text:
        return ""
    fence = "`" * (1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    # A space inside each fence when the text starts or ends with a backtick (else it would
    # join the fence) or with spaces on both sides (CommonMark strips one from each side).
    pad = " " if "`" in (text[0], text[-1]) or (text[0] == " " and text[-1] == " ") else ""
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"
