"""``index.md``: the report's sections as GitHub-flavoured Markdown, plots as relative image links."""

from __future__ import annotations

from collections.abc import Sequence

from lbfgs_verify.report.document import Block, Bullets, Details, Image, Paragraph, Section, Table


def text(value: str) -> str:
    """Markdown-safe text: ``<`` written as ``&lt;`` so that ``<lambda>`` in a message is not taken for a tag."""
    return value.replace("<", "&lt;")


def _block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [text(block.text), ""]
    if isinstance(block, Bullets):
        return [*(f"- {text(item)}" for item in block.items), ""]
    if isinstance(block, Table):
        lines = ["| " + " | ".join(text(h) for h in block.headers) + " |", "|" + " --- |" * len(block.headers)]
        lines += ["| " + " | ".join(text(c) for c in row) + " |" for row in block.rows]
        return [*lines, ""]
    if isinstance(block, Image):
        return [f"![{block.alt}]({block.path})", ""]
    if isinstance(block, Details):
        inner = [line for b in block.blocks for line in _block(b)]
        return ["<details>", f"<summary>{block.summary}</summary>", "", *inner, "</details>", ""]
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    """The whole page: title, a table of contents, then each section (``##``) and subsection (``###``)."""
    lines = [f"# {title}", ""]
    lines += [f"- [{s.title}](#{anchor(s.title)})" for s in sections]
    lines.append("")
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _block(block)
        for sub in section.subsections:
            lines += [f"### {sub.title}", ""]
            for block in sub.blocks:
                lines += _block(block)
    return "\n".join(lines).rstrip() + "\n"


def anchor(title: str) -> str:
    """GitHub's heading anchor: lower case, spaces to hyphens, punctuation dropped."""
    out = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return out.replace(" ", "-")
