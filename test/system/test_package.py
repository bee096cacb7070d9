"""The package as ROS and pip see it: package.xml, setup.py, colcon build, pip install, style."""

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

EXPECTED_EXEC_DEPENDS = {
    "rclpy",
    "std_msgs",
    "sensor_msgs",
    "geometry_msgs",
    "nav_msgs",
    "visualization_msgs",
    "diagnostic_msgs",
    "cv_bridge",
    "message_filters",
    "tf_transformations",
    "python3-numpy",
    "python3-torch",
}


def setup_py_keywords() -> dict:
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    return {kw.arg: kw.value for kw in call.keywords}


def test_package_xml_is_format_3_with_the_expected_depends():
    package = parse_package(str(REPO / "package.xml"))
    assert package.package_format == 3
    assert package.name == "tacocc_ros"
    assert package.get_build_type() == "ament_python"
    assert EXPECTED_EXEC_DEPENDS <= {d.name for d in package.exec_depends}
    assert (REPO / "resource" / package.name).is_file()


def test_setup_py_matches_package_xml():
    package = parse_package(str(REPO / "package.xml"))
    source = (REPO / "setup.py").read_text()
    assert f'PACKAGE = "{package.name}"' in source
    version = setup_py_keywords()["version"]
    assert isinstance(version, ast.Constant) and version.value == package.version


