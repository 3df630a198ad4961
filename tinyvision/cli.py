"""The ``tinyvision`` command: train, eval, predict, restore, models, bench, gradcheck, verify, viz.

    tinyvision train --model lenet5 --data digits --epochs 10 --out runs/lenet5
    tinyvision eval --checkpoint runs/lenet5/last.ckpt.npz
    tinyvision predict IMAGE.png --checkpoint runs/lenet5/last.ckpt.npz --topk 3
    tinyvision restore --checkpoint runs/dncnn/best.ckpt.npz NOISY.png OUT.png
    tinyvision imaging magnify FRAMES/ OUT/ --alpha 20 --band 0.5,3
    tinyvision models
    tinyvision viz summary --model resnet18 --out runs/viz

``tinyvision COMMAND --help`` lists each command's options.

A mistake on the command line (a missing folder, a file that is not an image, a checkpoint of
another model, ``--lr inf``...) ends with one line that says what is wrong and what to do, and
exit status 1; ``--debug`` (anywhere on the line) shows the Python traceback instead.
"""
from __future__ import annotations

import argparse
import json
import math
import os
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
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def at_least(kind: type, minimum: float, what: str = "") -> Callable[[str], Any]:
    """An argparse type: a finite ``kind(text)`` >= ``minimum`` (``what`` says why)."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if not (math.isfinite(value) and value >= minimum):
            raise argparse.ArgumentTypeError(f"must be a finite number >= {minimum}{what}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def writable_folder(path: str, option: str = "--out") -> None:
    """Create ``path`` and prove a file can be written there, before any work starts."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        probe = Path(path) / f".tinyvision-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SystemExit(f"{option}: cannot write to {path!r} ({exc.strerror or exc}); choose a folder you can "
                         "write to") from None


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


def checkpoint_config(path: str, option: str) -> dict[str, Any]:
    """The config stored in a checkpoint (checked), as a one-line exit on any problem."""
    from tinyvision.train.checkpoint import read_config

    try:
        return read_config(read_checkpoint(path, option), path)
    except ValueError as exc:
        raise SystemExit(f"{option}: {exc}") from None


def same_run(stored: dict[str, Any], config: dict[str, Any], path: str) -> None:
    """--resume continues a run: the model and the data must be the checkpoint's."""
    for key, option in (("model", "--model"), ("data", "--data"), ("task", "--task")):
        if stored.get(key) != config.get(key):
            raise SystemExit(f"--resume: {path} was trained with {key} {stored.get(key)!r}, this run has "
                             f"{config.get(key)!r}; pass {option} {stored.get(key)} (or drop --resume)")


def get_task(name: str) -> Any:
    from tinyvision.train.tasks import get_task as get

    try:
        return get(name)
    except ValueError as exc:
        raise SystemExit(f"--task: {exc}") from None


MIN_IMAGE_SIZE = 8  # ViT patches of 4 need 2x2; LeNet-5's three 5x5 convs need more (its error says so)

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

    from tinyvision.train.tasks import check_model_name

    task = get_task(args.task)
    config = train_config(args, task)
    try:
        check_model_name(config["model"])
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    if args.sync_batchnorm and not args.distributed:
        raise SystemExit("--sync-batchnorm: only with --distributed (one process has one batch already)")
    if args.resume is not None:  # a missing, damaged or foreign file: say so before any work
        same_run(checkpoint_config(args.resume, "--resume"), config, args.resume)
    if args.out:
        writable_folder(args.out)
    if args.distributed:  # under mpiexec -n R: only rank 0 speaks (docs/distributed.md)
        if join_mpi_job()[0] != 0:
            args.quiet = True
            sys.stdout = open(os.devnull, "w")  # errors still reach stderr
    print(f"training {config['model']} on {config['data']} (task {task.name}): "
          + ", ".join(f"{k} {config[k]}" for k in task.defaults if config.get(k) is not None))
    try:
        result = fit(task, config, out_dir=args.out, resume_from=args.resume, progress=not args.quiet,
                     distributed=args.distributed, sync_batchnorm=args.sync_batchnorm)
    except (ValueError, OSError) as exc:  # a bad recipe value, an unreadable data folder: the message says which
        raise SystemExit(f"tinyvision train: {exc}") from None
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


def join_mpi_job() -> tuple[int, int]:
    """``tinyvision.distributed.init()``, with a missing mpi4py as one line."""
    try:
        import tinyvision.distributed as dist

        return dist.init()
    except ImportError as exc:
        raise SystemExit(f"--distributed: {exc}") from None


