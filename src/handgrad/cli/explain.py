"""``handgrad explain NAME``: a layer's, loss's or optimizer's equations, shapes, sources and
errata, read from its docstring (the one source of truth) and wrapped to the terminal.

Docstring structure it reads (``inspect.cleandoc`` of the class docstring): the first
paragraph is the summary; a paragraph that starts with ``Forward`` or ``Backward`` opens that
section, one that starts with ``Input``, ``Output``, ``Params``, ``Shapes`` or ``Targets`` the
shapes section (else the module docstring's paragraphs that start so are used); later
paragraphs continue the section they follow; a paragraph ending in ``::`` is followed by an
indented literal block (the equations), printed as written. A docstring without
such paragraphs is printed as its description. The module docstring's ``Legend:`` paragraph
names the symbols. Citations are the seed names in double back-quotes followed by
``§``/``eq.``/``eqs.``/``statement(s)`` and numbers.

Errata: ``docs/errata.md`` is not installed with the package, so its numbered entries are
kept as package data in ``errata.json`` beside this module, generated from the Markdown by
``handgrad explain --update-errata docs/errata.md`` (a test checks it is current). An entry applies to a class when its ``**handgrad.**`` paragraph names the class in
back-quotes, when it is about an equation the docstring cites (same seed and equation
number), or when the docstring names it ("errata entry 9").
"""
from __future__ import annotations

import inspect
import json
import re
import shutil
import sys
import textwrap
from importlib import resources

_HEAD = re.compile(r"^(Forward|Backward|Input|Output|Params|Shapes|Targets)\b")
_SEED = re.compile(r"``(00\d)``")
_EQS = re.compile(r"\beqs?\.\s*((?:\(\d+\)(?:\s*[–-]\s*\(\d+\))?(?:,\s*|\s+and\s+)?)+)")
_NUM_RANGE = re.compile(r"\((\d+)\)(?:\s*[–-]\s*\((\d+)\))?")


# -- the names explain knows --------------------------------------------------------------------
def known() -> dict[str, type]:
    """name → class, for every registered layer, every loss and every optimizer."""
    from .. import layers, losses, optim

    out: dict[str, type] = {name: cls for name, cls in layers.REGISTRY.items()}
    for mod, base in ((losses, losses.Loss), (optim, optim.Optimizer)):
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, base) and obj is not base:
                out[name] = obj
    try:
        from .. import rbm
    except ImportError:  # pragma: no cover - rbm ships with handgrad; tolerate a trimmed build
        rbm = None
    if rbm is not None and inspect.isclass(getattr(rbm, "RBM", None)):
        out["RBM"] = rbm.RBM
    return out


def lookup(name: str) -> type:
    names = known()
    for key, cls in names.items():
        if key.lower() == name.lower():
            return cls
    raise ValueError(f"explain: unknown name {name!r}; known names: {', '.join(sorted(names, key=str.lower))}")


# -- docstring parsing --------------------------------------------------------------------------
def _blocks(doc: str) -> list[tuple[str, str]]:
    """``[(kind, text)]`` with kind ``"prose"`` or ``"literal"`` (a ``::`` block, dedented)."""
    lines = doc.splitlines()
    out: list[tuple[str, str]] = []
    i, literal_next = 0, False
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if literal_next and lines[i].startswith((" ", "\t")):
            j = i
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
                j += 1
            out.append(("literal", textwrap.dedent("\n".join(lines[i:j])).strip("\n")))
            i, literal_next = j, False
            continue
        j = i
        while j < len(lines) and lines[j].strip() and not (j > i and lines[j - 1].rstrip().endswith("::")):
            j += 1
        text = "\n".join(lines[i:j])
        out.append(("prose", text))
        literal_next = text.rstrip().endswith("::")
        i = j
    return out


