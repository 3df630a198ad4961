"""Eulerian motion magnification: the pyramid is exact, the temporal filter keeps exactly the
band (checked on sums of sinusoids), and a disk moving by 0.1 px is measured moving by
(1 + alpha) x 0.1 px after magnification, in phase; out-of-band motion is left alone."""
import numpy as np
import pytest
from PIL import Image

from tinyvision.cli import main
from tinyvision.imaging.magnify import (collapse, horizontal_centroid, laplacian_pyramid, magnify, moving_blob_video,
                                        read_video, temporal_bandpass)


def amplitude(signal):
    return np.ptp(signal) / 2


def test_pyramid_collapses_exactly():
    video = np.random.default_rng(0).random((3, 37, 50))
    pyramid = laplacian_pyramid(video, 3)
    assert [p.shape[1:] for p in pyramid] == [(37, 50), (19, 25), (10, 13), (5, 7)]
    np.testing.assert_allclose(collapse(pyramid), video, atol=1e-12)


def test_bandpass_keeps_exactly_the_band():
    fps, t = 30.0, np.arange(90) / 30.0  # 3 s: 1/3 Hz bins, so 1, 2 and 6 Hz are exact bins
    inside = np.sin(2 * np.pi * 1.0 * t) + 0.5 * np.cos(2 * np.pi * 2.0 * t)
    outside = 0.7 * np.sin(2 * np.pi * 6.0 * t) + 3.0  # and the constant (0 Hz)
    np.testing.assert_allclose(temporal_bandpass((inside + outside)[:, None], fps, 0.5, 3.0)[:, 0], inside, atol=1e-12)


@pytest.mark.parametrize("alpha,tolerance", [(10, 0.03), (20, 0.15)])
def test_magnified_motion_matches_the_known_amplitude(alpha, tolerance):
    """The blob moves by 0.1 sin(2 pi t) px; first-order (Taylor) magnification loses accuracy
    as (1 + alpha) x 0.1 px approaches the edge's width, hence the looser bound at alpha 20."""
    video, shift = moving_blob_video(frames=60, size=48, amplitude=0.1, frequency=1.0)
    assert amplitude(horizontal_centroid(video)) == pytest.approx(amplitude(shift), rel=1e-3)  # the ruler works
    moved = horizontal_centroid(magnify(video, alpha, (0.5, 3.0), fps=30))
    assert amplitude(moved) == pytest.approx((1 + alpha) * amplitude(shift), rel=tolerance)
    assert np.corrcoef(moved, shift)[0, 1] > 0.99  # in phase with the true motion


def test_motion_outside_the_band_is_not_amplified():
    video, shift = moving_blob_video(frames=60, size=48, amplitude=0.1, frequency=5.0)
    moved = horizontal_centroid(magnify(video, 20, (0.5, 3.0), fps=30))
    assert amplitude(moved) == pytest.approx(amplitude(shift), rel=0.05)


def test_cli_on_an_array_and_on_a_folder(tmp_path):
    video, shift = moving_blob_video(frames=30, size=32, amplitude=0.1, frequency=2.0)
    np.save(tmp_path / "in.npy", video)
    main(["imaging", "magnify", str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), "--alpha", "10", "--band", "1,3"])
    out = np.load(tmp_path / "out.npy")
    assert out.shape == video.shape
    assert amplitude(horizontal_centroid(out)) == pytest.approx(11 * amplitude(shift), rel=0.05)
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, frame in enumerate(video[:6]):
        Image.fromarray((frame * 255).round().astype(np.uint8)).save(frames / f"{k:03d}.png")
    main(["imaging", "magnify", str(frames), str(tmp_path / "outframes"), "--band", "1,3"])
    assert len(list((tmp_path / "outframes").glob("*.png"))) == 6
    assert read_video(tmp_path / "outframes").shape == (6, 32, 32)


def test_bad_input(tmp_path):
    (tmp_path / "clip.txt").write_text("x")
    with pytest.raises(SystemExit, match=r"imaging magnify: .*clip.txt: give a folder of frames or a .npy array"):
        main(["imaging", "magnify", str(tmp_path / "clip.txt"), str(tmp_path / "o.npy")])
    np.save(tmp_path / "v.npy", np.zeros((10, 16, 16)))
    with pytest.raises(SystemExit, match=r"band must satisfy 0 <= low < high <= fps / 2 = 15 Hz, got \(3.0, 20.0\)"):
        main(["imaging", "magnify", str(tmp_path / "v.npy"), str(tmp_path / "o.npy"), "--band", "3,20"])
    with pytest.raises(SystemExit, match=r"--band must be LOW,HIGH in Hz"):
        main(["imaging", "magnify", str(tmp_path / "v.npy"), str(tmp_path / "o.npy"), "--band", "3"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no image files"):
        main(["imaging", "magnify", str(tmp_path / "empty"), str(tmp_path / "o.npy")])
