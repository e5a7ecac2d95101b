"""The reference graph around the chains, as DOT text or an image made by Graphviz.

The DOT is memscope's own (objgraph's graphs call ``repr()`` on every node, which runs
user code and can raise); the ``graphviz`` package runs the ``dot`` program for images.
"""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["FORMATS", "check_path", "render", "to_dot"]

FORMATS = {".dot": "dot", ".gv": "dot", ".png": "png", ".svg": "svg", ".pdf": "pdf"}

_INSTALL = (
    "rendering {path} needs Graphviz's `dot` program, which is not on PATH: install it "
    "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; conda: conda "
    "install graphviz), or ask for a .dot path to get the DOT text without it"
)

_STYLE = {
    "root": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
    "target": 'shape=box, style="filled,bold", fillcolor="#fecaca"',
    "chain": 'shape=box, style=filled, fillcolor="#f3f4f6"',
    "other": 'shape=box, style=dashed, fontcolor="#6b7280"',
}


def check_path(path: str | Path) -> tuple[Path, str]:
    """The output path and Graphviz format for ``path``; errors before any work is done."""
    out = Path(path)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ValueError(f"path must end in one of {', '.join(sorted(FORMATS))}, got {str(path)!r}")
    if fmt != "dot" and shutil.which("dot") is None:
        raise RuntimeError(_INSTALL.format(path=out.name))
    return out, fmt


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(nodes: dict[int, tuple[str, str]], edges: list[tuple[int, int, str]], title: str) -> str:
    """DOT text: roots at the top, the object at the bottom, edges named by key or attribute."""
    names = {oid: f"n{i}" for i, oid in enumerate(nodes)}
    lines = [
        "digraph why {",
        f"  label={_quote(title)}; labelloc=t; fontname=Helvetica;",
        "  node [fontname=Helvetica, fontsize=11]; edge [fontname=Helvetica, fontsize=10];",
    ]
    for oid, (label, kind) in nodes.items():
        lines.append(f"  {names[oid]} [label={_quote(label)}, {_STYLE.get(kind, '')}];")
    for src, dst, label in edges:
        text = label.strip()
        lines.append(f"  {names[src]} -> {names[dst]} [label={_quote(text)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot: str, path: str | Path) -> Path:
    """Write ``dot`` to ``path``: as text for .dot, else through Graphviz's ``dot``."""
    out, fmt = check_path(path)
    if fmt == "dot":
        out.write_text(dot, encoding="utf-8")
        return out
    import graphviz  # only here: importing it costs time and nothing else needs it

    try:
        data = graphviz.Source(dot).pipe(format=fmt)
    except graphviz.ExecutableNotFound as exc:
        raise RuntimeError(_INSTALL.format(path=out.name)) from exc
    out.write_bytes(data)
    return out