def parse(cls: type) -> dict:
    """The docstring of ``cls`` split into summary, forward, backward, shapes and description,
    each a list of ``(kind, text)`` blocks, plus the module's legend."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    sections: dict[str, list] = {"summary": [], "forward": [], "backward": [], "shapes": [], "description": []}
    current = None
    for n, (kind, text) in enumerate(_blocks(doc)):
        if kind == "prose":
            m = _HEAD.match(text.lstrip("- "))
            if m:
                current = {"Forward": "forward", "Backward": "backward"}.get(m.group(1), "shapes")
                if current != "shapes":  # "Forward: a = …" under the title "Forward"
                    text = re.sub(r"^(Forward|Backward):\s*", "", text)
            elif n == 0:
                sections["summary"].append((kind, text))
                continue
        sections[current or "description"].append((kind, text))
    module = sys.modules.get(cls.__module__)
    mdoc = inspect.cleandoc(getattr(module, "__doc__", None) or "")
    legend = next((t for k, t in _blocks(mdoc) if k == "prose" and t.startswith("Legend")), None)
    if not sections["shapes"]:  # shapes shared by the module's classes (e.g. every activation)
        sections["shapes"] = [(k, t) for k, t in _blocks(mdoc) if k == "prose" and _HEAD.match(t)
                              and not t.startswith(("Forward", "Backward"))]
    return {**sections, "legend": legend, "doc": doc}


_CITE = re.compile(r"(?:§\s?\d+(?:\.\d+)*|Appendix|eqs?\.|statements?|\(\d+\)|[–-]|,|\band\b|\s+)*")


def citations(doc: str) -> list[str]:
    """The source citations of a docstring, e.g. ``"003 §2, statement (2)"``, in order, once each."""
    out: list[str] = []
    for m in _SEED.finditer(doc):
        phrase = _CITE.match(doc, m.end()).group(0)
        phrase = re.sub(r"\s+", " ", phrase)
        phrase = re.sub(r"(?:[\s,–-]|\band\b)+$", "", phrase).strip()
        cite = f"{m.group(1)} {phrase}".strip()
        if phrase and cite not in out:
            out.append(cite)
    return out


def cited_equations(doc: str) -> set[tuple[str, int]]:
    """``{(seed, equation number)}`` for every ``eq.``/``eqs.`` citation after a seed name."""
    out: set[tuple[str, int]] = set()
    for m in _SEED.finditer(doc):
        rest = doc[m.end():m.end() + 60]
        cut = _SEED.search(rest)
        rest = rest[:cut.start()] if cut else rest
        for e in _EQS.finditer(rest.split(";")[0]):
            out |= {(m.group(1), k) for k in _expand(e.group(1))}
    return out


def _expand(text: str) -> set[int]:
    nums: set[int] = set()
    for a, b in _NUM_RANGE.findall(text):
        lo, hi = int(a), int(b or a)
        nums |= set(range(lo, min(hi, lo + 50) + 1))
    return nums


def _plain(text: str) -> str:
    """Docstring markup → terminal text."""
    text = re.sub(r"``([^`]*)``", r"\1", text)
    return text.replace("::", ":")


# -- errata -------------------------------------------------------------------------------------
def errata_index(markdown: str) -> list[dict]:
    """The numbered entries of ``docs/errata.md``: numbers, heading, the summary rows (where,
    kind, slip) and the ``**handgrad.**`` paragraph; what ``errata.json`` holds."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())]  # "\|" is a pipe inside a cell
        if len(cells) == 6 and cells[0] == cells[5] == "" and cells[1].isdigit():
            rows[int(cells[1])] = {"where": cells[2], "kind": cells[3], "slip": cells[4].replace("\\|", "|")}
    entries = []
    for m in re.finditer(r"^## (\d+)(?:[–-](\d+))?\. (.*)$", markdown, flags=re.MULTILINE):
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        end = markdown.find("\n## ", m.end())
        body = markdown[m.end():end if end >= 0 else len(markdown)]
        hg = re.search(r"\*\*handgrad\.\*\*(.*?)(?:\n\s*\n|$)", body, flags=re.DOTALL)
        entries.append({"numbers": list(range(lo, hi + 1)), "heading": m.group(3).strip(),
                        "rows": {str(k): rows[k] for k in range(lo, hi + 1) if k in rows},
                        "handgrad": re.sub(r"\s+", " ", hg.group(1)).strip() if hg else ""})
    return entries


def load_errata() -> list[dict]:
    return json.loads(resources.files("handgrad.cli").joinpath("errata.json").read_text(encoding="utf-8"))


def applicable_errata(cls: type, doc: str, entries: list[dict]) -> list[tuple[dict, str]]:
    """``[(entry, why)]`` for the entries that concern ``cls``."""
    name = cls.__name__
    by_name = re.compile(rf"`(?:[a-z]+\.)*{re.escape(name)}(?:[.(][^`]*)?`")
    eqs = cited_equations(doc)
    named = {int(n) for n in re.findall(r"errat(?:a|um)(?: entry| entries)? (\d+)", doc)}
    out = []
    for e in entries:
        why = []
        if by_name.search(e["handgrad"]):
            why.append(f"its handgrad paragraph names {name}")
        where_eqs = set()
        for row in e["rows"].values():
            seed = re.match(r"`(00\d)`", row["where"])
            # the equations the slip is in; "(with (14)–(16))", "(and (37)–(41))" only give context
            primary = re.sub(r"\((?:with|and)\b(?:[^()]|\([^()]*\))*\)", "", row["where"])
            if seed:
                where_eqs |= {(seed.group(1), k) for k in _expand(primary)}
        shared = sorted(eqs & where_eqs)
        if shared:
            why.append("the docstring cites " + ", ".join(f"{s} eq. ({k})" for s, k in shared))
        if named & set(e["numbers"]):
            why.append("the docstring refers to it")
        if why:
            out.append((e, "; ".join(why)))
    return out


