"""Reuse of trained layers (transfer learning, ``003`` §5).

``003`` §5 ends with: after training a convolutional network on one data set, its parameters
"up to its last fully connected layer" can be re-used as the starting point for another
classification task — the early layers have learned a *representation* (edges, textures,
parts) that is not specific to the original classes, so only the classifier on top has to be
learned again. The recipe here:

1. train a model on task A;
2. ``new = replace_head(model, num_classes_B)``: a copy of the model whose last ``Dense`` is a
   fresh, randomly initialized ``Dense`` with one output per class of task B;
3. ``freeze(new, but_last=1)``: every layer below the new head stops learning
   (``layer.trainable = False``);
4. ``fit`` on task B. Only the head is updated: optimizers skip frozen layers, frozen
   ``Dense``/``Conv2D`` layers compute no parameter gradient, and ``Sequential.backward(...,
   input_grad=False)`` (what ``fit`` calls) does not even visit the frozen layers below the
   first trainable one, so a frozen feature extractor costs only its forward pass;
5. optionally ``unfreeze(new)`` and fine-tune everything with a small learning rate.

``freeze``/``unfreeze`` select layers by index (an int, a ``slice``, or a list of ints,
negative indices allowed) or with ``but_last=k``: every layer below the k-th layer *with
parameters* counted from the top. They return the model, so calls chain.

``clone(model)`` and ``clone_layer(layer)`` make independent copies (parameters copied, same
dtype and device, same ``trainable`` flag, no forward caches).
"""
from __future__ import annotations

from typing import Iterable

import numpy

from .. import backend
from .._checks import check_int
from ..layers import Dense
from ..layers.base import Layer
from ..model import Sequential


def clone_layer(layer: Layer) -> Layer:
    """An independent copy of ``layer``: rebuilt from its config, parameters copied."""
    if not isinstance(layer, Layer):
        raise TypeError(f"clone_layer: expected a Layer, got {type(layer).__name__}")
    # shapes only: the copied parameters replace whatever init would draw
    new = type(layer).from_config(layer.get_config(), deferred=True)
    new.params = {k: p.copy() for k, p in layer.params.items()}
    new.trainable = layer.trainable
    new.zero_grads()
    return new


def clone(model: Sequential) -> Sequential:
    """An independent copy of ``model`` (every layer cloned)."""
    _check_model(model, "clone")
    return Sequential([clone_layer(layer) for layer in model.layers])


def _check_model(model, where: str) -> None:
    if not isinstance(model, Sequential):
        raise TypeError(f"{where}: expected a Sequential model, got {type(model).__name__}")


def _select(model: Sequential, layers, but_last, where: str) -> list[int]:
    n = len(model.layers)
    if layers is not None and but_last is not None:
        raise ValueError(f"{where}: give either layers= or but_last=, not both")
    if but_last is not None:
        but_last = check_int(but_last, where, "but_last", minimum=0)
        with_params = [i for i, layer in enumerate(model.layers) if layer.params]
        if but_last > len(with_params):
            raise ValueError(f"{where}: but_last={but_last} but the model has only "
                             f"{len(with_params)} layers with parameters")
        stop = with_params[-but_last] if but_last else n
        return list(range(stop))
    if layers is None:
        return list(range(n))
    if isinstance(layers, slice):
        return list(range(n))[layers]
    if isinstance(layers, (int, numpy.integer)) and not isinstance(layers, bool):
        layers = [layers]
    if not isinstance(layers, Iterable):
        raise TypeError(f"{where}: expected layers to be an int, a slice or a list of ints, got "
                        f"{type(layers).__name__}")
    out = []
    for i in layers:
        out.append(check_int(i, where, "layer index", minimum=-n, maximum=n - 1) % n)
    return sorted(set(out))


def freeze(model: Sequential, layers=None, *, but_last: int | None = None) -> Sequential:
    """Stop the selected layers from learning (``trainable = False``); returns ``model``.

    ``layers``: an index, a ``slice`` or a list of indices (default: every layer);
    ``but_last=k``: every layer below the k-th parameterized layer from the top (``but_last=1``
    leaves only the output layer trainable). The gradients of newly frozen layers are reset
    to zero: nothing computes them while the layer is frozen, and a stale gradient from
    earlier training must not be mistaken for a current one.
    """
    _check_model(model, "freeze")
    for i in _select(model, layers, but_last, "freeze"):
        layer = model.layers[i]
        if layer.trainable:
            layer.trainable = False
            layer.zero_grads()
    return model


def unfreeze(model: Sequential, layers=None, *, but_last: int | None = None) -> Sequential:
    """Let the selected layers learn again (``trainable = True``); same selection as
    ``freeze`` (default: every layer). Returns ``model``."""
    _check_model(model, "unfreeze")
    for i in _select(model, layers, but_last, "unfreeze"):
        model.layers[i].trainable = True
    return model


def trainable_layers(model: Sequential) -> list[int]:
    """Indices of the layers with parameters that are trainable."""
    _check_model(model, "trainable_layers")
    return [i for i, layer in enumerate(model.layers) if layer.params and layer.trainable]


def replace_head(model: Sequential, num_classes: int, from_layer: int = -1, rng=None, *,
                 weight_init: str = "normal_fan_in", copy: bool = True) -> Sequential:
    """A model whose head — the layers from ``from_layer`` on — is one fresh ``Dense`` with
    ``num_classes`` outputs.

    ``from_layer`` (default ``-1``, the output layer) must index a ``Dense``; the new head has
    the same ``in_features``, the same dtype and device, weights drawn by ``weight_init`` from
    ``rng`` (a generator or int seed) and zero biases. With ``from_layer=-3`` on ``lenet5``
    the last two ``Dense`` layers (and the activation between them) are replaced by a single
    ``Dense(120, num_classes)``. With ``copy=True`` (the default) the layers kept below the
    head are copies, so training the new model leaves ``model`` untouched; ``copy=False``
    shares them (the two models then train the same layer objects). The ``trainable`` flags
    of the kept layers are preserved; the new head is trainable.
    """
    _check_model(model, "replace_head")
    n = len(model.layers)
    idx = check_int(from_layer, "replace_head", "from_layer", minimum=-n, maximum=n - 1) % n
    old = model.layers[idx]
    if not isinstance(old, Dense):
        raise ValueError(f"replace_head: expected layer {from_layer} to be a Dense (the head to replace), "
                         f"got {old!r}; pass from_layer= the index of the Dense to replace")
    num_classes = check_int(num_classes, "replace_head", "num_classes", minimum=1)
    W = old.params["W"]
    head = Dense(old.in_features, num_classes, weight_init=weight_init, rng=rng, dtype=W.dtype)
    xp = backend.array_module(W)
    head.params = {k: backend.asarray(p, xp=xp) for k, p in head.params.items()}
    head.zero_grads()
    kept = model.layers[:idx]
    if copy:
        kept = [clone_layer(layer) for layer in kept]
    return Sequential([*kept, head])