def cmd_eval(args: argparse.Namespace) -> None:
    from tinyvision.data import DataLoader
    from tinyvision.train import Trainer

    if args.checkpoint is None:
        return cmd_eval_baselines(args)
    model, config = load_checkpoint(args.checkpoint)
    task = get_task(config["task"])
    trained_on = {k: config.get(k) for k in ("data", "channels", "num_classes")}
    if args.data:
        config["data"] = args.data
    try:
        _, _, test = task.datasets(config)
    except (ValueError, OSError) as exc:
        raise SystemExit(f"eval --data {config['data']}: {exc}") from None
    changed = [k for k in ("channels", "num_classes") if trained_on[k] is not None and config.get(k) != trained_on[k]]
    if changed:
        raise SystemExit(f"eval --data {config['data']}: the checkpoint's {config['model']} was trained on "
                         f"{trained_on['data']} (" + ", ".join(f"{k} {trained_on[k]}" for k in changed)
                         + f"), but {config['data']} has " + ", ".join(f"{k} {config[k]}" for k in changed))
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


def cmd_imaging_magnify(args: argparse.Namespace) -> None:
    """Eulerian motion magnification of a folder of frames or a .npy video."""
    from tinyvision.imaging.magnify import magnify, read_video, write_video

    try:
        low, high = (float(v) for v in args.band.split(","))
    except ValueError:
        raise SystemExit(f"imaging magnify: --band must be LOW,HIGH in Hz (e.g. 0.5,3), got {args.band!r}") from None
    try:
        video = read_video(args.input)
        out = magnify(video, args.alpha, (low, high), fps=args.fps, levels=args.levels,
                      attenuate_levels=args.attenuate_levels)
    except ValueError as exc:
        raise SystemExit(f"imaging magnify: {exc}") from None
    write_video(args.output, out)
    print(f"wrote {args.output}: {out.shape[0]} frames of {out.shape[1]} x {out.shape[2]}, motion in "
          f"{low:g}-{high:g} Hz amplified by {1 + args.alpha:g}")


def cmd_predict(args: argparse.Namespace) -> None:
    model, config = load_checkpoint(args.checkpoint)
    get_task(args.task or config["task"]).predict(model, config, args)


def cmd_models(args: argparse.Namespace) -> None:
    """The registry with parameter counts, from shapes: the models are built without drawing
    initial weights (nn.init.skip_init), so VGG's 138 M parameters cost no time."""
    from tinyvision.models import create_model, list_models
    from tinyvision.nn.init import skip_init

    from tinyvision.checks import matches

    names = [n for n in list_models() if matches(n, args.pattern)]
    if not names:
        raise SystemExit(f"no model matches {args.pattern!r}; `tinyvision models` lists all {len(list_models())}")

    def count(name: str, **kwargs: Any) -> int:
        with skip_init():
            return sum(p.numel() for p in create_model(name, **kwargs).parameters())

    for name in names:
        try:
            total = f"{count(name):>13,}"
        except TypeError as exc:  # a constructor with a required argument: say which, go on
            print(f"{name:<26} {'?':>13} parameters  (needs arguments to build: {exc})")
            continue
        note = ""
        if name.startswith("googlenet"):  # the default keeps torchvision's two auxiliary heads
            note = f"  (with the 2 auxiliary heads; {count(name, aux_logits=False):,} without)"
        print(f"{name:<26} {total} parameters{note}")


