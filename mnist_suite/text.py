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
