"""Models that leave handgrad: PyTorch state dicts in and out, ONNX export.

``from_torch(model, state_dict)`` / ``to_torch_state_dict(model)`` (``interop.pytorch``) need
no torch; ``to_onnx(model, path, input_shape)`` (``interop.onnx_export``) needs the ``onnx``
package (``pip install 'handgrad[onnx]'``), imported only when it is called.
"""
from .onnx_export import to_onnx
from .pytorch import from_torch, to_torch_state_dict

__all__ = ["from_torch", "to_onnx", "to_torch_state_dict"]
