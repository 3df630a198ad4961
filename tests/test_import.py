"""`import tinyvision as tv` as PyTorch users expect: subpackages reachable as attributes
(loaded on first use), and `from tinyvision.functional import *` giving ops, never modules."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import tinyvision as tv
import tinyvision.functional as functional_pkg
import tinyvision.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent


def _subpackage_folders() -> list[str]:
    """Every folder tinyvision/<name>/ with an __init__.py, plus kernels (installed as
    tinyvision.kernels from the top-level kernels/ folder)."""
    return sorted([p.parent.name for p in (ROOT / "tinyvision").glob("*/__init__.py")] + ["kernels"])


def test_bare_import_leaves_heavy_subpackages_unloaded_until_touched():
    """In a fresh interpreter: nothing but the core loads with `import tinyvision`, and each
    attribute access imports exactly the subpackage it names."""
    code = (
        "import sys, tinyvision as tv\n"
        "lazy = ['nn', 'optim', 'models', 'data', 'train', 'viz']\n"
        "early = [n for n in lazy if 'tinyvision.' + n in sys.modules]\n"
        "assert not early, f'imported by a bare import: {early}'\n"
        "for n in lazy:\n"
        "    assert getattr(tv, n) is sys.modules['tinyvision.' + n], n\n"
        "assert tv.nn.Module and tv.optim.SGD and tv.models.create_model and tv.data.DataLoader\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", _subpackage_folders())
def test_every_subpackage_is_an_attribute(name):
    assert isinstance(getattr(tv, name), types.ModuleType)
    assert name in dir(tv)


def test_lazy_table_lists_every_subpackage_folder():
    """A new subpackage must be added to `_SUBPACKAGES` (autograd and functional load eagerly)."""
    missing = set(_subpackage_folders()) - set(tv._SUBPACKAGES) - {"autograd", "functional"}
    assert not missing, f"add {sorted(missing)} to _SUBPACKAGES in tinyvision/__init__.py"


def test_missing_subpackage_is_an_attribute_error_naming_it(monkeypatch):
    monkeypatch.setattr(tv, "_SUBPACKAGES", (*tv._SUBPACKAGES, "no_such_subpackage"))
    with pytest.raises(AttributeError, match=r"tinyvision\.no_such_subpackage is not in this installation"):
        tv.no_such_subpackage
    assert not hasattr(tv, "no_such_subpackage")


def test_missing_dependency_inside_a_subpackage_is_not_masked(monkeypatch, tmp_path):
    """A subpackage that exists but imports something absent: the error names that thing."""
    (tmp_path / "broken_sub").mkdir()
    (tmp_path / "broken_sub" / "__init__.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.setattr(tv, "__path__", [*tv.__path__, str(tmp_path)])
    monkeypatch.setattr(tv, "_SUBPACKAGES", (*tv._SUBPACKAGES, "broken_sub"))
    monkeypatch.delitem(sys.modules, "tinyvision.broken_sub", raising=False)
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_xyz"):
        tv.broken_sub


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="'tinyvision' has no attribute 'not_a_thing'"):
        tv.not_a_thing


# --------------------------------------------------------------------------- functional.__all__

def test_star_import_of_functional_gives_ops_not_submodules():
    namespace: dict = {}
    exec("from tinyvision.functional import *", namespace)
    namespace.pop("__builtins__")
    modules = sorted(k for k, v in namespace.items() if isinstance(v, types.ModuleType))
    assert not modules, f"submodules exported by `import *`: {modules}"
    assert {"conv2d", "relu", "cat", "softmax", "cross_entropy", "max_pool2d", "matmul"} <= set(namespace)
    assert all(callable(v) for v in namespace.values())


def test_functional_all_is_every_public_op_of_every_submodule_imported():
    """Every public function the package namespace holds is in __all__ (so an op added to
    tinyvision/functional/__init__.py is exported without editing a list)."""
    public = {n for n, v in vars(functional_pkg).items()
              if not n.startswith("_") and isinstance(v, types.FunctionType)}
    assert public <= set(functional_pkg.__all__)
    submodules = {n for n, v in vars(functional_pkg).items() if isinstance(v, types.ModuleType)}
    assert submodules and not submodules & set(functional_pkg.__all__)


def test_nn_functional_and_top_level_export_the_same_ops():
    assert F.__all__ == functional_pkg.__all__
    assert all(getattr(tv, name) is getattr(functional_pkg, name) for name in functional_pkg.__all__)
    assert not hasattr(tv, "elementwise") and not hasattr(tv, "shape")  # submodules stay inside
