"""Every user mistake on the command line ends with one line and a non-zero exit, never a
traceback; ``--debug`` brings the traceback back. Driven through the real entry point
(``tinyvision.cli.main``, in-process to stay fast; one case runs the installed module)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinyvision as tv
from tinyvision.cli import main
from tinyvision.models import create_model

CONFIG = {"task": "classify", "model": "lenet5", "data": "digits", "seed": 0, "epochs": 1, "batch_size": 16,
          "optimizer": "adam", "lr": 0.002, "weight_decay": 0.0, "schedule": "cosine", "image_size": 32,
          "augment": False, "channels": 1, "num_classes": 10, "kwargs": {"num_classes": 10, "in_channels": 1}}


def write_checkpoint(path: Path, config: dict | str = CONFIG, edit=None) -> Path:
    """A checkpoint as `tinyvision train` writes it (weights under model.*, config as JSON),
    without training: the errors under test are all about the file, not the weights' values."""
    tv.manual_seed(0)
    weights = {f"model.{k}": v.numpy() for k, v in create_model("lenet5", num_classes=10, in_channels=1)
               .state_dict().items()}
    if edit:
        edit(weights)
    tv.save({"model": weights, "config": config if isinstance(config, str) else json.dumps(config)}, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from PIL import Image

    d = tmp_path_factory.mktemp("cli_errors")
    (d / "empty").mkdir()
    (d / "notimage.png").write_text("not an image")
    Image.fromarray((np.random.default_rng(0).random((28, 28)) * 255).astype(np.uint8)).save(d / "digit.png")
    whole = (d / "digit.png").read_bytes()
    (d / "truncated.png").write_bytes(whole[: len(whole) // 2])
    Image.fromarray(np.zeros((300, 300), np.uint8)).save(d / "big.png")

    def nan(w):
        w["model.c1.weight"] = w["model.c1.weight"] * np.nan

    def narrow(w):
        w["model.c1.weight"] = w["model.c1.weight"][..., :1]

    return {
        "dir": d,
        "ckpt": write_checkpoint(d / "good.ckpt.npz"),
        "absurd": write_checkpoint(d / "absurd.ckpt.npz", {**CONFIG, "kwargs": {"num_classes": 10 ** 11, "in_channels": 1}}),
        "badkw": write_checkpoint(d / "badkw.ckpt.npz", {**CONFIG, "kwargs": {**CONFIG["kwargs"], "bogus": 1}}),
        "badjson": write_checkpoint(d / "badjson.ckpt.npz", "{not json"),
        "unknown": write_checkpoint(d / "unknown.ckpt.npz", {**CONFIG, "model": "nosuchnet"}),
        "nan": write_checkpoint(d / "nan.ckpt.npz", edit=nan),
        "shape": write_checkpoint(d / "shape.ckpt.npz", edit=narrow),
    }


def one_line_exit(argv: list[str]) -> str:
    """Run ``tinyvision ARGV``; it must exit non-zero with a one-line message; return it."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    message = info.value.code
    assert isinstance(message, str) and message, f"exit code {message!r}, expected a message"
    assert "\n" not in message and "Traceback" not in message, message
    return message


# (label, argv built from the files, words the line must contain)
CASES = [
    ("missing data folder", lambda f: ["train", "--data", f"folder:{f['dir']}/nope", "--epochs", "1"], ["is not a folder"]),
    ("empty data folder", lambda f: ["train", "--data", f"folder:{f['dir']}/empty", "--epochs", "1"], ["found no", "empty"]),
    ("unwritable --out", lambda f: ["train", "--epochs", "1", "--out", f"{f['dir']}/notimage.png/run"], ["--out", "cannot write"]),
    ("predict a non-image", lambda f: ["predict", str(f["dir"] / "notimage.png"), "--checkpoint", str(f["ckpt"])], ["cannot decode"]),
    ("predict a truncated image", lambda f: ["predict", str(f["dir"] / "truncated.png"), "--checkpoint", str(f["ckpt"])],
     ["truncated"]),
    ("--resume of another model", lambda f: ["train", "--model", "resnet18", "--resume", str(f["ckpt"])],
     ["--resume", "lenet5", "resnet18", "--model lenet5"]),
    ("--resume of another dataset", lambda f: ["train", "--data", "shapes", "--resume", str(f["ckpt"])],
     ["--resume", "digits", "--data digits"]),
    ("viz with a checkpoint of another model", lambda f: ["viz", "gradcam", "--model", "resnet18", "--checkpoint",
                                                          str(f["ckpt"])], ["resnet18", "lenet5"]),
    ("absurd num_classes", lambda f: ["eval", "--checkpoint", str(f["absurd"])], ["refusing", "100000000000"]),
    ("unknown constructor keyword", lambda f: ["eval", "--checkpoint", str(f["badkw"])], ["bogus", "do not fit"]),
    ("config that is not JSON", lambda f: ["predict", str(f["dir"] / "digit.png"), "--checkpoint", str(f["badjson"])],
     ["not valid JSON"]),
    ("unknown model in a checkpoint", lambda f: ["eval", "--checkpoint", str(f["unknown"])], ["unknown model 'nosuchnet'"]),
    ("NaN weights, eval", lambda f: ["eval", "--checkpoint", str(f["nan"])], ["c1.weight", "NaN"]),
    ("NaN weights, predict", lambda f: ["predict", str(f["dir"] / "digit.png"), "--checkpoint", str(f["nan"])], ["NaN"]),
    ("NaN weights, viz", lambda f: ["viz", "filters", "--checkpoint", str(f["nan"])], ["NaN"]),
    ("wrong-shape weights", lambda f: ["eval", "--checkpoint", str(f["shape"])], ["c1.weight", "do not fit"]),
    ("viz attention on a CNN", lambda f: ["viz", "attention", "--model", "lenet5"], ["Vision Transformer", "LeNet5"]),
    ("viz posembed on a CNN", lambda f: ["viz", "posembed", "--model", "lenet5_modern"], ["Vision Transformer", "LeNet"]),
    ("unknown model", lambda f: ["train", "--model", "nosuchnet"], ["unknown model 'nosuchnet'", "`tinyvision models`"]),
    ("unknown model, viz", lambda f: ["viz", "summary", "--model", "nosuchnet"], ["unknown model 'nosuchnet'"]),
    ("models: no match", lambda f: ["models", "nosuchnet"], ["no model matches 'nosuchnet'"]),
    ("gradcheck: no match", lambda f: ["gradcheck", "--pattern", "nosuchop"], ["no gradient check matches"]),
    ("bench: unknown suite", lambda f: ["bench", "nosuch"], ["unknown suite", "kernels"]),
]


@pytest.mark.parametrize("label, argv, words", CASES, ids=[c[0] for c in CASES])
def test_one_line_for_each_mistake(label, argv, words, files) -> None:
    message = one_line_exit(argv(files))
    for word in words:
        assert word in message, f"{label}: {word!r} missing from {message!r}"


def test_decompression_bomb_is_one_line(files, monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # big.png (90,000 pixels) is then a "bomb"
    assert "decompression bomb" in one_line_exit(["predict", str(files["dir"] / "big.png"), "--checkpoint",
                                                  str(files["ckpt"])])


@pytest.mark.parametrize("argv, words", [
    (["train", "--lr", "inf"], ["--lr", "finite", "inf"]),
    (["train", "--weight-decay", "nan"], ["--weight-decay", "nan"]),
    (["train", "--seed", "-1"], ["--seed", "-1"]),
    (["train", "--image-size", "1"], ["--image-size", ">= 8"]),
])
def test_bad_numbers_are_refused_by_the_parser(argv, words, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words), err


def test_debug_shows_the_traceback(files) -> None:
    argv = ["predict", str(files["dir"] / "notimage.png"), "--checkpoint", str(files["ckpt"])]
    with pytest.raises(ValueError, match="cannot decode"):
        main(["--debug", *argv])  # the raw error (and so its traceback), not a one-line exit
    assert "--debug shows the traceback" in one_line_exit(argv)


def test_models_pattern_is_a_substring_and_googlenet_says_aux(capsys) -> None:
    main(["models", "googlenet"])
    out = capsys.readouterr().out
    assert "13,004,888" in out and "auxiliary" in out and "6,624,904 without" in out


def test_gradcheck_pattern_matches_substrings(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["gradcheck", "--pattern", "transpose"])  # a part of "conv_transpose2d"
    out = capsys.readouterr().out
    assert info.value.code == 0 and "conv_transpose2d" in out and "0 passed" not in out


@pytest.mark.slow  # ~20 s: both dtypes, forward and backward, every layer compared
def test_verify_lenet5_runs_on_a_clean_clone(capsys) -> None:
    """LeNet-5's PyTorch twin is in the repository: torch alone suffices."""
    main(["verify", "lenet5"])
    out = capsys.readouterr().out
    assert "-- float64: module outputs" in out and "c5" in out


def test_verify_without_torchvision_says_how_to_install() -> None:
    pytest.importorskip("torch")
    try:
        import torchvision  # noqa: F401
        pytest.skip("torchvision is installed here")
    except ModuleNotFoundError:
        pass
    assert "pip install torchvision" in one_line_exit(["verify", "resnet18"])


def test_bench_runs_from_any_folder(tmp_path) -> None:
    """The installed command, from a folder that is not the checkout."""
    done = subprocess.run([sys.executable, "-m", "tinyvision.cli", "bench", "kernels", "--args=--help"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: python -m benchmarks.kernels" in done.stdout, done.stderr


def test_load_checkpoint_is_public(files) -> None:
    model, config = tv.load_checkpoint(files["ckpt"])
    assert config["model"] == "lenet5" and not model.training
