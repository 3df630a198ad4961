"""The ``tinyvision`` command: train, eval, predict, models, bench, gradcheck, verify, viz.

    tinyvision train --model lenet5 --data digits --epochs 10 --out runs/lenet5
    tinyvision eval --checkpoint runs/lenet5/last.ckpt.npz
    tinyvision predict IMAGE.png --checkpoint runs/lenet5/last.ckpt.npz --topk 3
    tinyvision models
    tinyvision viz summary --model resnet18 --out runs/viz

``tinyvision COMMAND --help`` lists each command's options.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import tinyvision as tv

DATASETS = ("digits", "shapes", "mnist:PATH", "fashion-mnist:PATH", "cifar10:PATH", "folder:PATH")


# ---------------------------------------------------------------------- data and models
def load_data(spec: str, image_size: int | None, augment: bool = False) -> tuple[Any, Any, int, int]:
    """'digits', 'shapes', 'mnist:DIR', 'cifar10:DIR', 'folder:DIR' -> (train, test,
    channels, classes). Images are resized to ``image_size`` when given."""
    from tinyvision.data import cifar10, digits, mnist, shapes, transforms as T
    from tinyvision.data.dataset import Subset

    name, _, path = spec.partition(":")
    train_tf = None
    if name == "digits":
        size = image_size or 32
        if augment:
            train_tf = T.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1))
        return digits(train=True, size=size, transform=train_tf), digits(train=False, size=size), 1, 10
    if name == "shapes":
        size = image_size or 32
        if augment:
            train_tf = T.Compose([T.RandomCrop(size, padding=2), T.RandomHorizontalFlip()])
        return shapes(3000, size, seed=0, transform=train_tf), shapes(600, size, seed=1), 3, 3
    if name in ("mnist", "fashion-mnist", "cifar10", "folder") and not path:
        raise SystemExit(f"--data {name} needs a local folder: --data {name}:PATH (nothing is downloaded)")
    resize = T.Resize(image_size) if image_size else None
    if name in ("mnist", "fashion-mnist"):
        return mnist(path, True, resize), mnist(path, False, resize), 1, 10
    if name == "cifar10":
        return cifar10(path, True, resize), cifar10(path, False, resize), 3, 10
    if name == "folder":
        from tinyvision.data import ImageFolder

        data = ImageFolder(path, transform=resize)
        order = np.random.default_rng(0).permutation(len(data))
        cut = int(0.8 * len(data))
        channels = data[0][0].shape[0]
        return Subset(data, order[:cut]), Subset(data, order[cut:]), channels, len(data.classes)
    raise SystemExit(f"unknown --data {spec!r}; choose one of: {', '.join(DATASETS)}")


def model_kwargs(name: str, channels: int, image_size: int, num_classes: int) -> dict[str, Any]:
    """The constructor options that fit a model family to the data's channels and size."""
    kwargs: dict[str, Any] = {"num_classes": num_classes}
    if name.startswith("lenet"):
        kwargs["in_channels"] = channels
    elif name.startswith("resnet"):
        kwargs.update(in_channels=channels, cifar_stem=image_size <= 64)
    elif name.startswith("vit"):
        kwargs.update(in_chans=channels, img_size=image_size, patch_size=4 if image_size <= 64 else 16)
    elif channels != 3:
        raise SystemExit(f"model {name} takes 3-channel images; the data has {channels} "
                         "(use lenet5, resnet* or vit* for grey images)")
    return kwargs


