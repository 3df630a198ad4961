"""The `tinyvision` command, driven in-process."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyvision.cli import main, parser


def test_train_resume_eval_predict_round_trip(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    # big batches and a constant rate keep it fast, and make "--epochs 2 --resume" one more epoch
    fast = ["--model", "lenet5_modern", "--batch-size", "128", "--lr", "0.01", "--schedule", "none",
            "--out", str(out), "--quiet"]
    main(["train", *fast, "--epochs", "1"])
    for name in ("last.ckpt.npz", "metrics.csv", "curves.png"):
        assert (out / name).exists(), name
    capsys.readouterr()
    main(["train", *fast, "--epochs", "2",
          "--resume", str(out / "last.ckpt.npz")])  # one more epoch
    printed = capsys.readouterr().out
    assert "after 2 epochs" in printed
    acc = float(printed.split("test accuracy ")[1].split()[0])
    assert acc > 0.5
    assert (out / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs

    main(["eval", "--checkpoint", str(out / "last.ckpt.npz"), "--quiet"])
    assert f"acc {acc:.4f}" in capsys.readouterr().out  # the same test set gives the same accuracy

    from tinyvision.data import digits

    image, label = digits(train=False, size=32)[0]
    import matplotlib.image

    png = tmp_path / "digit.png"
    matplotlib.image.imsave(png, np.asarray(image)[0], cmap="gray", vmin=0, vmax=1)
    main(["predict", str(png), "--checkpoint", str(out / "last.ckpt.npz"), "--topk", "3"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("preprocessing: ") and "resized to 32x32" in lines[0]
    assert len(lines) == 4 and all(line.split()[0] in "0123456789" for line in lines[1:])  # class names


@pytest.mark.parametrize("command", [[], *[[c] for c in parser()._subparsers._group_actions[0].choices]])
def test_help_everywhere(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: tinyvision{' ' + command[0] if command else ''}")
    assert "--help" in out


def test_models_lists_parameter_counts(capsys) -> None:
    main(["models", "resnet18"])
    assert "11,689,512" in capsys.readouterr().out


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--optimizer", "rmsprop"], ["argument --optimizer: invalid choice: 'rmsprop'", "sgd", "adamw"]),
    (["train", "--epochs", "0"], ["argument --epochs: must be a finite number > 0, got 0"]),
    (["train", "--lr", "fast"], ["argument --lr: expected a positive float, got 'fast'"]),
    (["train", "--batch-size", "-4"], ["argument --batch-size: must be a finite number > 0, got -4"]),
    (["predict", "x.png"], ["the following arguments are required: --checkpoint"]),
    (["nonsense"], ["argument COMMAND: invalid choice: 'nonsense'", "train", "gradcheck"]),
])
def test_bad_arguments_name_the_option_and_what_is_valid(argv: list[str], fragments: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert all(f in err for f in fragments), err


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "imagenet"], "unknown --data 'imagenet'; choose one of: digits, shapes, mnist:PATH"),
    (["train", "--data", "cifar10"], "--data cifar10 needs a local folder: --data cifar10:PATH"),
    (["train", "--model", "alexnet", "--data", "digits"], "model alexnet takes 3-channel images; the data has 1"),
    (["train", "--model", "lenet6"], "unknown model 'lenet6'; `tinyvision models` lists the"),
    (["train", "--resume", "missing.ckpt.npz"], "--resume: load: no such file 'missing.ckpt.npz'"),
    (["eval", "--checkpoint", "missing.ckpt.npz"], "--checkpoint: load: no such file 'missing.ckpt.npz'"),
])
def test_bad_values_exit_with_a_message(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert message in str(exit_info.value.code)


def test_a_corrupt_checkpoint_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ckpt.npz"
    bad.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit, match="--checkpoint: load: .*bad.ckpt.npz.*corrupt or truncated"):
        main(["eval", "--checkpoint", str(bad)])


def test_gradcheck_command_passes_every_check(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["gradcheck", "--pattern", "conv*"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0, out
    assert "0 failed" in out


def test_viz_summary_and_rf_print_tables(capsys) -> None:
    main(["viz", "summary", "--model", "lenet5"])
    assert "total params 60,000" in capsys.readouterr().out
    main(["viz", "rf", "--model", "lenet5"])
    assert "c5" in capsys.readouterr().out
