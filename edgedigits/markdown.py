"""Values written into Markdown (model cards, benchmark tables): shown as the text they are.

Class names, file and folder names come from the user: a Markdown viewer renders HTML in them
(`<img src=x onerror=...>`), a `|` ends a table cell, a backtick ends a code span.
"""

from __future__ import annotations

import html
import re


def text(value) -> str:
    """Plain text in Markdown, in a table cell or not: HTML escaped, `|` escaped."""
    return html.escape(str(value), quote=True).replace("|", "\\|")


def code(value) -> str:
    """`value` as a code span, fenced by one backtick more than the longest run inside it."""
    value = str(value)
    fence = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"