def test_tacocc_core_never_imports_ros():
    ros_modules = (
        "rclpy",
        "sensor_msgs",
        "std_msgs",
        "nav_msgs",
        "geometry_msgs",
        "visualization_msgs",
        "diagnostic_msgs",
        "tf2_ros",
        "message_filters",
        "cv_bridge",
        "launch",
        "launch_ros",
        "tacocc_ros",
    )
    for path in (REPO / "tacocc_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ros_modules, f"{path.relative_to(REPO)} imports {name}"


def test_the_node_process_imports_no_network_library():
    """The node's own process (messages, sync, publishing) leaves torch, torchvision and spconv to its
    inference child: importing them costs seconds of every start and hundreds of MB of the node's memory."""
    script = (
        "import sys, tacocc_ros.node.occupancy_node, tacocc_ros.node.inference; "
        "print(sorted(m for m in ('torch', 'torchvision', 'spconv', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]", f"the node's process imports {out.stdout.strip()}"


# The ROS side, bottom to top: a subpackage imports only from those before it (and from tacocc_core).
ROS_LAYERS = ("messages", "node", "bags", "recording", "training", "tooling", "commands", "cli")


def test_ros_side_layers_import_downwards_only():
    rank = {name: i for i, name in enumerate(ROS_LAYERS)}
    found = {p.stem if p.parent.name == "tacocc_ros" else p.parent.name for p in (REPO / "tacocc_ros").rglob("*.py")}
    assert found - {"__init__"} == set(ROS_LAYERS), "a new tacocc_ros subpackage needs its place in ROS_LAYERS"
    for path in (REPO / "tacocc_ros").rglob("*.py"):
        here = path.stem if path.parent.name == "tacocc_ros" else path.parent.name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("tacocc_ros."):
                there = node.module.split(".")[1]
                assert rank[there] <= rank[here], f"{path.relative_to(REPO)} ({here}) imports {node.module} ({there})"


def test_ruff_style():
    """flake8 + pep257-equivalent checks (what ament_flake8/ament_pep257 give a ROS package), via ruff."""
    ruff = shutil.which("ruff", path=str(BIN)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it comes with the `test` extra)")
    result = subprocess.run([ruff, "check", "--no-cache", str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def readme_line(prefix: str) -> str:
    """The one command line of the README that starts with `prefix` (every copy of it must be the same)."""
    lines = {line.split("  #")[0].strip() for line in (REPO / "README.md").read_text().splitlines()}
    found = sorted(line for line in lines if line.startswith(prefix))
    assert len(found) == 1, f"README lines starting with {prefix!r} differ: {found}"
    return found[0]


def test_colcon_build_as_the_readme_says(tmp_path):
    """The README's colcon command, setup script and installed script, in a fresh workspace."""
    colcon = shutil.which("colcon", path=str(BIN))
    if colcon is None:
        pytest.skip("colcon is not installed (it comes with the `test` extra)")
    build = readme_line("colcon build")
    source = readme_line("source install/")
    run = readme_line("install/tacocc_ros/lib/tacocc_ros/tacocc ")
    assert build == "colcon build --symlink-install --packages-select tacocc_ros"
    assert source == "source install/setup.bash"
    src = tmp_path / "ws" / "src"
    src.mkdir(parents=True)
    shutil.copytree(
        REPO,
        src / "tacocc_ros",
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            "build",
            "install",
            "log",
            "__pycache__",
            "*.egg-info",
            ".gpu",
            "demo_out",
            "runs",
        ),
    )
    ws = tmp_path / "ws"
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    for name in ("AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "TACOCC_CONFIG_DIR"):
        env.pop(name, None)
    result = subprocess.run(["bash", "-c", build], cwd=ws, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, (
        "the README's colcon command failed; the `test` extra provides colcon-package-selection and colcon-bash\n"
        + result.stdout[-3000:]
        + result.stderr[-3000:]
    )
    prefix = ws / "install" / "tacocc_ros"
    share = prefix / "share" / "tacocc_ros"
    assert (prefix / "lib" / "tacocc_ros" / "tacocc").is_file()
    assert (share / "package.xml").is_file()
    assert (share / "config" / "tiny.yaml").is_file()
    assert (share / "launch" / "tacocc.launch.py").is_file() and (share / "rviz" / "tacocc.rviz").is_file()
    assert (share / "foxglove_layout" / "tacocc_layout.json").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "tacocc_ros").is_file()
    # The setup script alone sets what the installed script needs (ament index, python path): nothing by hand.
    out = subprocess.run(
        ["bash", "-c", f"{source} && {run}"], cwd=ws, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "name: tiny" in out.stdout
    # --symlink-install imports the package from the source folder, so its presets come from there too.
    read_from = {f"# file: {share / 'config' / 'tiny.yaml'}", f"# file: {src / 'tacocc_ros' / 'config' / 'tiny.yaml'}"}
    assert read_from & set(out.stdout.splitlines()), out.stdout[-500:]


def pip_install_into_new_venv(target: Path, *args: str) -> Path:
    """`pip install --no-deps ARGS` into a new venv, by this interpreter's pip (`--python`).

    The venv gets no pip of its own (ensurepip is most of the time a venv takes to create) and the build uses
    this environment's setuptools instead of an isolated build environment (which pip would download): what
    is checked is what the package's setup installs, not pip.
    """
    venv.create(target, with_pip=False)
    py = target / "bin" / "python"
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])  # setuptools for the build backend
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-build-isolation", *args],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return target


def run_tacocc(venv_dir: Path, *args: str, cwd: Path) -> str:
    """Run the venv's console script; the test venv's site-packages lend the dependencies (--no-deps above)."""
    env = dict(os.environ, PYTHONPATH=sysconfig.get_paths()["purelib"])
    env.pop("TACOCC_CONFIG_DIR", None)
    out = subprocess.run([str(venv_dir / "bin" / "tacocc"), *args], env=env, capture_output=True, text=True, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_pip_install_editable_in_a_new_venv(tmp_path):
    target = pip_install_into_new_venv(tmp_path / "venv", "-e", str(REPO))
    assert (target / "bin" / "tacocc").is_file()
    assert "vegetation" in run_tacocc(target, "labels", cwd=tmp_path)
    assert "name: tiny" in run_tacocc(target, "config", "tiny", cwd=tmp_path)  # presets from the source tree


def test_pip_install_puts_presets_under_share(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", ".gpu"))
    target = pip_install_into_new_venv(tmp_path / "venv", str(source))
    shutil.rmtree(source)  # the installed copy must not need the source tree
    assert (target / "share" / "tacocc_ros" / "config" / "nuscenes_r50_256x704.yaml").is_file()
    assert (target / "share" / "tacocc_ros" / "package.xml").is_file()
    assert (target / "share" / "tacocc_ros" / "checkpoints" / "demo.pt").is_file()  # what `tacocc demo` runs
    assert (target / "share" / "tacocc_ros" / "foxglove_layout" / "tacocc_layout.json").is_file()
    out = run_tacocc(target, "config", "nuscenes_r50_256x704", cwd=tmp_path)
    assert "name: nuscenes_r50_256x704" in out
    assert f"# file: {target / 'share' / 'tacocc_ros' / 'config' / 'nuscenes_r50_256x704.yaml'}" in out
