"""The package's imports run one way: no module of ``handgrad`` imports, directly or through
others, a module that imports it back (lazy imports inside functions count too), and no module
imports another module's private names."""
from __future__ import annotations

import ast
import pathlib

import handgrad

ROOT = pathlib.Path(handgrad.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    """``(graph, private)``: module → handgrad modules it imports; and every
    ``from handgrad.x import _name`` of a private name from another module."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names if a.name.split(".")[0] == "handgrad"]
            elif isinstance(node, ast.ImportFrom):
                src = _resolve(mod, is_pkg, node.level, node.module) if node.level else (node.module or "")
                if src.split(".")[0] != "handgrad":
                    continue
                for a in node.names:
                    sub = f"{src}.{a.name}"
                    targets.append((sub, None) if sub in modules else (src, a.name))
            for target, name in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != mod:
                    graph[mod].add(target)
                if name is not None and name.startswith("_") and not name.startswith("__") and target != mod:
                    private.append((mod, target, name))
    return graph, private


def _parents(module: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first: a package may import its submodules."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), ignoring a package's
    imports of its own submodules (``__init__`` re-exporting its parts)."""
    edges = {m: {t for t in ts if m not in _parents(t)} for m, ts in graph.items()}
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_cycle_and_a_private_import():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"p": {"p.x"}, "p.x": {"p"}}) == []  # a package importing its own part
    assert _resolve("handgrad.training.loop", False, 2, "losses") == "handgrad.losses"
    assert _resolve("handgrad.training", True, 1, "loop") == "handgrad.training.loop"


def test_no_import_cycle_in_handgrad():
    graph, _ = import_graph()
    assert len(graph) > 30 and "handgrad.training.loop" in graph["handgrad.training.crossval"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_training_imports_run_one_way():
    graph, _ = import_graph()
    training = {m for m in graph if m.startswith("handgrad.training.")}
    for m in training - {"handgrad.training.crossval"}:
        assert "handgrad.training.crossval" not in graph[m], m
    assert "handgrad.training.loop" not in graph["handgrad.training.evaluation"]


def test_no_module_imports_another_modules_private_names():
    """Private names stay in their module, or in their package's private helper module
    (``data/_seqcheck.py``). One known exception: the checkpoint format extends the model-file
    format and reads ``serialization``'s header parser and architecture record."""
    _, private = import_graph()
    allowed = {("handgrad.training.checkpoint", "handgrad.serialization")}

    def helper_module(module, target):
        pkg, _, leaf = target.rpartition(".")
        return leaf.startswith("_") and module.startswith(pkg + ".")

    bad = [(m, t, n) for m, t, n in private if (m, t) not in allowed and not helper_module(m, t)]
    assert not bad, bad
