"""setup.cfg lists every package by hand (kernels/ installs as tinyvision.kernels); check
that no folder is forgotten and that no top-level ``kernels`` module is ours."""
from __future__ import annotations

import configparser
import importlib
import importlib.metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _config() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _listed(option: str) -> list[str]:
    return [line.strip() for line in _config()["options"][option].splitlines() if line.strip()]


def _package_dir() -> dict[str, str]:
    """{'tinyvision': 'tinyvision', 'tinyvision.kernels': 'kernels'} from `package_dir =`."""
    pairs = (line.split("=") for line in _listed("package_dir"))
    return {name.strip(): folder.strip() for name, folder in pairs}


def test_package_dir_maps_kernels_under_tinyvision():
    assert _package_dir() == {"tinyvision": "tinyvision", "tinyvision.kernels": "kernels"}


def test_every_folder_with_init_is_listed():
    """Each folder with an __init__.py under tinyvision/ and kernels/, named as installed."""
    found = set()
    for name, folder in _package_dir().items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    missing = sorted(found - set(_listed("packages")))
    assert not missing, f"add these to `packages =` in setup.cfg: {missing}"


def test_listed_packages_exist():
    folders = _package_dir()
    for pkg in _listed("packages"):
        root = max((n for n in folders if pkg == n or pkg.startswith(n + ".")), key=len)
        path = ROOT / folders[root] / Path(*pkg[len(root) + 1:].split(".") if pkg != root else ())
        assert (path / "__init__.py").is_file(), f"{pkg} is listed but {path}/__init__.py is missing"


def test_no_top_level_kernels_package_is_ours():
    """`packages =` never names a bare `kernels`, the installed distribution's only top-level
    name is `tinyvision`, and `import tinyvision.kernels` finds our kernels/ folder."""
    assert not any(p == "kernels" or p.startswith("kernels.") for p in _listed("packages"))
    top_level = importlib.metadata.distribution("tinyvision").read_text("top_level.txt")
    assert top_level.split() == ["tinyvision"]
    kernels = importlib.import_module("tinyvision.kernels")
    assert Path(kernels.__file__).resolve().parent == ROOT / "kernels"
    assert importlib.import_module("tinyvision.kernels.compat").array_module is not None
