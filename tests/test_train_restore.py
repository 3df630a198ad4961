"""The restoration tasks end to end on tiny settings: the degraded test photo reproduces the
literature's input figures, training writes a checkpoint that `tinyvision restore` uses, tiled
restoration equals one pass, and bad input gets one-line errors."""
import json

import numpy as np
import pytest
from PIL import Image

import tinyvision as tv
from tinyvision import imaging
from tinyvision.cli import main
from tinyvision.models import create_model
from tinyvision.train.restore import DeblurTask, DenoiseTask, SuperResolutionTask, restore
from tinyvision.train.tasks import fit, get_task


def config_for(task, **overrides):
    config = {"task": task.name, "model": task.default_model, "data": "photos", "seed": 0, **task.defaults}
    config.update(overrides)
    return config


@pytest.mark.parametrize("task,want", [(DenoiseTask, 20.16), (DeblurTask, 25.74), (SuperResolutionTask, 30.06)])
def test_test_photo_is_degraded_as_the_literature_quotes(task, want):
    """Camera with sigma-25 noise (seed 0): 20.16 dB; blurred (Gaussian 2 in 15 x 15, noise
    0.01): 25.74; bicubic x2 after bicubic-antialiased downsampling: 30.06 (the issue quotes
    20.16, 25.75 and 30.10). Also the patches' shapes (SR: the input is the small image)."""
    t = get_task({DenoiseTask: "denoise", DeblurTask: "deblur", SuperResolutionTask: "sr"}[task])
    config = config_for(t, patches=4, val_crop=32)
    train, val, test = t.datasets(config)
    degraded, clean = test[0]
    assert clean.shape == (1, 512, 512) and len(val) == 1 and val[0][1].shape == (1, 32, 32)
    base = t.baseline(config)(degraded[None])
    from tinyvision.metrics import psnr
    got = float(psnr(tv.tensor(np.asarray(base, np.float64)), tv.tensor(clean[None].astype(np.float64))).numpy())
    assert got == pytest.approx(want, abs=0.01)
    x, y = train[0]
    assert y.shape == (1, config["image_size"], config["image_size"])
    assert x.shape == ((1, 24, 24) if task is SuperResolutionTask else y.shape)


@pytest.mark.slow
def test_train_denoise_then_restore_and_eval(tmp_path):
    task = get_task("denoise")
    config = config_for(task, epochs=2, patches=8, batch_size=4, features=4, val_crop=48, image_size=24)
    result = fit(task, config, out_dir=str(tmp_path), progress=False)
    row = result["history"][-1]
    assert {"val_psnr", "val_ssim", "val_input_psnr", "train_loss"} <= set(row)
    assert result["test"]["input_psnr"] == pytest.approx(20.16, abs=0.01)
    assert task.train_set.epoch == 3  # advanced by every validation pass (2 epochs, then the test): fresh patches
    noisy = imaging.gaussian_noise(imaging.load_photo("moon")[:, :80, :90], 25, seed=0)
    Image.fromarray(imaging.to_uint8(noisy)).save(tmp_path / "noisy.png")
    main(["restore", "--checkpoint", str(tmp_path / "best.ckpt.npz"), str(tmp_path / "noisy.png"),
          str(tmp_path / "out.png"), "--tile", "32"])
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "L" and out.size == (90, 80)


def test_tiled_restoration_equals_one_pass():
    tv.manual_seed(0)
    model = create_model("dncnn", features=4, depth=5).eval()
    image = np.random.default_rng(0).random((1, 70, 83)).astype(np.float32)
    whole = restore(model, image, tile=512)
    np.testing.assert_allclose(restore(model, image, tile=32), whole, atol=1e-6)
    sr = create_model("espcn", scale=3).eval()
    np.testing.assert_allclose(restore(sr, image, scale=3, tile=32), restore(sr, image, scale=3, tile=512), atol=1e-6)


def write_checkpoint(path, task_name, **kwargs):
    """A checkpoint as `tinyvision train` writes it (model + config), untrained: the CLI tests
    need its format, not its quality."""
    task = get_task(task_name)
    config = config_for(task)
    config["kwargs"] = {"in_channels": 1, **kwargs}
    tv.manual_seed(0)
    model = create_model(config["model"], **config["kwargs"])
    tv.save({"model": model.state_dict(), "config": json.dumps(config)}, path)
    return path


@pytest.fixture(scope="module")
def sr_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("sr")
    return write_checkpoint(out / "best.ckpt.npz", "sr", scale=2, residual=True), out


def test_denoise_restore_cli_grey_and_rgb(tmp_path):
    ckpt = write_checkpoint(tmp_path / "dn.ckpt.npz", "denoise", features=4)
    noisy = imaging.gaussian_noise(imaging.load_photo("moon")[:, :40, :50], 25, seed=0)
    Image.fromarray(imaging.to_uint8(noisy)).save(tmp_path / "noisy.png")
    main(["restore", "--checkpoint", str(ckpt), str(tmp_path / "noisy.png"), str(tmp_path / "out.png")])
    out = Image.open(tmp_path / "out.png")
    assert out.mode == "L" and out.size == (50, 40)
    Image.fromarray(imaging.to_uint8(np.concatenate([noisy] * 3))).save(tmp_path / "rgb.png")
    main(["restore", "--checkpoint", str(ckpt), str(tmp_path / "rgb.png"), str(tmp_path / "o.png")])
    assert Image.open(tmp_path / "o.png").mode == "RGB"


