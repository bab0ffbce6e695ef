"""``handgrad explain NAME``: equations, shapes, sources and errata straight from the docstrings
and the packaged errata index, wrapped to the terminal's width."""
from __future__ import annotations

import inspect
import json
import pathlib

import pytest

from handgrad import cli
from handgrad import layers as L
from handgrad.cli import explain as ex

ERRATA_MD = pathlib.Path(__file__).resolve().parents[1] / "docs" / "errata.md"


def run(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _section(text, title):
    """The lines of one section of the output (up to the next unindented title)."""
    lines = text.splitlines()
    start = lines.index(title) + 1
    end = next((k for k in range(start, len(lines)) if lines[k] and not lines[k].startswith(" ")), len(lines))
    return "\n".join(lines[start:end])


@pytest.mark.parametrize("name,forward,backward", [
    ("Dense", "y[n, j] = b[j] + Σ_k W[j, k] x[n, k]", "dC/dW[j, k] = Σ_n δ[n, j] x[n, k]"),
    ("Conv2D", "y[n, d, p, q] = b[d] + Σ_c Σ_i Σ_j W[d, c, i, j]", "dC/db[d] = Σ_{n,p,q} δ[n, d, p, q]"),
    ("LSTM", "c_t = f ⊙ c_{t−1} + i ⊙ g", "δ_F = ε_s ⊙ c_{t−1} ⊙ f(1 − f)"),
    ("RNN", "the loop over t adds h_{t−1} W_hhᵀ", "δ[t]      = act'(z_t) ⊙ (e_t + δ[t+1] W_hh)"),
])
def test_forward_backward_and_shapes_sections(name, forward, backward, capsys):
    code, out, err = run(["explain", name], capsys)
    assert code == 0, err
    assert forward in _section(out, "Forward")
    assert backward in _section(out, "Backward")
    assert "Input (N, " in _section(out, "Shapes")
    assert "Legend" in out.splitlines()


@pytest.mark.parametrize("name,forward,backward,shapes", [
    ("Sigmoid", "a = σ(z) = 1/(1 + e^{−z})", "σ'(z) = σ(z)(1 − σ(z))", "Input and output shapes are equal"),
    ("Softmax", "a_j = e^{z_j} / Σ_k e^{z_k}", "dC/dz_j = a_j (g_j − Σ_h g_h a_h)", "(N, ...)"),
    ("SoftmaxCrossEntropy", "c = −Σ_j y_j ln softmax(z)_j", "dc/dz = softmax(z) − y", "Targets: integer labels"),
    ("BinaryCrossEntropy", "c = Σ_j [softplus(z_j) − y_j z_j]", "dc/dz = σ(z) − y", "Targets: probabilities"),
    ("MeanSquaredError", "c = ½ Σ_j (a_j − y_j)²", "∇_a c = a − y", None),
])
def test_activations_and_losses_have_sections(name, forward, backward, shapes, capsys):
    _, out, _ = run(["explain", name], capsys)
    flat = {t: " ".join(_section(out, t).split()) for t in ("Forward", "Backward")}
    assert forward in flat["Forward"] and backward in flat["Backward"]
    if shapes:
        assert shapes in " ".join(_section(out, "Shapes").split())


@pytest.mark.parametrize("name,sources,errata", [
    ("Dense", ["000 eqs. (1)–(4)", "001 eqs. (1), (3)", "003 §2"], ["1.", "2.", "4.", "7."]),
    ("Conv2D", ["001 eqs. (25)–(26)", "004 eq. (10)"], ["8.", "16.", "17."]),
    ("LSTM", ["000 eqs. (30)–(35)", "003 §7 statements (2)–(11)"], ["12–15."]),
    ("AvgPool2D", ["000 eq. (13)"], ["9.", "10."]),
    ("MaxPool2D", ["001 §3.3"], ["10."]),
    ("RNN", ["003 §6 statements (2)–(5)"], ["11."]),
    ("SoftmaxCrossEntropy", ["003 §3"], ["3."]),
    ("Sigmoid", ["003 §2"], ["2.", "6.", "8."]),
])
def test_sources_and_errata(name, sources, errata, capsys):
    code, out, _ = run(["explain", name], capsys)
    assert code == 0
    cited = _section(out, "Sources (seed notes, equation numbers)").splitlines()
    for s in sources:
        assert f"  {s}" in cited, (s, cited)
    listed = [line.split()[0] for line in _section(out, "Errata that apply (docs/errata.md)").splitlines()
              if line.startswith("  ") and not line.startswith("    ")]
    assert listed == errata, out


def test_errata_are_quoted_with_the_reason(capsys):
    _, out, _ = run(["explain", "AvgPool2D"], capsys)
    errata = " ".join(_section(out, "Errata that apply (docs/errata.md)").split())  # undo the wrapping
    assert "multiplies by p₁p₂ instead of dividing" in errata            # the summary row
    assert "AvgPool2D backward gives every unit of a window δ/(kH·kW)" in errata  # the handgrad paragraph
    assert "the docstring cites 000 eq. (49)" in errata and "the docstring refers to it" in errata


def test_text_comes_from_the_docstring(monkeypatch, capsys):
    """One source of truth: change the docstring and the output changes."""
    doc = inspect.getdoc(L.Dense).replace("y[n, j] = b[j]", "y[n, j] = β[j]")
    monkeypatch.setattr(L.Dense, "__doc__", doc)
    _, out, _ = run(["explain", "Dense"], capsys)
    assert "y[n, j] = β[j]" in out


def test_a_users_layer_with_the_documented_structure(capsys):
    @L.register
    class Cube(L.Layer):
        """y = x³, element-wise.

        Forward::

            y = x ⊙ x ⊙ x

        Backward (``000`` eq. (47) style, see errata entry 16)::

            dC/dx = 3 x² ⊙ dC/dy

        Input ``(N, ...)``; output of the same shape.
        """

    try:
        _, out, _ = run(["explain", "cube"], capsys)
    finally:
        del L.REGISTRY["Cube"]
    assert "y = x ⊙ x ⊙ x" in _section(out, "Forward")
    assert "dC/dx = 3 x² ⊙ dC/dy" in _section(out, "Backward")
    assert "Input (N, ...)" in _section(out, "Shapes")
    errata = " ".join(_section(out, "Errata that apply (docs/errata.md)").split())
    assert "7. 000 eq. (47)" in errata and "cites 000 eq. (47)" in errata
    assert "16. 004 eq. (49)" in errata and "refers to it" in errata
    assert "Legend" not in out.splitlines()  # this module's docstring has no legend


@pytest.mark.parametrize("columns", [60, 100])
def test_wrapped_to_the_terminal_width(columns, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", str(columns))  # what shutil.get_terminal_size reads first
    _, out, _ = run(["explain", "Conv2D"], capsys)
    widest = max(len(line) for line in out.splitlines())
    assert widest <= columns
    assert widest > columns - 15  # it uses the width it has


def test_unknown_name_lists_the_known_ones(capsys):
    code, _, err = run(["explain", "Transformer"], capsys)
    assert code == 2
    assert "unknown name 'Transformer'" in err
    for name in ("Dense", "Conv2D", "LSTM", "SoftmaxCrossEntropy", "SGD", "Adam", "MaxPool2D"):
        assert name in err
    code, _, err = run(["explain"], capsys)
    assert code == 2 and "name a layer" in err


def test_every_known_name_explains():
    for name in ex.known():
        text = ex.explain(name, width=80)
        assert text.startswith(name) and "Errata that apply" in text


def test_packaged_errata_index_is_current():
    if not ERRATA_MD.is_file():
        pytest.skip("docs/errata.md is not part of this checkout")
    current = ex.errata_index(ERRATA_MD.read_text(encoding="utf-8"))
    assert ex.load_errata() == current, ("src/handgrad/cli/errata.json is stale: run "
                                         "`handgrad explain --update-errata docs/errata.md`")
    numbers = [n for e in current for n in e["numbers"]]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 17
    assert all(e["rows"] and e["handgrad"] for e in current)


def test_update_errata_writes_the_index(tmp_path, monkeypatch, capsys):
    md = tmp_path / "errata.md"
    md.write_text("| # | where | kind | slip |\n| --- | --- | --- | --- |\n"
                  "| 1 | `000` eq. (7) | missing sum | a \\| b |\n\n## 1. A slip\n\n**handgrad.** `Dense` is right.\n",
                  encoding="utf-8")
    written = {}
    from handgrad import fsutil

    monkeypatch.setattr(fsutil, "atomic_write_bytes", lambda path, data: written.update({path: data}))
    code, out, _ = run(["explain", "--update-errata", md], capsys)
    assert code == 0 and "errata.json" in out
    (path, data), = written.items()
    assert path.endswith("errata.json")
    entry = json.loads(data)[0]
    assert entry["numbers"] == [1] and entry["rows"]["1"]["slip"] == "a | b" and entry["handgrad"] == "`Dense` is right."
