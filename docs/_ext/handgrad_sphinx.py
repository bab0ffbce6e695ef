"""Sphinx helpers of the handgrad site.

- ``.. handgrad-cli::`` writes the command-line reference from ``handgrad.cli.build_parser``
  (one section per verb: usage, description, every option with its default), so the page
  cannot drift from the parser.
- Labels ``errata-N`` for the numbered sections of ``errata.md`` (``## 12–15. ...`` gives
  ``errata-12`` … ``errata-15``), so topic pages can ``:ref:`` the slips that concern them
  without the Markdown file carrying explicit targets.
- ``:source:`handgrad.layers.lstm.LSTM``` links to the highlighted source page that
  ``sphinx.ext.viewcode`` writes (``_modules/handgrad/layers/lstm.html#LSTM``); a target
  whose page was not written is reported as a warning (an error under ``-W``).
- MathJax: the ``es5`` build shipped by the ``django-static-mathjax`` wheel is copied into the
  site's ``_static/mathjax/`` so equations are typeset with no network.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import shutil
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.nodes import make_refnode

logger = logging.getLogger(__name__)

# What of MathJax's es5 folder the site needs: the TeX-to-CommonHTML bundle, the extensions
# and fonts it loads on demand, and the accessibility/menu parts it may pull in.
USAGE_WIDTH = 64  # characters per usage line on the CLI page
MATHJAX_PARTS = ("tex-chtml.js", "input", "output/chtml", "ui", "a11y", "adaptors", "sre")


# -- CLI reference -----------------------------------------------------------------------------

def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, helps.get(name), sub


def _option_text(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    if action.option_strings:
        if action.nargs == 0:
            return ", ".join(action.option_strings)
        metavar = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
        return ", ".join(f"{s} {metavar}" for s in action.option_strings)
    return formatter._format_args(action, formatter._get_default_metavar_for_positional(action))


def _help_text(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    text = formatter._expand_help(action) if action.help else ""
    default = action.default
    if (action.option_strings and action.nargs != 0 and default not in (None, argparse.SUPPRESS)
            and "default" not in text.lower()):
        text = f"{text} (default: {default})" if text else f"default: {default}"
    return text


def _parser_section(prog: str, summary: str | None, parser: argparse.ArgumentParser, document) -> nodes.section:
    ident = nodes.make_id("cli " + prog)
    section = nodes.section(ids=[ident], names=[nodes.fully_normalize_name(prog)])
    section += nodes.title(prog, "", nodes.literal(prog, prog))
    text = parser.description or summary
    if text:
        section += nodes.paragraph(text, text)
    formatter = argparse.HelpFormatter(prog, width=USAGE_WIDTH)
    usage = parser.format_usage().strip()
    section += nodes.literal_block(usage, usage, language="text")
    items = nodes.definition_list()
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
            continue
        term = _option_text(action, formatter)
        item = nodes.definition_list_item()
        item += nodes.term(term, "", nodes.literal(term, term))
        body = _help_text(action, formatter)
        item += nodes.definition("", nodes.paragraph(body, body))
        items += item
    if len(items):
        section += items
    document.note_implicit_target(section)
    return section


class HandgradCLI(Directive):
    """The whole ``handgrad`` command, one section per verb, from the argument parser."""

    has_content = False

    def run(self):
        from handgrad.cli import build_parser

        env = self.state.document.settings.env
        env.handgrad_cli_docs = getattr(env, "handgrad_cli_docs", set()) | {env.docname}
        # argparse wraps usage lines to $COLUMNS: fix it, so the page does not depend on the
        # terminal the site was built in.
        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = str(USAGE_WIDTH)
        try:
            return self._sections(build_parser())
        finally:
            if old is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = old

    def _sections(self, parser: argparse.ArgumentParser):
        document = self.state.document
        out = []
        intro = parser.format_usage().strip()
        out.append(nodes.literal_block(intro, intro, language="text"))
        for name, summary, sub in _subcommands(parser):
            out.append(_parser_section(f"{parser.prog} {name}", summary, sub, document))
        return out


# -- errata labels -----------------------------------------------------------------------------

_ERRATUM = re.compile(r"^(\d+)(?:\s*[–-]\s*(\d+))?\.")


def _errata_labels(app: Sphinx, doctree: nodes.document) -> None:
    docname = app.env.current_document.docname if hasattr(app.env, "current_document") else app.env.docname
    if docname != "errata":
        return
    std = app.env.domains.standard_domain if hasattr(app.env.domains, "standard_domain") else app.env.get_domain("std")
    for section in doctree.findall(nodes.section):
        title = section.next_node(nodes.title).astext()
        m = _ERRATUM.match(title)
        if not m or not section["ids"]:
            continue
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        for n in range(first, last + 1):
            name = f"errata-{n}"
            std.anonlabels[name] = (docname, section["ids"][0])
            std.labels[name] = (docname, section["ids"][0], title)


# -- docstrings written as plain-text math ------------------------------------------------------

_BARS = re.compile(r"(?<![\\|])\|(?=\S)([^|`]*?\S)\|(?!\|)")


def _escape_bars(app: Sphinx, what, name, obj, options, lines: list[str]) -> None:
    """The docstrings write absolute values and norms as |z| and ‖x‖; reStructuredText reads
    |z| as a substitution reference. Escape such bars outside literal blocks and ``inline
    literals`` (where a backslash would show)."""
    literal_indent = None
    for k, line in enumerate(lines):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if stripped.startswith(("|", "+")):  # a table row, or a line block
            pass
        elif "|" in line:
            parts = line.split("``")
            parts[::2] = [_BARS.sub(r"\\|\1\\|", part) for part in parts[::2]]
            lines[k] = "``".join(parts)
        if stripped.endswith("::"):
            literal_indent = indent


# -- :source: role -----------------------------------------------------------------------------

class source_link(nodes.Inline, nodes.Element):
    """Placeholder for a link to a viewcode page, resolved after the pages are known."""


def _split_target(target: str) -> tuple[str, str]:
    """``handgrad.layers.lstm.LSTM`` -> (``handgrad.layers.lstm``, ``LSTM``): the longest
    importable module prefix, then the object's qualified name inside it."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        mod = ".".join(parts[:i])
        try:
            if importlib.util.find_spec(mod) is not None:
                return mod, ".".join(parts[i:])
        except (ImportError, ValueError):
            continue
    raise ValueError(f":source: target {target!r} names no importable module")


