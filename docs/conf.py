"""Sphinx configuration for the taskgraph-images documentation."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

project = "taskgraph-images"
author = "The taskgraph-images developers"
copyright = "2026, The taskgraph-images developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "sphinx.ext.graphviz",
    "image_graph",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
# Types named in annotations that Sphinx cannot (or need not) resolve.
nitpicky = False
suppress_warnings = ["myst.header"]

intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

html_theme = "alabaster"
html_title = "taskgraph-images"

# Pictures: drawn by Graphviz's `dot` (Debian's graphviz) at build time, as SVG.
graphviz_output_format = "svg"
# Wide enough at a 1280 px window for an 80-column console block and the pictures.
html_theme_options = {"page_width": "1160px", "sidebar_width": "230px"}
# The sidebar title on one line, and nothing wider than the page (docs/_static/custom.css).
html_static_path = ["_static"]
html_css_files = ["custom.css"]
