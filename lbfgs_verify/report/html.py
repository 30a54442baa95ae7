"""``index.html``: the same sections as ``index.md`` in one self-contained page (PNG plots inlined as
``data:`` URIs, CSS inline, no script, nothing fetched), readable offline. Tables take the page's width and
wrap long cells (CSS ``overflow-wrap: anywhere``), so no column is hidden behind a scroll bar."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

from lbfgs_verify.report.document import Block, Bullets, Details, Image, Paragraph, Section, Table
from lbfgs_verify.report.markdown import anchor

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #1b1b1b; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; word-break: break-word; }
th { background: #f6f8fa; }
code { background: #f3f3f3; padding: 0 3px; border-radius: 3px; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
details { margin: 0.8em 0; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2em; margin-top: 1.6em; }
"""


def inline(text: str) -> str:
    """Escape, then turn ``code`` and ``[text](url)`` into HTML (the two inline forms the document uses)."""
    escaped = html.escape(text, quote=True)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', escaped)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _block(block: Block, root: Path) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{inline(h)}</th>" for h in block.headers)
        body = "".join("<tr>" + "".join(f"<td>{inline(c.replace(chr(92) + '|', '|'))}</td>" for c in row) + "</tr>"
                       for row in block.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Image):
        return (f'<img src="{data_uri(root / block.path)}" alt="{html.escape(block.alt, quote=True)}" '
                f'data-file="{html.escape(block.path, quote=True)}">')
    if isinstance(block, Details):
        inner = "".join(_block(b, root) for b in block.blocks)
        return f"<details><summary>{inline(block.summary)}</summary>{inner}</details>"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_html(title: str, sections: Sequence[Section], root: Path) -> str:
    """The whole page; images are read from ``root / image.path`` and inlined."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title>", f"<style>{_STYLE}</style>", "</head>", "<body>",
             f"<h1>{html.escape(title)}</h1>", "<nav><ul>"]
    parts += [f'<li><a href="#{anchor(s.title)}">{html.escape(s.title)}</a></li>' for s in sections]
    parts.append("</ul></nav>")
    for section in sections:
        parts.append(f'<section id="{section.id}"><h2 id="{anchor(section.title)}">{html.escape(section.title)}</h2>')
        parts += [_block(b, root) for b in section.blocks]
        for sub in section.subsections:
            parts.append(f'<section id="{sub.id}"><h3 id="{anchor(sub.title)}">{html.escape(sub.title)}</h3>')
            parts += [_block(b, root) for b in sub.blocks]
            parts.append("</section>")
        parts.append("</section>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"
