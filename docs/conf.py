"""Sphinx configuration of the smpc_gym documentation site.

Build it with ``make docs`` (warnings are errors). Pages are MyST Markdown. Before every
build this file writes two sets of pages, so neither can go stale by hand:

* ``docs/api/<module>.md`` (not committed): one autodoc page per public module of
  ``smpc_gym`` (every module whose dotted name has no part starting with ``_``), found by
  walking the package, so modules that are added, moved or removed appear or disappear
  by themselves;
* ``docs/results/*.md`` (committed, checked by ``tests/test_docs.py``): the results
  pages, written from ``benchmarks/results/*.json`` by ``docs/gen_results.py``.

A docstring that is not valid reStructuredText (plain text with indented blocks, say) is
shown verbatim as a preformatted block instead of failing the build; run Sphinx with
``-v`` to list them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(DOCS))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import gen_results  # noqa: E402  (docs/gen_results.py, found through sys.path above)

gen_results.write_pages(ROOT / "benchmarks" / "results", DOCS / "results")


def public_modules(package: str = "smpc_gym") -> list[str]:
    """Dotted names of the package's public modules, sorted (imports each package)."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def write_api_pages(out_dir: Path) -> None:
    """One MyST page per public module with an ``automodule`` directive; removes the rest."""
    out_dir.mkdir(exist_ok=True)
    want = {}
    for name in public_modules():
        want[f"{name}.md"] = f"# {name}\n\n```{{eval-rst}}\n.. automodule:: {name}\n```\n"
    for p in out_dir.glob("*.md"):
        if p.name not in want:
            p.unlink()
    for fname, text in want.items():
        p = out_dir / fname
        if not p.is_file() or p.read_text(encoding="utf-8") != text:
            p.write_text(text, encoding="utf-8")


write_api_pages(DOCS / "api")

project = "smpc_gym"
author = "the smpc_gym authors"
copyright = "the smpc_gym authors, MIT licence"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # Re-exports listed in a module's __all__ are documented where they are defined only,
    # so every object has exactly one page and cross-references are unambiguous.
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
napoleon_google_docstring = True
napoleon_numpy_docstring = True

html_theme = "furo"
html_title = "smpc_gym"
html_static_path: list[str] = []


import docutils.core  # noqa: E402
import docutils.nodes  # noqa: E402
from docutils.parsers.rst import directives as _directives  # noqa: E402
from docutils.parsers.rst import roles as _roles  # noqa: E402

# docutils' own lookup functions, taken before Sphinx swaps in its domain-aware ones
# while it reads a page: the check below must see plain docutils, not Sphinx's
# directives (which need a build environment to run).
_PLAIN_LOOKUP = (_directives.directive, _roles.role)


def _rst_problems(text: str) -> list[str]:
    """docutils' warnings and errors for ``text``, parsed with plain docutils only.

    Sphinx's own roles and directives are unknown to plain docutils; those messages (and
    only those) are not problems: Sphinx knows them when it renders the docstring."""
    saved = (_directives.directive, _roles.role, _directives._directives, _roles._roles)
    _directives.directive, _roles.role = _PLAIN_LOOKUP
    _directives._directives, _roles._roles = {}, {}
    try:
        doctree = docutils.core.publish_doctree(
            text,
            settings_overrides={"report_level": 5, "halt_level": 5, "warning_stream": False},
        )
    except Exception as exc:  # docutils gave up: certainly not clean reST
        return [str(exc)]
    finally:
        (_directives.directive, _roles.role, _directives._directives, _roles._roles) = saved
    messages: list[str] = []
    for node in doctree.findall(docutils.nodes.system_message):
        msg = node.astext()
        unknown = "Unknown interpreted text role" in msg or "Unknown directive type" in msg
        if node["level"] >= 2 and not unknown:
            messages.append(msg)
    return messages


def _verbatim_if_not_rst(app, what, name, obj, options, lines):  # noqa: ANN001
    """autodoc-process-docstring hook: show a docstring verbatim if docutils rejects it."""
    if not lines or not _rst_problems("\n".join(lines)):
        return
    from sphinx.util import logging

    logging.getLogger(__name__).verbose("docstring of %s shown verbatim (not valid reST)", name)
    body = ["    " + ln if ln.strip() else "" for ln in lines]
    lines[:] = ["::", "", *body, ""]


def setup(app):  # noqa: ANN001, ANN201
    """Sphinx hook: register the verbatim fallback after napoleon has rewritten docstrings."""
    app.connect("autodoc-process-docstring", _verbatim_if_not_rst, priority=900)