def source_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    env = inliner.document.settings.env
    try:
        modname, qualname = _split_target(text.strip())
    except ValueError as exc:
        msg = inliner.reporter.error(str(exc), line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    label = modname.replace(".", "/") + ".py" + (f" ({qualname})" if qualname else "")
    node = source_link(label, nodes.literal(label, label),
                       reftarget="_modules/" + modname.replace(".", "/"), refid=qualname,
                       refdoc=env.docname)
    pages = getattr(env, "handgrad_source_pages", None)
    if not isinstance(pages, dict):
        pages = env.handgrad_source_pages = {}
    pages.setdefault(env.docname, set()).add(node["reftarget"])
    return [node], []


class ResolveSourceLinks(SphinxPostTransform):
    default_priority = 100

    def run(self, **kwargs) -> None:
        for node in list(self.document.findall(source_link)):
            if self.app.builder.format == "html":
                ref = make_refnode(self.app.builder, node["refdoc"], node["reftarget"], node["refid"],
                                   node.children[0].deepcopy())
                node.replace_self(ref)
            else:
                node.replace_self(node.children[0].deepcopy())


# -- MathJax and checks at the end --------------------------------------------------------------

def _mathjax_source() -> Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError("handgrad docs: MathJax not found; install the docs extra "
                             "(pip install -e '.[docs]'), which brings django-static-mathjax")
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").is_file():
        raise ExtensionError(f"handgrad docs: expected MathJax 3 at {es5}/tex-chtml.js; found none")
    return es5


def _copy_mathjax(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    es5 = _mathjax_source()
    dest = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        src = es5 / part
        if src.is_dir():
            shutil.copytree(src, dest / part, dirs_exist_ok=True)
        elif src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / part)
    wanted = set().union(*getattr(app.env, "handgrad_source_pages", {}).values())
    for page in sorted(wanted):
        if not (Path(app.outdir) / (page + ".html")).is_file():
            logger.warning(f"handgrad docs: :source: links to {page}.html, which viewcode did not write "
                           "(document an object of that module in the API reference)")


def _purge_source_pages(app: Sphinx, env, docname: str) -> None:
    pages = getattr(env, "handgrad_source_pages", None)
    if isinstance(pages, dict):
        pages.pop(docname, None)
    else:
        env.handgrad_source_pages = {}


def _cli_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    """The CLI page follows the parser, not its own source: rebuild it every time."""
    return sorted(getattr(env, "handgrad_cli_docs", set()) - set(removed))


def _check_mathjax(app: Sphinx, config) -> None:
    _mathjax_source()  # fail at the start, not after the gallery has run


def setup(app: Sphinx) -> dict:
    app.add_directive("handgrad-cli", HandgradCLI)
    app.add_role("source", source_role)
    app.add_node(source_link)
    app.add_post_transform(ResolveSourceLinks)
    app.connect("autodoc-process-docstring", _escape_bars)
    app.connect("doctree-read", _errata_labels)
    app.connect("config-inited", _check_mathjax)
    app.connect("env-purge-doc", _purge_source_pages)
    app.connect("env-get-outdated", _cli_outdated)
    app.connect("build-finished", _copy_mathjax)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