def build(config: dict[str, Any]) -> Any:
    from tinyvision.models import create_model, list_models

    if config["model"] not in list_models():
        raise SystemExit(f"unknown --model {config['model']!r}; `tinyvision models` lists the "
                         f"{len(list_models())} valid names (e.g. lenet5, resnet18, vit_tiny_patch16_224)")
    return create_model(config["model"], **config["kwargs"])


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` that must be > 0 (argparse names the option on error)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


# learning rates that train the zoo's small models well from scratch (make demo: lenet5 + adam)
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 1e-3}
EPOCHS = 10


def read_checkpoint(path: str, option: str = "--checkpoint") -> dict[str, Any]:
    """``tv.load(path)``, with a missing, corrupt or truncated file as a one-line exit message."""
    try:
        return tv.load(path)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"{option}: {exc}") from None


def load_checkpoint(path: str) -> tuple[Any, dict[str, Any]]:
    """A model rebuilt from a Trainer checkpoint and its stored config."""
    ckpt = read_checkpoint(path)
    if "config" not in ckpt:
        raise SystemExit(f"{path} has no 'config' entry: was it written by `tinyvision train`?")
    config = json.loads(str(ckpt["config"]))
    model = build(config)
    model.load_state_dict({k.removeprefix("model."): v for k, v in ckpt["model"].items()})
    return model.eval(), config


# ---------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> None:
    from tinyvision import optim
    from tinyvision.data import DataLoader
    from tinyvision.train import Classifier, Trainer

    if args.resume is not None:
        read_checkpoint(args.resume, "--resume")  # a missing or damaged file: say so before any work
    tv.manual_seed(args.seed)
    image_size = args.image_size or (32 if args.data in ("digits", "shapes") else None)
    train, test, channels, classes = load_data(args.data, image_size, augment=args.augment)
    size = image_size or train[0][0].shape[-1]
    config = {"model": args.model, "kwargs": model_kwargs(args.model, channels, size, classes),
              "data": args.data, "image_size": size}
    model = build(config)
    lr = args.lr or DEFAULT_LR[args.optimizer]
    opt = {"sgd": lambda p: optim.SGD(p, lr=lr, momentum=0.9, weight_decay=args.weight_decay, nesterov=True),
           "adam": lambda p: optim.Adam(p, lr=lr, weight_decay=args.weight_decay),
           "adamw": lambda p: optim.AdamW(p, lr=lr, weight_decay=args.weight_decay)}[args.optimizer]
    sched = None
    if args.schedule == "cosine":
        sched = lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=args.epochs)  # noqa: E731
    elif args.schedule == "step":
        sched = lambda o: optim.lr_scheduler.StepLR(o, step_size=max(args.epochs // 3, 1), gamma=0.1)  # noqa: E731
    module = Classifier(model, opt, sched)
    trainer = Trainer(max_epochs=args.epochs, out_dir=args.out, seed=args.seed, progress=not args.quiet,
                      extra_checkpoint={"config": json.dumps(config)})
    train_loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, seed=args.seed)
    test_loader = DataLoader(test, batch_size=256)
    params = sum(p.numel() for p in model.parameters())
    print(f"training {args.model} ({params:,} parameters) on {args.data}: {len(train)} train / "
          f"{len(test)} test images of {channels}x{size}x{size}, {args.epochs} epochs of {args.optimizer} "
          f"(lr {lr:g}, batch {args.batch_size}, {args.schedule} schedule)")
    start = time.perf_counter()
    history = trainer.fit(module, train_loader, test_loader, resume_from=args.resume)
    final = history[-1]
    print(f"test accuracy {final.get('val_acc', float('nan')):.4f} after {final['epoch']} epochs "
          f"({time.perf_counter() - start:.1f} s)")
    if args.out:
        print(f"wrote {args.out}/: last.ckpt.npz, best.ckpt.npz (by test accuracy), metrics.csv, curves.png")


def cmd_eval(args: argparse.Namespace) -> None:
    from tinyvision.data import DataLoader
    from tinyvision.train import Classifier, Trainer

    model, config = load_checkpoint(args.checkpoint)
    _, test, _, _ = load_data(args.data or config["data"], config["image_size"])
    metrics = Trainer(progress=not args.quiet).validate(Classifier(model, optimizer=None), DataLoader(test, batch_size=256))
    print("  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


def cmd_predict(args: argparse.Namespace) -> None:
    from tinyvision.data.folder import load_image
    from tinyvision.data.functional import resize

    model, config = load_checkpoint(args.checkpoint)
    image = load_image(args.image)  # (C, H, W) float32 in [0, 1]
    channels = config["kwargs"].get("in_channels", config["kwargs"].get("in_chans", 3))
    if channels == 1 and image.shape[0] == 3:
        image = image.mean(0, keepdims=True)
    image = resize(image, (config["image_size"], config["image_size"]))
    with tv.no_grad():
        probs = tv.softmax(model(tv.tensor(image[None])), dim=1).numpy()[0]
    for k in np.argsort(-probs)[: args.topk]:
        print(f"class {k}: {probs[k]:.4f}")


def cmd_models(args: argparse.Namespace) -> None:
    from tinyvision.models import create_model, list_models

    for name in list_models(args.pattern):
        count = sum(p.numel() for p in create_model(name).parameters())
        print(f"{name:<26} {count:>13,} parameters")


def cmd_bench(args: argparse.Namespace) -> None:
    import runpy

    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks").is_dir():
        raise SystemExit("tinyvision bench runs the benchmarks/ folder of a source checkout; "
                         f"none found next to {root / 'tinyvision'}")
    sys.path.insert(0, str(root))
    for suite in args.suite:
        runpy.run_module(f"benchmarks.{suite}", run_name="__main__")


def cmd_gradcheck(args: argparse.Namespace) -> None:
    from tinyvision.checks import run_gradchecks

    failures = run_gradchecks(pattern=args.pattern)
    raise SystemExit(1 if failures else 0)


def cmd_verify(args: argparse.Namespace) -> None:
    from tinyvision.verify import verify_against_reference

    verify_against_reference(args.model, image_size=args.image_size)


def cmd_viz(args: argparse.Namespace) -> None:
    from tinyvision.viz.cli import run_viz

    run_viz(args)


# ---------------------------------------------------------------------- parser
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyvision", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a zoo model on a dataset")
    t.add_argument("--model", default="lenet5", help="a name from `tinyvision models` (default lenet5)")
    t.add_argument("--data", default="digits", help=f"one of: {', '.join(DATASETS)} (default digits)")
    t.add_argument("--epochs", type=positive(int), default=EPOCHS, help=f"(default {EPOCHS})")
    t.add_argument("--batch-size", type=positive(int), default=16, help="(default 16)")
    t.add_argument("--lr", type=positive(float), default=None,
                   help="learning rate (default: " + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")")
    t.add_argument("--optimizer", choices=tuple(DEFAULT_LR), default="adam", help="(default adam)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="(default 0)")
    t.add_argument("--schedule", choices=("cosine", "step", "none"), default="cosine",
                   help="learning-rate schedule over the epochs (default cosine)")
    t.add_argument("--image-size", type=positive(int), default=None, help="resize images to this (default: 32 for digits/shapes)")
    t.add_argument("--augment", action="store_true", help="light augmentation (affine for digits, crop+flip for shapes)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="folder for checkpoints, metrics.csv and curves.png")
    t.add_argument("--resume", default=None, help="a checkpoint to continue from")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(run=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on its test set")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", default=None, help="override the dataset stored in the checkpoint")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(run=cmd_eval)

    r = sub.add_parser("predict", help="top-k classes of one image")
    r.add_argument("image")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--topk", type=positive(int), default=5)
    r.set_defaults(run=cmd_predict)

    m = sub.add_parser("models", help="list the registry with parameter counts")
    m.add_argument("pattern", nargs="?", default="*", help="shell pattern, e.g. 'resnet*'")
    m.set_defaults(run=cmd_models)

    b = sub.add_parser("bench", help="run the benchmarks (from a source checkout)")
    b.add_argument("suite", nargs="*", default=["kernels"], help="benchmarks.<suite> modules (default: kernels)")
    b.set_defaults(run=cmd_bench)

    g = sub.add_parser("gradcheck", help="gradient-check every op and layer, print a table")
    g.add_argument("--pattern", default="*", help="only the checks whose name matches")
    g.set_defaults(run=cmd_gradcheck)

    v = sub.add_parser("verify", help="compare a zoo model with torchvision/timm layer by layer (needs them)")
    v.add_argument("model")
    v.add_argument("--image-size", type=int, default=None)
    v.set_defaults(run=cmd_verify)

    z = sub.add_parser("viz", help="draw attention, position embeddings, receptive fields, Grad-CAM, filters")
    z.add_argument("what", choices=("attention", "posembed", "rf", "gradcam", "filters", "summary"))
    z.add_argument("--model", required=False, default=None)
    z.add_argument("--checkpoint", default=None)
    z.add_argument("--image", default=None)
    z.add_argument("--image-size", type=int, default=None)
    z.add_argument("--out", default="runs/viz")
    z.set_defaults(run=cmd_viz)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