def test_sr_restore_doubles_the_size_and_refuses_other_scales(sr_checkpoint):
    ckpt, out = sr_checkpoint
    Image.fromarray((np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)).save(out / "small.png")
    main(["restore", "--checkpoint", str(ckpt), str(out / "small.png"), str(out / "big.png")])
    assert Image.open(out / "big.png").size == (60, 40)
    with pytest.raises(SystemExit, match=r"restore: --scale 3: this checkpoint was trained for x2"):
        main(["restore", "--checkpoint", str(ckpt), str(out / "small.png"), str(out / "x.png"), "--scale", "3"])


def test_restore_errors(sr_checkpoint, tmp_path):
    ckpt, _ = sr_checkpoint
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(SystemExit, match=r"restore: .*notes.png: not an image Pillow can read"):
        main(["restore", "--checkpoint", str(ckpt), str(tmp_path / "notes.png"), str(tmp_path / "o.png")])
    Image.fromarray(np.zeros((5, 40), np.uint8)).save(tmp_path / "thin.png")
    with pytest.raises(SystemExit, match=r"the image is 5 x 40, smaller than the model's receptive field \(9 px\)"):
        main(["restore", "--checkpoint", str(ckpt), str(tmp_path / "thin.png"), str(tmp_path / "o.png")])
    with pytest.raises(SystemExit, match="no such file"):
        main(["restore", "--checkpoint", str(ckpt), str(tmp_path / "missing.png"), str(tmp_path / "o.png")])
    with pytest.raises(SystemExit, match=r"restore: .* was trained for task 'classify'; give a denoise, sr or deblur"):
        config = {"task": "classify", "model": "lenet5", "data": "digits", "seed": 0, "kwargs": {}}
        tv.save({"model": create_model("lenet5").state_dict(), "config": json.dumps(config)}, tmp_path / "c.npz")
        main(["restore", "--checkpoint", str(tmp_path / "c.npz"), str(tmp_path / "thin.png"), str(tmp_path / "o.png")])


def test_module_losses():
    from tinyvision.imaging.losses import charbonnier_loss
    from tinyvision.metrics import ssim
    from tinyvision.train.restore import RestorationModule

    x = tv.tensor(np.random.default_rng(0).random((2, 1, 12, 12)).astype(np.float32))
    y = tv.tensor(np.random.default_rng(1).random((2, 1, 12, 12)).astype(np.float32))
    identity = tv.nn.Identity()
    for name, want in (("ssim", 1 - ssim(x, y)), ("charbonnier", charbonnier_loss(x, y))):
        got = RestorationModule(identity, None, None, loss=name).training_step((x, y), 0)["loss"]
        assert got.item() == pytest.approx(want.item())
    with pytest.raises(ValueError, match=r"loss must be one of \('l2', 'l1', 'charbonnier', 'ssim'\), got 'l3'"):
        RestorationModule(identity, None, None, loss="l3")


def test_bad_task_options():
    with pytest.raises(SystemExit, match=r"--sigma must be >= 0 \(the noise level on the 0-255 scale\), got -5"):
        main(["train", "--task", "denoise", "--sigma", "-5", "--epochs", "1"])
    with pytest.raises(SystemExit, match=r"--image-size 25 must be a multiple of --scale 2"):
        main(["train", "--task", "sr", "--image-size", "25", "--epochs", "1"])
    with pytest.raises(SystemExit, match="task 'colorize' is declared but not built yet"):
        main(["train", "--task", "colorize"])
    with pytest.raises(SystemExit, match="unknown --data 'digits' for task denoise"):
        main(["train", "--task", "denoise", "--data", "digits", "--epochs", "1"])


@pytest.mark.slow
def test_eval_baselines_json(capsys):
    main(["eval", "--task", "sr", "--json"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["input"]["psnr"] == pytest.approx(30.06, abs=0.01)
    assert report["bicubic"]["psnr"] == pytest.approx(30.07, abs=0.05)  # clipped to [0, 1]
    assert report["bilinear"]["psnr"] < report["bicubic"]["psnr"]
    with pytest.raises(SystemExit, match="eval: give --checkpoint CKPT, or --task T"):
        main(["eval"])
    with pytest.raises(SystemExit, match="classical baselines exist for denoise, sr and deblur only"):
        main(["eval", "--task", "classify"])


def test_deblur_pipeline_steps():
    """The deblur task's pieces together (a full run is too slow here): a patch pair from the
    training set, a training step of a tiny U-Net, and a validation pass scoring PSNR/SSIM."""
    task = get_task("deblur")
    config = config_for(task, patches=2, val_crop=32, image_size=16)
    train, val, _ = task.datasets(config)
    module = task.module(create_model("deblur_unet", base=2, levels=1), config)
    x, y = (tv.tensor(np.stack(v)) for v in zip(train[0], train[1]))
    loss = module.training_step((x, y), 0)["loss"]
    loss.backward()
    assert loss.item() > 0 and all(p.grad is not None for p in module.parameters())
    module.on_validation_epoch_start()
    with tv.no_grad():
        module.validation_step(tuple(tv.tensor(v[None]) for v in val[0]), 0)
    scores = module.on_validation_epoch_end()
    assert set(scores) == {"psnr", "ssim", "input_psnr", "input_ssim"} and train.epoch == 1
