"""ONNX graphs for ``RNN`` and ``LSTM`` (batch-first ``(N, T, F)`` in, ``(N, T, H)`` or
``(N, H)`` out).

Two routes:

- plain layers (no peepholes, no ``mask_value``) use ONNX's own ``RNN`` / ``LSTM`` operators,
  which any runtime optimizes: the input is transposed to time-major (the ``layout=1``
  batch-first form is not implemented by ONNX Runtime), weights are re-stacked in ONNX's gate
  order (i, o, f, c for LSTM; ours is i, f, g, o) and our single bias b goes in Wb with Rb = 0;
- peephole LSTMs and masked layers are written out as a ``Scan`` over the time axis whose body
  is the cell of the layer's docstring in MatMul/Add/Mul/Sigmoid/Tanh. ONNX's ``LSTM``
  operator cannot express our peepholes: its output gate sees c_t (Graves), ours sees c_{t−1}
  (``003`` §7). ``Scan`` keeps the time axis dynamic, and padding steps (all features equal to
  ``mask_value``) carry (h, c) unchanged, as the layer does.

Legend: N batch, T time steps, F input features, H hidden units.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..layers import LSTM
from .onnx_graph import GraphBuilder


def _np(layer, key):
    return numpy.asarray(backend.to_numpy(layer.params[key]))


def export_recurrent(g: GraphBuilder, layer, x: str, i: int) -> str:
    """Append the graph of ``layer`` (at position ``i``) reading ``x``; returns the output name."""
    peep = isinstance(layer, LSTM) and layer.peepholes
    if peep or layer.mask_value is not None:
        return _scan(g, layer, x, i)
    return _native(g, layer, x)


def _native(g: GraphBuilder, layer, x: str) -> str:
    H = layer.hidden_size
    W_ih, W_hh, b = _np(layer, "W_ih"), _np(layer, "W_hh"), _np(layer, "b")
    if isinstance(layer, LSTM):
        # ours I, F, g, O → ONNX i, o, f, c
        order = numpy.concatenate([numpy.arange(k * H, (k + 1) * H) for k in (0, 3, 1, 2)])
        W_ih, W_hh, b = W_ih[order], W_hh[order], b[order]
        op, extra = "LSTM", {}
    else:
        op, extra = "RNN", {"activations": ["Tanh" if layer.activation == "tanh" else "Sigmoid"]}
    W = g.const("W", W_ih[None])
    R = g.const("R", W_hh[None])
    B = g.const("B", numpy.concatenate([b, numpy.zeros_like(b)])[None])
    xt = g.node("Transpose", [x], "time_major", perm=[1, 0, 2])
    y, y_h = g.node(op, [xt, W, R, B], "rnn", n_out=2, hidden_size=H, **extra)
    if layer.return_sequences:
        y = g.node("Squeeze", [y, g.ints("axis1", [1])], "y_tnh")          # (T, 1, N, H) → (T, N, H)
        return g.node("Transpose", [y], "y", perm=[1, 0, 2])
    return g.node("Squeeze", [y_h, g.ints("axis0", [0])], "h_last")         # (1, N, H) → (N, H)


def _scan(g: GraphBuilder, layer, x: str, i: int) -> str:
    H = layer.hidden_size
    lstm = isinstance(layer, LSTM)
    n_states = 2 if lstm else 1
    # the input term X W_ihᵀ + b for all steps at once, as the layer computes it
    a_x = g.node("MatMul", [x, g.const("W_ihT", _np(layer, "W_ih").T)], "xw")
    a_x = g.node("Add", [a_x, g.const("b", _np(layer, "b"))], "xw_b")
    scan_inputs = [a_x]
    if layer.mask_value is not None:  # (N, T, 1): 1 for real steps, 0 for padding
        differs = g.node("Not", [g.node("Equal", [x, g.const("mask_value", layer.mask_value)], "is_pad")], "differs")
        m = g.node("Cast", [differs], "differs_f", to=g.elem)
        scan_inputs.append(g.node("ReduceMax", [m], "step_mask", axes=[2], keepdims=1))
    # zero initial states (N, H), with N read from the input
    n = g.node("Slice", [g.node("Shape", [x], "x_shape"), g.ints("zero", [0]), g.ints("one", [1])], "batch")
    shape = g.node("Concat", [n, g.ints("H", [H])], "state_shape", axis=0)
    zero = g.helper.make_tensor("zero_value", g.elem, [1], [0.0])
    states = [g.node("ConstantOfShape", [shape], f"s0_{k}", value=zero) for k in range(n_states)]

    body = _cell_body(g, layer, i)
    outs = g.node("Scan", states + scan_inputs, "scan", n_out=n_states + 1, body=body,
                  num_scan_inputs=len(scan_inputs), scan_input_axes=[1] * len(scan_inputs), scan_output_axes=[1])
    return outs[-1] if layer.return_sequences else outs[0]


def _cell_body(g: GraphBuilder, layer, i: int):
    """One time step: (h_{t−1}[, c_{t−1}], a_x[t][, m_t]) → (h_t[, c_t], h_t)."""
    H = layer.hidden_size
    lstm = isinstance(layer, LSTM)
    masked = layer.mask_value is not None
    b = GraphBuilder(g.onnx, g.dtype, prefix=f"l{i}_cell_")
    h_prev, c_prev, a_in, m = b.name("h_prev"), b.name("c_prev"), b.name("a_x"), b.name("m")
    inputs = [b.value_info(h_prev, ["N", H])]
    if lstm:
        inputs.append(b.value_info(c_prev, ["N", H]))
    inputs.append(b.value_info(a_in, ["N", (4 if lstm else 1) * H]))
    if masked:
        inputs.append(b.value_info(m, ["N", 1]))
    a = b.node("Add", [a_in, b.node("MatMul", [h_prev, b.const("W_hhT", _np(layer, "W_hh").T)], "hw")], "a")

    def carry(new, old):  # padding: new = old + m (new − old)
        return b.node("Add", [old, b.node("Mul", [m, b.node("Sub", [new, old], "d")], "md")], "carried")

    if lstm:
        aI, aF, ag, aO = b.node("Split", [a], "block", n_out=4, axis=1)
        if layer.peepholes:  # ψ_G ⊙ c_{t−1} for the I, F and O gates (003 §7)
            peep = _np(layer, "w_peep")
            aI, aF, aO = (b.node("Add", [blk, b.node("Mul", [c_prev, b.const(f"psi_{nm}", peep[k])], "pc")], "ap")
                          for k, (nm, blk) in enumerate((("I", aI), ("F", aF), ("O", aO))))
        ig, fg, og = (b.node("Sigmoid", [blk], nm) for nm, blk in (("i", aI), ("f", aF), ("o", aO)))
        cand = b.node("Tanh", [ag], "g")
        c = b.node("Add", [b.node("Mul", [fg, c_prev], "fc"), b.node("Mul", [ig, cand], "ig")], "c")
        h = b.node("Mul", [og, b.node("Tanh", [c], "tanh_c")], "h")
        if masked:
            c, h = carry(c, c_prev), carry(h, h_prev)
        state_out = [h, c]
    else:
        h = b.node("Tanh" if layer.activation == "tanh" else "Sigmoid", [a], "h")
        if masked:
            h = carry(h, h_prev)
        state_out = [h]
    y = b.node("Identity", [state_out[0]], "y")
    outputs = [b.value_info(s, ["N", H]) for s in state_out] + [b.value_info(y, ["N", H])]
    return b.graph(f"l{i}_{type(layer).__name__}_cell", inputs, outputs)