def cmd_bench(args: argparse.Namespace) -> None:
    """``python -m benchmarks.SUITE`` for each suite, in a child process that finds the
    checkout's benchmarks/ from any folder (PYTHONPATH), so that a suite may re-execute itself
    (the kernel suite does, to set the allocator's variables) with its own arguments."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks").is_dir():
        raise SystemExit("tinyvision bench runs the benchmarks/ folder of a source checkout; "
                         f"none found next to {root / 'tinyvision'}")
    suites = sorted(p.stem for p in (root / "benchmarks").iterdir()
                    if (p.suffix == ".py" and p.stem not in ("__init__", "runner")) or (p / "__main__.py").exists())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])]))
    for suite in args.suite:
        if suite not in suites:
            raise SystemExit(f"bench: unknown suite {suite!r}; choose from: {', '.join(suites)}")
        code = subprocess.run([sys.executable, "-m", f"benchmarks.{suite}", *args.args.split()], env=env).returncode
        if code:
            raise SystemExit(code)


def cmd_gradcheck(args: argparse.Namespace) -> None:
    from tinyvision.checks import run_gradchecks

    try:
        failures = run_gradchecks(pattern=args.pattern)
    except ValueError as exc:
        raise SystemExit(f"gradcheck --pattern: {exc}") from None
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
    t.add_argument("--weight-decay", type=at_least(float, 0.0), default=None, help="(default: the task's recipe)")
    t.add_argument("--schedule", choices=("cosine", "step", "none"), default=None,
                   help="learning-rate schedule over the epochs (default: the task's recipe)")
    t.add_argument("--image-size", type=at_least(int, MIN_IMAGE_SIZE, " (no model here fits a smaller image)"),
                   default=None, help="resize images to this (default: the task's)")
    t.add_argument("--seed", type=at_least(int, 0, " (NumPy's generators take seeds 0 .. 2**32 - 1)"), default=0)
    t.add_argument("--out", default=None, help="folder for checkpoints, metrics.csv and curves.png")
    t.add_argument("--resume", default=None, help="a checkpoint to continue from")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel under `mpiexec -n R tinyvision train ...`: --batch-size is the global batch")
    t.add_argument("--sync-batchnorm", action="store_true",
                   help="with --distributed: BatchNorm statistics over all ranks (default: each rank's own)")
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

    im = sub.add_parser("imaging", help="computational imaging tools (magnify: Eulerian motion magnification)")
    im_sub = im.add_subparsers(dest="tool", required=True)
    mg = im_sub.add_parser("magnify", help="amplify small motions in a temporal band (Wu et al. 2012)")
    mg.add_argument("input", help="a folder of frames, or a .npy array (T, H, W[, C])")
    mg.add_argument("output", help="a .npy file, or a folder for PNG frames")
    mg.add_argument("--alpha", type=float, default=20.0, help="amplification: motion x (1 + alpha) (default 20)")
    mg.add_argument("--band", default="0.5,3", help="temporal band LOW,HIGH in Hz (default 0.5,3)")
    mg.add_argument("--fps", type=positive(float), default=30.0, help="frames per second (default 30)")
    mg.add_argument("--levels", type=int, default=4, help="Laplacian pyramid levels (default 4)")
    mg.add_argument("--attenuate-levels", type=int, default=0, help="finest levels left unamplified (default 0)")
    mg.set_defaults(run=cmd_imaging_magnify)

    r = sub.add_parser("predict", help="run a checkpoint on one image (classify: the top-k classes)")
    r.add_argument("image")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--task", default=None, help="(default: the checkpoint's task)")
    r.add_argument("--topk", type=positive(int), default=5)
    r.add_argument("--point", default=None, help="prompt: a click x,y in pixels (the mask of what is there)")
    r.set_defaults(run=cmd_predict)

    m = sub.add_parser("models", help="list the registry with parameter counts")
    m.add_argument("pattern", nargs="?", default="*", help="a part of the name ('resnet') or a shell pattern ('vit_*_224')")
    m.set_defaults(run=cmd_models)

    b = sub.add_parser("bench", help="run the benchmarks (from a source checkout)")
    b.add_argument("suite", nargs="*", default=["kernels"], help="benchmarks.<suite> modules (default: kernels)")
    b.add_argument("--args", default="", help="options for each suite, e.g. --args='--device cuda' (--args=--help lists them)")
    b.set_defaults(run=cmd_bench)

    g = sub.add_parser("gradcheck", help="gradient-check every op and layer, print a table")
    g.add_argument("--pattern", default="*", help="only the checks whose name contains this ('conv'), or matches it as a shell pattern")
    g.set_defaults(run=cmd_gradcheck)

    v = sub.add_parser("verify", help="compare a zoo model with torchvision/timm layer by layer (needs them)")
    v.add_argument("model")
    v.add_argument("--image-size", type=at_least(int, MIN_IMAGE_SIZE), default=None)
    v.set_defaults(run=cmd_verify)

    z = sub.add_parser("viz", help="draw attention, position embeddings, receptive fields, Grad-CAM, filters")
    z.add_argument("what", choices=("attention", "posembed", "rf", "gradcam", "filters", "summary",
                                      "segments", "anchors", "mae", "detr"))
    z.add_argument("--model", required=False, default=None)
    z.add_argument("--checkpoint", default=None)
    z.add_argument("--image", default=None)
    z.add_argument("--image-size", type=at_least(int, MIN_IMAGE_SIZE), default=None)
    z.add_argument("--layer", default=None, help="gradcam: the layer to explain (default: the last with a map of at least 4x4)")
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
    """The entry point. A user's mistake exits with one line (SystemExit); any other error is
    also shown as one line naming the command, unless ``--debug`` asks for the traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    args = parser(task_in(argv)).parse_args(argv)
    if debug:
        args.run(args)
        return
    try:
        args.run(args)
    except KeyboardInterrupt:
        raise SystemExit("interrupted") from None
    except Exception as exc:  # noqa: BLE001  (one line for the user; --debug shows the rest)
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise SystemExit(f"tinyvision {args.command}: {message} ({type(exc).__name__}; "
                         "--debug shows the traceback)") from None


if __name__ == "__main__":
    main()
