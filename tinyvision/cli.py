"""The ``tinyvision`` command: train, eval, predict, restore, models, bench, gradcheck, verify, viz.

    tinyvision train --model lenet5 --data digits --epochs 10 --out runs/lenet5
    tinyvision eval --checkpoint runs/lenet5/last.ckpt.npz
    tinyvision predict IMAGE.png --checkpoint runs/lenet5/last.ckpt.npz --topk 3
    tinyvision restore --checkpoint runs/dncnn/best.ckpt.npz NOISY.png OUT.png
    tinyvision models
    tinyvision viz summary --model resnet18 --out runs/viz

``tinyvision COMMAND --help`` lists each command's options.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import tinyvision as tv


# ---------------------------------------------------------------------- helpers
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


def read_checkpoint(path: str, option: str = "--checkpoint") -> dict[str, Any]:
    """``tv.load(path)``, with a missing, corrupt or truncated file as a one-line exit message."""
    try:
        return tv.load(path)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"{option}: {exc}") from None


def load_checkpoint(path: str) -> tuple[Any, dict[str, Any]]:
    """``tinyvision.train.load_checkpoint`` with its errors as one-line exit messages."""
    from tinyvision.train.checkpoint import load_checkpoint as load

    read_checkpoint(path)  # a missing or damaged file: the same message as everywhere
    try:
        return load(path)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def get_task(name: str) -> Any:
    from tinyvision.train.tasks import get_task as get

    try:
        return get(name)
    except ValueError as exc:
        raise SystemExit(f"--task: {exc}") from None


# the recipe keys every task has; a task's `defaults` fill what the command line leaves out
RECIPE = ("epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule", "image_size")


def train_config(args: argparse.Namespace, task: Any) -> dict[str, Any]:
    """The run's config: the task's recipe, overridden by every option given on the command line."""
    config: dict[str, Any] = {"task": task.name, "model": args.model or task.default_model,
                              "data": args.data or task.default_data, "seed": args.seed}
    for key, default in task.defaults.items():
        given = getattr(args, key, None)
        config[key] = default if given is None else given
    if args.optimizer not in (None, task.defaults.get("optimizer")) and args.lr is None:
        from tinyvision.train.tasks import DEFAULT_LR

        config["lr"] = DEFAULT_LR[args.optimizer]  # the recipe's rate was for its own optimizer
    return config


# ---------------------------------------------------------------------- commands
def cmd_train(args: argparse.Namespace) -> None:
    from tinyvision.train.tasks import fit

    if args.resume is not None:
        read_checkpoint(args.resume, "--resume")  # a missing or damaged file: say so before any work
    task = get_task(args.task)
    config = train_config(args, task)
    print(f"training {config['model']} on {config['data']} (task {task.name}): "
          + ", ".join(f"{k} {config[k]}" for k in task.defaults if config.get(k) is not None))
    try:
        result = fit(task, config, out_dir=args.out, resume_from=args.resume, progress=not args.quiet)
    except ValueError as exc:  # an unknown model, a bad recipe value: the message says which
        raise SystemExit(str(exc)) from None
    n_train, n_val, n_test = result["sizes"]
    test = result["test"]
    headline = task.monitor
    words = {"acc": "accuracy"}
    print(f"test {words.get(headline, headline)} {test.get(headline, float('nan')):.4f} after "
          f"{result['history'][-1]['epoch']} epochs ({result['seconds']:.1f} s); the model kept is epoch "
          f"{result['best_epoch']} (best val_{headline}); {n_train} train / {n_val} val / {n_test} test images")
    print("test metrics: " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))
    if args.out:
        print(f"wrote {args.out}/: last.ckpt.npz, best.ckpt.npz (by val_{headline}), metrics.csv, curves.png")


def cmd_eval(args: argparse.Namespace) -> None:
    from tinyvision.data import DataLoader
    from tinyvision.train import Trainer

    if args.checkpoint is None:
        return cmd_eval_baselines(args)
    model, config = load_checkpoint(args.checkpoint)
    task = get_task(config["task"])
    if args.data:
        config["data"] = args.data
    _, _, test = task.datasets(config)
    module = task.module(model, config)
    metrics = Trainer(progress=not args.quiet).validate(module, DataLoader(test, batch_size=256,
                                                                           collate_fn=task.collate()))
    if args.json:
        print(json.dumps({"task": task.name, "model": config["model"], "data": config["data"],
                          "split": "test", "images": len(test), **metrics}))
    else:
        print(f"{config['model']} on the {config['data']} test split ({len(test)} images): "
              + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))


def cmd_eval_baselines(args: argparse.Namespace) -> None:
    """``eval --task denoise|sr|deblur`` without a checkpoint: the classical methods on the
    task's test photo, degraded as the network's is (restoration tasks only)."""
    if args.task is None:
        raise SystemExit("eval: give --checkpoint CKPT, or --task T for a restoration task's classical baselines")
    task = get_task(args.task)
    from tinyvision.train.restore import RestorationTask, classical_baselines

    if not isinstance(task, RestorationTask):
        raise SystemExit(f"eval --task {args.task}: classical baselines exist for denoise, sr and deblur only; "
                         "give --checkpoint to evaluate a trained model")
    config = {"task": task.name, "model": task.default_model, "data": args.data or task.default_data, "seed": 0,
              **task.defaults}
    report = classical_baselines(task, config)
    if args.json:
        print(json.dumps({"task": task.name, "data": config["data"], "split": "test", **report}))
    else:
        for name, scores in report.items():
            print(f"{name:16s} " + "  ".join(f"{k} {v}" if not isinstance(v, float) else f"{k} {v:.4f}"
                                             for k, v in scores.items()))


def cmd_restore(args: argparse.Namespace) -> None:
    """Restore one image file with a denoise / sr / deblur checkpoint."""
    from tinyvision.train.restore import restore_file

    model, config = load_checkpoint(args.checkpoint)
    if config.get("task") not in ("denoise", "sr", "deblur"):
        raise SystemExit(f"restore: {args.checkpoint} was trained for task {config.get('task')!r}; "
                         "give a denoise, sr or deblur checkpoint")
    try:
        out = restore_file(model, config, args.input, args.output, scale=args.scale, tile=args.tile)
    except ValueError as exc:
        raise SystemExit(f"restore: {exc}") from None
    except OSError as exc:  # an output path that cannot be written
        raise SystemExit(f"restore: cannot write {args.output}: {exc}") from None
    print(f"wrote {args.output} ({out.shape[0]} channel{'s' * (out.shape[0] > 1)}, {out.shape[1]} x {out.shape[2]})")


def cmd_predict(args: argparse.Namespace) -> None:
    model, config = load_checkpoint(args.checkpoint)
    get_task(args.task or config["task"]).predict(model, config, args)


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
def parser(task: Any = None) -> argparse.ArgumentParser:
    """The command line; ``task`` (a Task) adds that task's own options to ``train``."""
    from tinyvision.train.classify import DATASETS
    from tinyvision.train.tasks import DEFAULT_LR, TASKS

    p = argparse.ArgumentParser(prog="tinyvision", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model for a task (classify, segment, detect, ...) on a dataset")
    t.add_argument("--task", default="classify", help=f"one of: {', '.join(TASKS)} (default classify)")
    t.add_argument("--model", default=None, help="a name from `tinyvision models` (default: the task's, lenet5 for classify)")
    t.add_argument("--data", default=None, help=f"for classify one of: {', '.join(DATASETS)} (default: the task's, digits for classify)")
    t.add_argument("--epochs", type=positive(int), default=None, help="(default: the task's recipe)")
    t.add_argument("--batch-size", type=positive(int), default=None, help="(default: the task's recipe)")
    t.add_argument("--lr", type=positive(float), default=None,
                   help="learning rate (default: the recipe's; with another --optimizer: "
                   + ", ".join(f"{v:g} for {k}" for k, v in DEFAULT_LR.items()) + ")")
    t.add_argument("--optimizer", choices=tuple(DEFAULT_LR), default=None, help="(default: the task's recipe)")
    t.add_argument("--weight-decay", type=float, default=None, help="(default: the task's recipe)")
    t.add_argument("--schedule", choices=("cosine", "step", "none"), default=None,
                   help="learning-rate schedule over the epochs (default: the task's recipe)")
    t.add_argument("--image-size", type=positive(int), default=None, help="resize images to this (default: the task's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="folder for checkpoints, metrics.csv and curves.png")
    t.add_argument("--resume", default=None, help="a checkpoint to continue from")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    if task is not None:
        task.add_arguments(t)
    t.set_defaults(run=cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on its test set")
    e.add_argument("--checkpoint", default=None, help="the checkpoint to evaluate (required unless --task)")
    e.add_argument("--task", default=None, help="without --checkpoint: a restoration task's classical baselines")
    e.add_argument("--data", default=None, help="override the dataset stored in the checkpoint")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object on the last line")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(run=cmd_eval)

    s = sub.add_parser("restore", help="restore an image with a denoise / sr / deblur checkpoint")
    s.add_argument("input", help="an 8-bit grey or RGB image (PNG, JPEG, ...)")
    s.add_argument("output", help="where to write the restored image (same channels)")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--scale", type=positive(int), default=None, help="sr: must equal the checkpoint's scale")
    s.add_argument("--tile", type=positive(int), default=256, help="process larger images in tiles of this side")
    s.set_defaults(run=cmd_restore)

    r = sub.add_parser("predict", help="run a checkpoint on one image (classify: the top-k classes)")
    r.add_argument("image")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--task", default=None, help="(default: the checkpoint's task)")
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
    z.add_argument("what", choices=("attention", "posembed", "rf", "gradcam", "filters", "summary", "mae"))
    z.add_argument("--model", required=False, default=None)
    z.add_argument("--checkpoint", default=None)
    z.add_argument("--image", default=None)
    z.add_argument("--image-size", type=int, default=None)
    z.add_argument("--out", default="runs/viz")
    z.set_defaults(run=cmd_viz)
    return p


def task_in(argv: Sequence[str]) -> Any:
    """The Task named by ``train --task NAME`` in ``argv`` (classify when none), so that the
    parser can offer that task's own options; None when the name is unknown (cmd_train says so)."""
    from tinyvision.train.tasks import get_task as get

    if not argv or argv[0] != "train":
        return None
    name = "classify"
    for i, word in enumerate(argv):
        if word == "--task" and i + 1 < len(argv):
            name = argv[i + 1]
        elif word.startswith("--task="):
            name = word.partition("=")[2]
    try:
        return get(name)
    except ValueError:
        return None


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser(task_in(argv)).parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