# -- output -------------------------------------------------------------------------------------
def _emit(blocks, width: int, indent: str = "  ") -> list[str]:
    out = []
    for kind, text in blocks:
        if kind == "literal":
            for line in _plain(text).splitlines():
                wrapped = textwrap.wrap(line, width, initial_indent=indent + "  ", subsequent_indent=indent + "      ",
                                        break_long_words=False, break_on_hyphens=False, drop_whitespace=True)
                out.extend(wrapped or [""])
        else:
            for item in re.split(r"\n(?=\s*- )", text):  # list items stay apart
                para = re.sub(r"\s+", " ", _plain(item)).strip()
                out.extend(textwrap.wrap(para, width, initial_indent=indent,
                                         subsequent_indent=indent + ("  " if para.startswith("- ") else ""),
                                         break_long_words=False, break_on_hyphens=False))
        out.append("")
    return out


def explain(name: str, width: int | None = None) -> str:
    """The text ``handgrad explain NAME`` prints."""
    cls = lookup(name)
    width = width or shutil.get_terminal_size((100, 24)).columns
    width = max(40, min(width, 120))
    info = parse(cls)
    title = f"{cls.__name__} — {cls.__module__}.{cls.__qualname__}"
    lines = [title, "=" * min(width, len(title)), ""]
    lines += _emit(info["summary"], width, indent="")
    for key, title in (("forward", "Forward"), ("backward", "Backward"), ("shapes", "Shapes"), ("description", "Details")):
        if info[key]:
            lines += [title] + _emit(info[key], width)
    if info["legend"]:
        lines += ["Legend"] + _emit([("prose", info["legend"].split(":", 1)[1])], width)
    cites = citations(info["doc"])
    lines += ["Sources (seed notes, equation numbers)"]
    lines += [_fill(c, width, initial_indent="  ", subsequent_indent="      ") for c in cites] or ["  (none cited)"]
    lines.append("")
    found = applicable_errata(cls, info["doc"], load_errata())
    lines.append("Errata that apply (docs/errata.md)")
    if not found:
        lines.append("  none recorded")
    for e, why in found:
        first, last = e["numbers"][0], e["numbers"][-1]
        nums = f"{first}–{last}" if last != first else str(first)
        lines.append(_fill(f"{nums}. {_md(e['heading'])}", width, initial_indent="  ", subsequent_indent="      "))
        for k, row in e["rows"].items():
            lines.append(_fill(f"{k}: {_md(row['slip'])} ({_md(row['kind'])})", width,
                                       initial_indent="      ", subsequent_indent="        "))
        if e["handgrad"]:
            lines.append(_fill(f"handgrad: {_md(e['handgrad'])}", width, initial_indent="      ",
                                       subsequent_indent="        "))
        lines.append(_fill(f"(applies because {why})", width, initial_indent="      ", subsequent_indent="        "))
    return "\n".join(lines).rstrip() + "\n"


def _fill(text: str, width: int, **kw) -> str:
    return textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False, **kw)


def _md(text: str) -> str:
    return text.replace("`", "").replace("\\|", "|").replace("**", "")


def update_errata(markdown_path: str) -> str:
    """Regenerate the packaged ``errata.json`` from ``docs/errata.md``; returns its path."""
    import os

    from ..fsutil import atomic_write_bytes

    with open(markdown_path, encoding="utf-8") as fh:
        entries = errata_index(fh.read())
    target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "errata.json")
    atomic_write_bytes(target, (json.dumps(entries, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return target


def cmd_explain(args) -> int:
    if args.update_errata:
        print(f"wrote {update_errata(args.update_errata)}")
        return 0
    if not args.name:
        raise ValueError("explain: name a layer, loss or optimizer, e.g. handgrad explain LSTM")
    print(explain(args.name), end="")
    return 0


def add_commands(sub, data_args) -> None:
    ex = sub.add_parser("explain", help="print a layer's, loss's or optimizer's equations, shapes and errata")
    ex.add_argument("name", metavar="NAME", nargs="?", help="a layer, loss or optimizer, e.g. Dense, Conv2D, "
                                                           "LSTM, SoftmaxCrossEntropy, SGD")
    ex.add_argument("--update-errata", metavar="ERRATA_MD",
                    help="(maintainers) regenerate the packaged errata index from docs/errata.md")
    ex.set_defaults(func=cmd_explain)
