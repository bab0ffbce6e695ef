"""``handgrad train rbm`` and ``handgrad train autoencoder`` (``003`` §8–9), and the
autoencoder's ``handgrad evaluate``.

``cli/train.py`` hooks this module in with ``add_train_arguments(parser)`` (the options only
these presets have) and ``run_train(args)``; ``python -m handgrad.cli.rbm PRESET ...`` runs it
alone. As for every preset (``003`` §4): a seeded ``--val-split`` of the training set is held
out for monitoring and choosing, and the test set is evaluated once, after training.

- ``rbm``: one RBM 784–H (``--hidden``, default 500) trained by CD-k / PCD-k (``-k``,
  ``--persistent``) for ``--epochs`` (default 10) with SGD (``--lr`` 0.1, 0.01 for PCD;
  momentum 0.5 → 0.9, ``--weight-decay`` 0.0002 on W).
- ``autoencoder``: 784–1000–500–250–``--code-size`` (``--hidden`` sets the middle widths);
  greedy pretraining for ``--pretrain-epochs`` per RBM (skipped with ``--no-pretrain``: the same
  network from random initialisation), ``unroll``, then fine-tuning with ``hg.fit`` for
  ``--epochs`` (default 15; ``--finetune-loss`` bce or mse, ``--optimizer`` adam, ``--lr``
  0.001, batch 128, cosine decay). PCA with as many components as the code is fitted on the same training split and
  reported beside it.

Each run writes into ``--out``: ``model.safetensors``, ``history.json``, ``curves.png``,
``filters.png``, ``reconstructions.png``, ``samples.png`` (and ``stack.safetensors``,
``pretraining.png``; ``codes.png`` for a 2-D code), and checkpoints for ``--resume``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time

import numpy

from .. import data, optim
from .. import rbm as R
from ..fsutil import atomic_write_bytes
from ..rbm import autoencoder as AE
from ..rbm.pca import PCA, squared_error_per_image
from ..serialization import load, read_metadata, save
from ..training import TrainingDiverged, TrainingInterrupted, fit
from ..training import checkpoint as ckpt
from .common import EpochPrinter, fault_exit, jsonable, widths

PRESETS = {"rbm": "an RBM on Fashion-MNIST by contrastive divergence (003 §8)",
           "autoencoder": "a deep autoencoder pretrained as a stack of RBMs, then fine-tuned (003 §9)"}
_OPTIONS = ("preset", "data", "subset", "hidden", "code_size", "pretrain_epochs", "pretrain_lr", "no_pretrain",
            "persistent", "k", "finetune_loss", "optimizer", "lr", "momentum", "weight_decay", "epochs",
            "batch_size", "val_split", "seed")
DEFAULTS = {"rbm": {"hidden": (500,), "epochs": 10, "batch_size": 100, "lr": None, "weight_decay": 2e-4},
            "autoencoder": {"hidden": (1000, 500, 250), "epochs": 15, "batch_size": 128, "lr": 1e-3,
                            "weight_decay": 0.0, "optimizer": "adam"}}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ``rbm`` / ``autoencoder`` presets that ``handgrad train`` lacks."""
    g = parser.add_argument_group("rbm / autoencoder presets")
    g.add_argument("--pretrain-epochs", type=int, default=10, help="autoencoder: CD epochs per RBM (default 10)")
    g.add_argument("--pretrain-lr", type=float,
                   help="autoencoder: RBM learning rate (default 0.1, 0.01 with --persistent; the linear top RBM "
                        "always 0.001)")
    g.add_argument("--code-size", type=int, default=30, help="autoencoder: width of the linear code (default 30)")
    g.add_argument("--no-pretrain", action="store_true", help="autoencoder: random initialisation, no RBMs")
    g.add_argument("--persistent", action="store_true", help="persistent contrastive divergence (PCD)")
    g.add_argument("-k", type=int, default=1, help="Gibbs steps per CD update (default 1)")
    g.add_argument("--finetune-loss", choices=AE.LOSSES, default="bce",
                   help="autoencoder: cross-entropy from logits (default) or halved squared error")


