"""tacocc_core.reference: the reference twins stay out of the code that runs; only tests and benchmarks use them."""

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFERENCE = "tacocc_core.reference"
# Where the twins may be imported from: the twins themselves, the tests and the benchmarks.
ALLOWED = ("tacocc_core/reference/", "test/", "benchmarks/")
# Code that ships or runs outside the tests: every Python file here is checked.
SHIPPED = ("tacocc_core", "tacocc_ros", "launch")
# Modules with `*_reference` functions that are not twins: the generated reference documentation of the config.
DOC_REFERENCE = ("tacocc_core/config_reference.py", "tacocc_ros/tooling/reference_doc.py")


def module_name(relative: str) -> str:
    """'tacocc_core/model/voxelize.py' -> 'tacocc_core.model.voxelize' ('pkg/__init__.py' -> 'pkg')."""
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, relative: str) -> set[str]:
    """Every module a file names in an import, relative imports resolved, and every imported `from` name."""
    here = module_name(relative).split(".")
    package = here if relative.endswith("__init__.py") else here[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and REFERENCE in node.value:
            found.add(node.value)  # importlib.import_module("tacocc_core.reference...") and the like
    return found


def uses_reference(source: str, relative: str) -> list[str]:
    return sorted(m for m in imported_modules(source, relative) if m == REFERENCE or m.startswith(REFERENCE + "."))


def shipped_files() -> list[Path]:
    files = [p for top in SHIPPED for p in (REPO / top).rglob("*.py")]
    return [p for p in files if not p.relative_to(REPO).as_posix().startswith(ALLOWED)]


@pytest.mark.parametrize(
    ("source", "relative", "found"),
    [
        ("from tacocc_core.reference.voxelize import voxelize_reference", "tacocc_core/model/a.py", True),
        ("import tacocc_core.reference.warp as w", "tacocc_ros/node/a.py", True),
        ("from tacocc_core import reference", "tacocc_core/a.py", True),
        ("from ..reference import warp", "tacocc_core/model/a.py", True),
        ("from . import reference", "tacocc_core/__init__.py", True),
        ("importlib.import_module('tacocc_core.reference.bev')", "tacocc_ros/a.py", True),
        ("from tacocc_core.config_reference import model_reference", "tacocc_core/a.py", False),
        ("from .reference import x", "tacocc_core/model/a.py", False),  # tacocc_core.model.reference
        ("from tacocc_core.model.voxelize import voxelize", "tacocc_core/a.py", False),
    ],
)
def test_the_import_scan_finds_every_way_of_naming_the_package(source, relative, found):
    assert bool(uses_reference(source, relative)) == found


def test_nothing_outside_tests_and_benchmarks_imports_the_twins():
    files = shipped_files()
    assert len(files) > 100  # the scan sees the packages
    offenders = {}
    for path in files:
        relative = path.relative_to(REPO).as_posix()
        if names := uses_reference(path.read_text(), relative):
            offenders[relative] = names
    assert not offenders, f"only test/ and benchmarks/ may import {REFERENCE}: {offenders}"


def test_no_twin_is_left_in_the_running_code():
    """No `*_reference` function outside the reference package (the config's reference documentation apart)."""
    left = []
    for path in shipped_files():
        relative = path.relative_to(REPO).as_posix()
        if relative in DOC_REFERENCE:
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.endswith("_reference"):
                left.append(f"{relative}: {node.name}")
            elif isinstance(node, ast.Assign | ast.AnnAssign) and "REFERENCE_" in ast.unparse(node).split("=")[0]:
                left.append(f"{relative}: {ast.unparse(node).split('=')[0].strip()}")
    assert not left, f"reference twins belong in tacocc_core/reference/: {left}"


@pytest.mark.parametrize(
    ("module", "twin"),
    [
        ("lidar_denoise", "denoise_mask_reference"),
        ("voxelize", "voxelize_reference"),
        ("warp", "warp_volume_reference"),
        ("tile_composite", "tile_composite_reference"),
        ("ewa_cpu", "rasterize_reference"),
        ("sky_mask", "REFERENCE_SKY_PARAMS"),
        ("raycast", "cast_brute_force"),
        ("label_resample", "block_vote_reference"),
        ("bev", "top_view_reference"),
        ("raster", "nearest_per_pixel_reference"),
    ],
)
def test_every_twin_is_in_the_package_and_has_a_test_that_uses_it(module, twin):
    assert hasattr(importlib.import_module(f"{REFERENCE}.{module}"), twin)
    importers = [
        p.name
        for p in (REPO / "test").rglob("test_*.py")
        if p.name != Path(__file__).name and f"{REFERENCE}.{module} import" in p.read_text() and twin in p.read_text()
    ]
    assert importers, f"no test compares a fast path with {REFERENCE}.{module}.{twin}"
