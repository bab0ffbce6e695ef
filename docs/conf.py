"""Sphinx configuration of the handgrad documentation site.

Build (from the repository root, after ``pip install -e '.[docs]'``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

then open ``docs/_build/html/index.html`` (or serve it: ``python -m http.server -d
docs/_build/html`` and browse http://127.0.0.1:8000; the search page needs http).

The gallery in ``examples/`` is executed during the build on the shipped Fashion-MNIST
subset; MathJax is copied from the ``django-static-mathjax`` wheel into the built site, so
pages render their equations with no network.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
# handgrad itself comes from the install (pip install -e '.[docs]'); PYTHONPATH may override it.

import handgrad  # noqa: E402

project = "handgrad"
author = "the handgrad authors"
copyright = "2026, the handgrad authors"
release = version = handgrad.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "handgrad_sphinx",  # docs/_ext: CLI reference from the parser, errata labels, :source: role
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]

# -- Markdown (the guide, errata, benchmarks and validation stay Markdown) --------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# -- API reference ----------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_class_signature = "mixed"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_use_rtype = False

# -- Math: MathJax 3 served from the built site itself ----------------------------------------
# Relative paths are relative to the site's _static/; handgrad_sphinx copies the files there.
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"options": {"enableMenu": False}}

# -- Gallery: one example per topic of the notes, run at build time ---------------------------
# Every examples/plot_*.py is executed by every build; an example that raises fails the build.
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "doc_module": ("handgrad",),
    "backreferences_dir": "gen_modules/backreferences",
    "reference_url": {"handgrad": None},
    "show_memory": False,
    "write_computation_times": False,  # each page states its own running time; no extra pages
    "min_reported_time": 1,
    "plot_gallery": "True",
}
os.environ.setdefault("MPLBACKEND", "Agg")

# -- HTML ------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"handgrad {release}"
html_static_path = ["_static"]
html_css_files = ["handgrad.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 5,
    "navbar_align": "left",
}
html_show_sourcelink = False
html_last_updated_fmt = None