def _common_arguments(p: argparse.ArgumentParser) -> None:
    """What ``handgrad train`` already provides (for ``python -m handgrad.cli.rbm``)."""
    p.add_argument("preset", nargs="?", choices=sorted(PRESETS))
    grp = p.add_mutually_exclusive_group()
    grp.add_argument("--data", metavar="DIR")
    grp.add_argument("--subset", action="store_true")
    p.add_argument("--resume", metavar="RUN_DIR")
    p.add_argument("--hidden", type=widths)
    p.add_argument("--optimizer", choices=("sgd", "adam", "rmsprop"))
    for name, kind in (("--lr", float), ("--momentum", float), ("--weight-decay", float), ("--epochs", int),
                       ("--batch-size", int)):
        p.add_argument(name, type=kind)
    p.add_argument("--val-split", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out")


def _pick(args, name):
    v = getattr(args, name, None)
    return v if v is not None else DEFAULTS[args.preset].get(name)


def _load_data(args):
    """Pixels in [0, 1] as float32 ``(N, 784)``; a seeded validation split of the training set."""
    (xtr, _), (xte, yte) = data.load_fashion_mnist_subset() if args.subset else data.load_fashion_mnist(args.data)
    xtr = (xtr.reshape(len(xtr), -1) / 255.0).astype(numpy.float32)
    xte = (xte.reshape(len(xte), -1) / 255.0).astype(numpy.float32)
    frac = args.val_split if args.val_split is not None else 0.1
    if not 0.0 < frac < 1.0:
        raise ValueError(f"train {args.preset}: --val-split must be in (0, 1) (the monitors need validation "
                         f"data), got {frac}")
    perm = numpy.random.default_rng(args.seed).permutation(len(xtr))
    n_val = max(1, round(len(xtr) * frac))
    return xtr[perm[n_val:]], xtr[perm[:n_val]], (xte, yte)


def _write_json(path, obj) -> None:
    atomic_write_bytes(path, json.dumps(jsonable(obj), indent=2).encode())


def _pictures(out, first_rbm, xte, rows, seed) -> list[str]:
    from ..plotting import have_matplotlib
    from ..rbm import pictures as P

    if not have_matplotlib():
        print("pictures not drawn: install matplotlib (`pip install 'handgrad[plot]'`)")
        return []
    written = []
    if first_rbm is not None:
        P.filters(first_rbm.params["W"], os.path.join(out, "filters.png"))
        P.gibbs_chains(first_rbm, xte[:10], rng=seed, path=os.path.join(out, "samples.png"))
        written += ["filters.png", "samples.png"]
    P.rows_of_images(rows, os.path.join(out, "reconstructions.png"), title="test images and their reconstructions")
    return written + ["reconstructions.png"]


def _train_rbm_preset(args, out, xtr, xval, test) -> int:
    xte, _ = test
    H = _pick(args, "hidden")[0]
    r = R.RBM(784, H, rng=args.seed)
    ck = os.path.join(out, "checkpoints")
    t0 = time.perf_counter()
    print(f"RBM 784→{H}, CD-{args.k}{' (persistent)' if args.persistent else ''}, {len(xtr)} training, "
          f"{len(xval)} validation, {len(xte)} test images (evaluated once, after training)")
    has_ckpt = os.path.isdir(ck) and bool(ckpt.list_checkpoints(ck))
    hist = R.train_rbm(r, xtr, epochs=_pick(args, "epochs"), batch_size=_pick(args, "batch_size"), lr=_pick(args, "lr"),
                       k=args.k, persistent=args.persistent, weight_decay=_pick(args, "weight_decay"),
                       mean_visible=not args.persistent, validation_data=xval, seed=args.seed,
                       checkpoint_dir=ck, resume_from=ck if (args.resume and has_ckpt) else None, desc="rbm")
    for e, logs in enumerate(zip(*hist.history.values())):
        print(f"epoch {e + 1:>3}  " + "  ".join(f"{k} {v:.4g}" for k, v in zip(hist.history, logs)))
    seconds = time.perf_counter() - t0
    test_err = r.reconstruction_error(xte, rng=args.seed)
    save(r, os.path.join(out, "model.safetensors"), metadata={"preset": "rbm", "task": "rbm", "input_shape": [784]})
    _write_json(os.path.join(out, "history.json"), {"preset": "rbm", "seconds": seconds, "history": hist.history,
                                                     "test": {"recon_error": test_err,
                                                              "free_energy": float(r.free_energy(xte).mean())}})
    recon = r.visible_mean(r.sample_hidden(xte[:12], rng=args.seed))
    pics = _pictures(out, r, xte, [("original", xte[:12]), ("RBM", recon)], args.seed)
    _curves(out, hist.history, "rbm")
    print(f"trained in {seconds:.1f}s; test reconstruction error {test_err:.3f} per image; wrote model.safetensors, "
          f"history.json, curves.png, {', '.join(pics)} in {out}")
    return 0


def _curves(out, history, preset) -> None:
    from ..plotting import have_matplotlib, learning_curves

    if have_matplotlib():
        h = {"loss": history.get("loss", history.get("recon_error")),
             "val_loss": history.get("val_loss", history.get("val_recon_error"))}
        learning_curves(h, os.path.join(out, "curves.png"), title=PRESETS[preset])


def _pretrain(args, out, sizes, xtr, xval):
    """Greedy pretraining with a checkpoint folder per RBM; finished RBMs are kept as files so a
    resumed run picks up at the RBM in progress."""
    ck = os.path.join(out, "checkpoints")
    rbms, hists, inp, val = [], [], xtr, xval
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        done = os.path.join(ck, f"rbm{i}.safetensors")
        top = i == len(sizes) - 2
        if args.resume and os.path.exists(done):
            r = load(done)
            with open(done + ".json", encoding="utf-8") as fh:
                hists.append(json.load(fh))
        else:
            r = R.RBM(a, b, hidden="gaussian" if top else "bernoulli", rng=args.seed * 1000 + i)
            folder = os.path.join(ck, f"rbm{i}")
            resume = folder if args.resume and os.path.isdir(folder) and ckpt.list_checkpoints(folder) else None
            t = time.perf_counter()
            h = R.train_rbm(r, inp, epochs=args.pretrain_epochs, lr=None if top else args.pretrain_lr, k=args.k,
                            persistent=args.persistent, mean_visible=not args.persistent, validation_data=val,
                            seed=args.seed + i, checkpoint_dir=folder, resume_from=resume, desc=f"rbm {i + 1}")
            os.makedirs(ck, exist_ok=True)
            save(r, done)
            _write_json(done + ".json", h.history)
            hists.append(h.history)
            print(f"RBM {i + 1}/{len(sizes) - 1} {a}→{b} ({r.hidden} hidden): reconstruction error "
                  f"{h.history['recon_error'][-1]:.3f} (validation {h.history['val_recon_error'][-1]:.3f}) "
                  f"in {time.perf_counter() - t:.1f}s", flush=True)
        rbms.append(r)
        if not top:
            inp, val = R.stack.hidden_means(r, inp), R.stack.hidden_means(r, val)
    return rbms, hists


def _train_autoencoder(args, out, xtr, xval, test) -> int:
    xte, yte = test
    sizes = [784, *_pick(args, "hidden"), args.code_size]
    loss, logits = AE.loss_for(args.finetune_loss)
    print(f"deep autoencoder {'-'.join(map(str, sizes))}-…-784, "
          + ("random initialisation" if args.no_pretrain else f"pretrained {args.pretrain_epochs} epochs per RBM")
          + f", fine-tuned {_pick(args, 'epochs')} epochs ({args.finetune_loss}); {len(xtr)} training, {len(xval)} "
          f"validation, {len(xte)} test images (evaluated once, after training)", flush=True)
    t0 = time.perf_counter()
    rbms, hists = (None, []) if args.no_pretrain else _pretrain(args, out, sizes, xtr, xval)
    t_pre = time.perf_counter() - t0
    if rbms is not None:
        save(rbms, os.path.join(out, "stack.safetensors"))
        model = R.unroll(rbms, logits=logits)
        code_layer = R.stack.encoder_length(rbms)
    else:
        model = R.stack.random_autoencoder(sizes, logits=logits, rng=args.seed)
        code_layer = 2 * (len(sizes) - 1) - 1
    before = AE.reconstruction_error(model, xval, logits)
    print(f"validation error before fine-tuning: {before:.3f}", flush=True)
    epochs, lr = _pick(args, "epochs"), _pick(args, "lr")
    name = _pick(args, "optimizer")
    opt = (optim.Adam(model, lr, weight_decay=_pick(args, "weight_decay")) if name == "adam" else
           optim.SGD(model, lr, momentum=args.momentum or 0.9, weight_decay=_pick(args, "weight_decay"))
           if name == "sgd" else optim.RMSprop(model, lr, weight_decay=_pick(args, "weight_decay")))
    ck = os.path.join(out, "checkpoints", "finetune")
    resume = ck if args.resume and os.path.isdir(ck) and ckpt.list_checkpoints(ck) else None
    t1 = time.perf_counter()
    hist = fit(model, loss, opt, xtr, xtr, epochs=epochs, batch_size=_pick(args, "batch_size"),
               validation_data=(xval, xval), metrics=(), seed=args.seed, checkpoint_dir=ck, resume_from=resume,
               callbacks=[EpochPrinter(epochs), optim.CosineLR(opt, epochs)])
    t_ft = time.perf_counter() - t1
    # the one look at the test set
    err = AE.reconstruction_error(model, xte, logits)
    pca = PCA(args.code_size).fit(xtr)
    pca_err = squared_error_per_image(xte, pca.reconstruct(xte))
    meta = {"preset": "autoencoder", "task": "autoencoder", "loss": type(loss).__name__, "logits": logits,
            "code_layer": code_layer, "input_shape": [784]}
    save(model, os.path.join(out, "model.safetensors"), metadata=meta)
    _write_json(os.path.join(out, "history.json"), {
        "preset": "autoencoder", "sizes": sizes, "pretrained": rbms is not None,
        "seconds": {"pretraining": t_pre, "fine_tuning": t_ft, "total": t_pre + t_ft},
        "test": {"squared_error_per_image": err, f"pca_{args.code_size}_squared_error_per_image": pca_err},
        "validation_error_before_fine_tuning": before, "pretraining": hists, "history": hist.history,
        "args": {k: getattr(args, k, None) for k in _OPTIONS}})
    rows = [("original", xte[:12]), ("autoencoder", AE.reconstruct(model, xte[:12], logits)),
            (f"PCA-{args.code_size}", pca.reconstruct(xte[:12]))]
    pics = _pictures(out, rbms[0] if rbms else None, xte, rows, args.seed)
    _curves(out, hist.history, "autoencoder")
    from ..plotting import have_matplotlib

    if have_matplotlib():
        if hists:
            from ..rbm.pictures import pretraining_curves

            pretraining_curves(hists, os.path.join(out, "pretraining.png"))
            pics.append("pretraining.png")
        if args.code_size == 2:
            from ..rbm.pictures import codes_2d

            codes_2d(AE.encode(model, xte, code_layer), yte, PCA(2).fit(xtr).transform(xte), data.CLASSES,
                     os.path.join(out, "codes.png"))
            pics.append("codes.png")
    print(f"\npretraining {t_pre:.1f}s, fine-tuning {t_ft:.1f}s ({t_ft / max(1, len(hist.epoch)):.1f}s per epoch), "
          f"total {t_pre + t_ft:.1f}s")
    print(f"test squared error per image: autoencoder {err:.3f}, PCA-{args.code_size} {pca_err:.3f}")
    print(f"wrote model.safetensors, history.json, curves.png, {', '.join(pics)} in {out}")
    return 0


def is_run(folder: str) -> bool:
    """True when ``folder`` is a run of these presets (``handgrad train --resume`` dispatch)."""
    try:
        with open(os.path.join(folder, "run.json"), encoding="utf-8") as fh:
            return json.load(fh).get("preset") in PRESETS
    except (OSError, ValueError, AttributeError):
        return False


def run_train(args) -> int:
    """``handgrad train rbm|autoencoder`` (or ``--resume RUN_DIR`` of such a run); returns the
    exit code (0, 130 when interrupted, 3 when training diverged)."""
    if getattr(args, "resume", None):
        with open(os.path.join(args.resume, "run.json"), encoding="utf-8") as fh:
            for k, v in json.load(fh).items():
                setattr(args, k, tuple(v) if k == "hidden" and v else v)
        args.out = args.resume
    if args.preset not in PRESETS:
        raise ValueError(f"train: expected preset 'rbm' or 'autoencoder' here, got {args.preset!r}")
    for name, low in (("k", 1), ("code_size", 1), ("pretrain_epochs", 1)):
        if getattr(args, name, low) < low:
            raise ValueError(f"train {args.preset}: --{name.replace('_', '-')} must be >= {low}")
    args.out = args.out or os.path.join("runs", args.preset)
    os.makedirs(args.out, exist_ok=True)
    if not getattr(args, "resume", None):
        _write_json(os.path.join(args.out, "run.json"), {k: getattr(args, k, None) for k in _OPTIONS})
    xtr, xval, test = _load_data(args)
    try:
        if args.preset == "rbm":
            return _train_rbm_preset(args, args.out, xtr, xval, test)
        return _train_autoencoder(args, args.out, xtr, xval, test)
    except (TrainingInterrupted, TrainingDiverged) as exc:
        return fault_exit(exc, args.out)


def evaluate_model(args) -> int:
    """``handgrad evaluate MODEL`` for files of these presets: the reconstruction error per test
    image (and, for an RBM, the mean free energy)."""
    meta = read_metadata(args.model)
    model = load(args.model)
    (_, _), (xte, _) = (data.load_fashion_mnist_subset() if getattr(args, "subset", False)
                        else data.load_fashion_mnist(getattr(args, "data", None)))
    xte = (xte.reshape(len(xte), -1) / 255.0).astype(numpy.float32)
    if meta.get("task") == "rbm":
        print(f"{args.model}: {len(xte)} test images: reconstruction error {model.reconstruction_error(xte, 0):.4f} "
              f"per image, mean free energy {float(model.free_energy(xte).mean()):.3f}")
        return 0
    err = AE.reconstruction_error(model, xte, bool(meta.get("logits", False)))
    print(f"{args.model}: {len(xte)} test images: squared error {err:.4f} per image (sum over 784 pixels in [0, 1])")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m handgrad.cli.rbm", description=__doc__.split("\n\n")[0])
    _common_arguments(p)
    add_train_arguments(p)
    args = p.parse_args(argv)
    try:
        return run_train(args)
    except (FileNotFoundError, ValueError, TypeError) as exc:
        print(f"handgrad: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
