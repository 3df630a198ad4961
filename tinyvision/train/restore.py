

# ---------------------------------------------------------------------- classical baselines
def _classical(task: str, config: dict[str, Any]) -> dict[str, tuple[Callable, list]]:
    """name -> (method(degraded (H, W) float64, parameter) -> (H, W), the parameters to try).

    Each method's free parameter is chosen on the validation photo (moon), never on the test
    photo; a method whose package is missing is left out (bm3d is optional)."""
    from skimage import restoration

    methods: dict[str, tuple[Callable, list]] = {}
    if task == "denoise":
        s = config["sigma"] / 255
        methods["wavelet"] = (lambda y, p: restoration.denoise_wavelet(y, sigma=s, rescale_sigma=True), [None])
        methods["nl_means"] = (lambda y, h: restoration.denoise_nl_means(y, h=h * s, sigma=s, patch_size=5,
                                                                         patch_distance=6, fast_mode=True),
                               [0.6, 0.8, 1.0])
        methods["tv"] = (lambda y, w: restoration.denoise_tv_chambolle(y, weight=w), [0.05, 0.08, 0.11, 0.15])
        try:
            import bm3d

            methods["bm3d"] = (lambda y, p: bm3d.bm3d(y, sigma_psd=s), [None])
        except ImportError:
            pass
    elif task == "deblur":
        kernel = imaging.gaussian_kernel(config["kernel_size"], config["blur_sigma"])
        methods["wiener"] = (lambda y, b: restoration.wiener(y, kernel, balance=b), [0.003, 0.01, 0.03, 0.1])
        methods["richardson_lucy"] = (lambda y, n: restoration.richardson_lucy(y, kernel, num_iter=n), [10, 30])
    elif task == "sr":
        from tinyvision.data.functional import resize

        scale = config["scale"]
        methods["bicubic"] = (lambda y, p: imaging.upsample(y[None], scale)[0], [None])
        methods["bilinear"] = (lambda y, p: resize(y[None].astype(np.float32), (y.shape[0] * scale, y.shape[1] * scale))[0],
                               [None])
    return methods


def _score(image: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    a, b = tv.tensor(image[None, None].astype(np.float64)), tv.tensor(clean[None, None].astype(np.float64))
    return {"psnr": float(psnr(a, b).numpy()), "ssim": float(ssim(a, b).numpy())}


def classical_baselines(task: "RestorationTask", config: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The classical methods on the same degraded test photo the network is scored on:
    ``{"input": {psnr, ssim}, "<method>": {psnr, ssim, "param", "seconds"}}``."""
    import time

    _, val, test = task.datasets(config)
    (val_in, val_clean), (test_in, test_clean) = val[0], test[0]
    report = {"input": _score(task.baseline(config)(test_in[None])[0, 0] if config["task"] == "sr"
                              else test_in[0], test_clean[0])}
    for name, (method, grid) in _classical(config["task"], config).items():
        best = max(grid, key=lambda p: _score(np.clip(method(val_in[0].astype(np.float64), p), 0, 1),
                                              val_clean[0])["psnr"]) if len(grid) > 1 else grid[0]
        start = time.perf_counter()
        out = np.clip(method(test_in[0].astype(np.float64), best), 0, 1)
        report[name] = {**_score(out, test_clean[0]), "param": best, "seconds": round(time.perf_counter() - start, 2)}
    return report
