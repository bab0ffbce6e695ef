r"""
Exporting to ONNX
=================

``hg.interop.to_onnx(model, path, input_shape)`` writes a standard ONNX file (opset 17,
standard operators only, dynamic batch axis) that any ONNX runtime executes with the same
outputs as ``model.predict``. Each layer becomes the operators of its forward equations:

.. math::

   \text{Dense: } \mathbf y = \mathbf x W^{\mathsf T} + \mathbf b \;\to\; \texttt{Gemm}, \qquad
   \text{Conv2D} \to \texttt{Conv}, \qquad \text{MaxPool2D} \to \texttt{MaxPool}, \qquad
   \text{LSTM} \to \texttt{LSTM} \text{ or a } \texttt{Scan}

ONNX's own ``LSTM`` operator orders the gates (i, o, f, c) instead of (i, f, g, o), keeps two
biases, and feeds the output-gate peephole with the *new* cell state :math:`s_t`, whereas
``003`` §7 uses :math:`s_{t-1}` for all three gates; a peephole LSTM is therefore exported as a
``Scan`` over an explicit cell. The same model, saved with ``hg.save``, exports from the
command line with ``handgrad export MODEL.safetensors MODEL.onnx``.

- **Code**: :source:`handgrad.interop.onnx_export.to_onnx` (API: :func:`handgrad.interop.to_onnx`);
  PyTorch state dicts in :source:`handgrad.interop.pytorch`.
- **Proof**: below, ONNX Runtime against ``model.predict`` for every model family, and
  ``onnx.checker`` on every file; the interop tests do the same in CI, plus PyTorch round trips.
- **Errata**: none; the peephole difference above is a property of the ONNX operator, not a
  slip of the notes.
"""

# %%
# Every model family, exported and run by ONNX Runtime
# ----------------------------------------------------
import os
import tempfile

import numpy as np
import onnx
import onnxruntime

import handgrad as hg
from handgrad import layers, presets
from handgrad import interop, rbm

(x_train, y_train), (x_test, y_test) = hg.data.load_fashion_mnist_subset()
images = hg.data.to_float(x_test[:64]).reshape(-1, 1, 28, 28)
rows = hg.data.sequential_images(hg.data.to_float(x_test[:64]))

models = {
    "MLP 784-64-10": (hg.Sequential([layers.Flatten(), layers.Dense(784, 64, rng=0), layers.ReLU(),
                                     layers.Dropout(0.2), layers.Dense(64, 10, rng=1)]), images, (1, 28, 28)),
    "LeNet-5": (presets.lenet5(seed=0), images, (1, 28, 28)),
    "LSTM with peepholes": (hg.Sequential([layers.LSTM(28, 32, peepholes=True, return_sequences=False, rng=0),
                                           layers.Dense(32, 10, rng=1)]), rows, (28, 28)),
    "RNN": (hg.Sequential([layers.RNN(28, 32, return_sequences=False, rng=0), layers.Dense(32, 10, rng=1)]),
            rows, (28, 28)),
    "autoencoder 784-64-784": (rbm.unroll([rbm.RBM(784, 64, rng=0)]), images.reshape(-1, 784), (784,)),
}
models["LSTM with peepholes"][0].layers[0].params["w_peep"][...] = 0.3   # not the zero init
folder = tempfile.mkdtemp()
for name, (model, x, shape) in models.items():
    path = os.path.join(folder, name.split()[0] + ".onnx")
    interop.to_onnx(model, path, shape)
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    ours = model.predict(x)
    theirs = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    ops = sorted({node.op_type for node in proto.graph.node})
    print(f"{name:<24} opset {proto.opset_import[0].version}, max |ORT − predict| = "
          f"{np.abs(theirs - ours).max():.1e}, operators {', '.join(ops)}")

# %%
# The batch axis is dynamic: the same file runs any batch size.
session = onnxruntime.InferenceSession(os.path.join(folder, "LeNet-5.onnx"), providers=["CPUExecutionProvider"])
for n in (1, 7, 64):
    out = session.run(None, {session.get_inputs()[0].name: images[:n]})[0]
    print(f"batch {n:>2}: output {out.shape}")
