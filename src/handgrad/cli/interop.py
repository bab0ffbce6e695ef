"""``handgrad import-torch`` (a PyTorch state dict saved as safetensors → a handgrad model file)
and ``handgrad export`` (a handgrad model file → ONNX)."""
from __future__ import annotations

import argparse
import os
import sys

from .. import presets
from ..interop import from_torch
from ..serialization import load, read_metadata, save


def _read_state_dict(path: str) -> dict:
    """A safetensors state dict as NumPy arrays; a ``torch.save`` file (a zip of pickles) is
    refused before anything in it is read."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    with open(path, "rb") as fh:  # FileNotFoundError is reported by the CLI as it is
        head = fh.read(4)
    if head.startswith(b"PK") or head[:1] == b"\x80":
        raise ValueError(f"import-torch: {path} looks like a torch.save file (pickle), which handgrad never "
                         "loads; save the state dict with safetensors instead: "
                         "safetensors.torch.save_file(model.state_dict(), path)")
    try:
        return load_file(path)
    except (SafetensorError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"import-torch: {path} is not a readable safetensors file ({exc})") from None


def _preset_kwargs(args, preset, state: dict) -> dict:
    d = preset.defaults
    kw: dict = {"seed": 0}
    if preset.name == "mlp":
        kw.update(hidden=args.hidden or (256, 128), activation=args.activation or "relu",
                  dropout=d.get("dropout", 0.0) if args.dropout is None else args.dropout)
    elif preset.name == "lenet5":
        kw.update(activation=args.activation or "relu", pool=args.pool or "max",
                  dropout=0.0 if args.dropout is None else args.dropout)
    else:
        if args.hidden:
            kw["hidden"] = args.hidden[0]
        if args.cell:
            kw["cell"] = args.cell
    if preset.task == "charlm":
        if args.vocab_size is None:  # the input width of the first recurrent module
            first = next((v for k, v in state.items() if k.endswith("weight_ih_l0")), None)
            if first is None:
                raise ValueError("import-torch: give --vocab-size for the charlm preset")
            args.vocab_size = int(first.shape[1])
        kw["vocab_size"] = args.vocab_size
    return kw


def cmd_import_torch(args) -> int:
    preset = presets.get(args.preset)
    state = _read_state_dict(args.state_dict)
    model = preset.build(**_preset_kwargs(args, preset, state))
    from_torch(model, state)
    # the metadata `handgrad train` stores, so `handgrad evaluate` and `handgrad export` work
    meta = {"preset": preset.name, "task": preset.task, "loss": preset.loss().__class__.__name__,
            "input_shape": list(preset.input_shape), "imported_from": os.path.basename(args.state_dict)}
    if preset.task == "adding" and args.length is not None:
        meta["length"] = args.length
    out = args.out
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    save(model, out, metadata=meta)
    n = sum(1 for layer in model.layers if layer.params)
    print(f"imported {len(state)} tensors into {n} layers of preset {preset.name!r} ({model.num_params:,} parameters)")
    print(f"model: {out}")
    return 0


def input_shape_arg(text: str) -> tuple:
    """``"1,28,28"`` → (1, 28, 28); ``"T,7"`` (or ``None,7``) → (None, 7), a dynamic time axis."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if part in ("T", "None", "?"):
            out.append(None)
            continue
        try:
            v = int(part)
        except ValueError:
            v = 0
        if v < 1:
            raise argparse.ArgumentTypeError(f"expected a shape like 1,28,28 or T,7, got {text!r}")
        out.append(v)
    return tuple(out)


def _inferred_shape(model):
    """One sample's shape as far as the first layer with parameters tells it (None: unknown)."""
    first = next((layer for layer in model.layers if layer.params), None)
    if getattr(first, "in_features", None):
        return (first.in_features,)
    if getattr(first, "input_size", None):
        return (None, first.input_size)
    return None


def _export_shape(args, model) -> tuple:
    if args.input_shape is not None:
        return args.input_shape
    meta = read_metadata(args.model)
    shape = meta.get("input_shape")
    guess = _inferred_shape(model)
    if isinstance(shape, list) and shape:
        shape = tuple(shape)
        if guess is not None and len(guess) == len(shape):  # e.g. charlm's (None, None): F from the model
            shape = tuple(g if s is None else s for s, g in zip(shape, guess))
        return shape
    if guess is None:
        raise ValueError(f"export: {args.model} stores no input shape and its first layer does not imply one; "
                         "give --input-shape, e.g. --input-shape 1,28,28")
    return guess


def cmd_export(args) -> int:
    from ..fsutil import atomic_write_bytes
    from ..interop.onnx_export import OPSET, build_onnx

    model = load(args.model)
    shape = _export_shape(args, model)
    try:
        proto = build_onnx(model, shape)
    except ImportError as exc:
        print(f"handgrad: error: {exc}", file=sys.stderr)
        return 2
    atomic_write_bytes(args.out, proto.SerializeToString())

    def dims(info):
        return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in info.type.tensor_type.shape.dim) + ")"

    print(f"wrote {args.out}: ONNX opset {OPSET}, input {dims(proto.graph.input[0])}, "
          f"output {dims(proto.graph.output[0])}, {len(proto.graph.node)} nodes")
    return 0


def add_commands(sub, data_args) -> None:
    from .common import widths

    it = sub.add_parser("import-torch", help="import a PyTorch state dict (safetensors) into a preset's architecture")
    it.add_argument("state_dict", metavar="STATE_DICT.safetensors",
                    help="the torch model's state_dict saved with safetensors.torch.save_file (never a pickle)")
    it.add_argument("--preset", required=True, choices=sorted(presets.PRESETS))
    it.add_argument("--out", required=True, metavar="MODEL.safetensors", help="handgrad model file to write")
    it.add_argument("--hidden", type=widths, help="hidden widths (mlp) or the recurrent width, as for train")
    it.add_argument("--activation", choices=sorted(presets.ACTIVATIONS))
    it.add_argument("--pool", choices=("max", "avg"), help="lenet5: max (default) or mean pooling")
    it.add_argument("--cell", choices=sorted(presets.CELLS), help="sequence presets: lstm (default) or rnn")
    it.add_argument("--dropout", type=float, help="dropout after each hidden layer (changes no weight)")
    it.add_argument("--vocab-size", type=int, help="charlm: vocabulary size (default: read from the state dict)")
    it.add_argument("--length", type=int, help="adding: the sequence length to evaluate at")
    it.set_defaults(func=cmd_import_torch)

    ex = sub.add_parser("export", help="export a handgrad model file to ONNX (needs the onnx extra)")
    ex.add_argument("model", metavar="MODEL.safetensors")
    ex.add_argument("out", metavar="MODEL.onnx")
    ex.add_argument("--input-shape", type=input_shape_arg, metavar="SHAPE",
                    help="one sample's shape without the batch axis, e.g. 1,28,28 or T,7 "
                         "(default: the shape stored in the model file)")
    ex.set_defaults(func=cmd_export)
