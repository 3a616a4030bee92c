import subprocess
import sys

import lightly_topo


def test_version_is_a_release_string() -> None:
    parts = lightly_topo.__version__.split(".")
    assert len(parts) == 3 and all(part.isdigit() for part in parts)


def test_top_level_import_is_light() -> None:
    code = (
        "import sys, lightly_topo; "
        "heavy = [m for m in ('torch', 'monai', 'torchio', 'timm', 'lightly', 'nibabel') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_subpackages_load_on_attribute_access() -> None:
    assert lightly_topo.data.MODALITIES[0] == "t1"


def test_checkpoint_functions_are_exported_at_top_level() -> None:
    from lightly_topo import checkpoint

    assert lightly_topo.save_pretrained is checkpoint.save_pretrained
    assert lightly_topo.load_pretrained is checkpoint.load_pretrained


def test_every_error_of_the_package_is_a_lightly_topo_error() -> None:
    import importlib
    import inspect
    import pkgutil

    errors = []
    for info in pkgutil.walk_packages(lightly_topo.__path__, "lightly_topo."):
        if "_kernels_numba" in info.name:
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, Exception):
                if issubclass(cls, Warning):
                    continue
                errors.append(cls)
    assert len(errors) >= 36
    outside = [c.__qualname__ for c in errors if not issubclass(c, lightly_topo.LightlyTopoError)]
    assert outside == []
