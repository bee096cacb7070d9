"""launch/tacocc.launch.py and rviz/tacocc.rviz against what the node and setup.py really provide.

The ROS `launch` package is not on PyPI: where it is importable the description is also loaded and
walked; the static checks (the file's syntax tree) always run.
"""

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from tacocc_core.config import load_preset
from tacocc_ros.node.node_params import all_params

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch" / "tacocc.launch.py"
RVIZ = REPO / "rviz" / "tacocc.rviz"


def calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def keywords(call: ast.Call) -> dict:
    return {kw.arg: kw.value for kw in call.keywords}


def node_publisher_topics() -> set[str]:
    """The node's output topics as it resolves them in the root namespace (relative names get a leading /)."""
    from tacocc_ros.node.outputs import CLOUD_TOPIC, MARKERS_TOPIC

    tree = ast.parse((REPO / "tacocc_ros" / "node" / "occupancy_node.py").read_text())
    pubs = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "create_publisher"]
    names = {"MARKERS_TOPIC": MARKERS_TOPIC, "CLOUD_TOPIC": CLOUD_TOPIC}
    topics = {names[p.args[1].id] if isinstance(p.args[1], ast.Name) else p.args[1].value for p in pubs}
    assert not any(t.startswith("~") for t in topics), "private (~/) output names differ alone and launched"
    return {t if t.startswith("/") else "/" + t for t in topics}


def test_launch_file_runs_the_installed_node_with_the_params_file():
    tree = ast.parse(LAUNCH.read_text())
    nodes = {ast.literal_eval(keywords(c)["package"]): keywords(c) for c in calls(tree, "Node")}
    ours = nodes["tacocc_ros"]
    executable = ast.literal_eval(ours["executable"])
    setup = ast.parse((REPO / "setup.py").read_text())
    scripts = next(
        ast.literal_eval(kw.value)["console_scripts"]
        for c in calls(setup, "setup")
        for kw in c.keywords
        if kw.arg == "entry_points"
    )
    assert f"{executable} = tacocc_ros.node.occupancy_node:main" in scripts
    declared = {ast.literal_eval(c.args[0]): keywords(c) for c in calls(tree, "DeclareLaunchArgument")}
    assert set(declared) == {"params_file", "rviz", "bag", "lifecycle"}
    default = declared["params_file"]["default_value"]
    parts = [ast.literal_eval(e) for e in default.args[0].elts[1:]]
    assert parts == ["config", "occupancy_node.yaml"] and (REPO.joinpath(*parts)).is_file()
    assert "rviz2" in nodes and "tacocc.rviz" in ast.unparse(nodes["rviz2"]["arguments"])
    assert 'glob("config/*.yaml")' in (REPO / "setup.py").read_text()
    assert 'glob("launch/*.py")' in (REPO / "setup.py").read_text()


def test_launch_file_can_drive_the_lifecycle_instead_of_autostart():
    """`lifecycle:=true`: the same node as a LifecycleNode with autostart off, configured, then activated."""
    tree = ast.parse(LAUNCH.read_text())
    (managed,) = [keywords(c) for c in calls(tree, "LifecycleNode")]
    assert ast.literal_eval(managed["package"]) == "tacocc_ros"
    assert ast.literal_eval(managed["executable"]) == "occupancy_node"
    overrides = managed["parameters"].elts[1]
    values = {ast.literal_eval(k): v for k, v in zip(overrides.keys, overrides.values, strict=True)}
    assert values["autostart"].value is False
    assert "autostart" in all_params(("CAM_FRONT",))
    transitions = [ast.unparse(keywords(c)["transition_id"]) for c in calls(tree, "ChangeState")]
    assert sorted(transitions) == ["Transition.TRANSITION_ACTIVATE", "Transition.TRANSITION_CONFIGURE"]
    (handler,) = [keywords(c) for c in calls(tree, "OnStateTransition")]
    assert ast.literal_eval(handler["goal_state"]) == "inactive"  # activate once configure has succeeded
    plain = next(keywords(c) for c in calls(tree, "Node") if ast.literal_eval(keywords(c)["package"]) == "tacocc_ros")
    assert ast.unparse(plain["condition"]) == "UnlessCondition(LaunchConfiguration('lifecycle'))"
    assert "managed = IfCondition(LaunchConfiguration('lifecycle'))" in ast.unparse(tree)
    assert ast.unparse(managed["condition"]) == "managed"


def test_launch_file_does_not_rename_the_outputs():
    """Alone or launched, the node publishes the same names: the launch file remaps nothing."""
    tree = ast.parse(LAUNCH.read_text())
    ours = next(keywords(c) for c in calls(tree, "Node") if ast.literal_eval(keywords(c)["package"]) == "tacocc_ros")
    assert "remappings" not in ours
    assert {"/occupancy/markers", "/occupancy/cloud"} <= node_publisher_topics()


def test_rviz_displays_match_the_node_outputs():
    config = yaml.safe_load(RVIZ.read_text())
    manager = config["Visualization Manager"]
    displays = {d["Class"]: d for d in manager["Displays"]}
    assert {
        "rviz_default_plugins/MarkerArray",
        "rviz_default_plugins/PointCloud2",
        "rviz_default_plugins/Image",
        "rviz_default_plugins/TF",
    } <= set(displays)
    published = node_publisher_topics()
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] in published
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"] in published
    assert cloud["Style"] == "Boxes" and cloud["Color Transformer"] == "RGB8"
    assert cloud["Size (m)"] == load_preset("nuscenes_r50_256x704").grid.voxel_size
    image_topic = all_params(("CAM_FRONT",))["cameras.CAM_FRONT.image_topic"].default
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == image_topic
    assert manager["Global Options"]["Fixed Frame"] == "LIDAR_TOP"


def test_launch_description_loads_where_ros_launch_is_installed():
    try:  # the repository's launch/ folder is importable as a namespace package: ask for the real thing
        from launch.actions import DeclareLaunchArgument
        from launch_ros.actions import Node
    except ImportError as err:
        pytest.skip(f"the ROS launch / launch_ros packages are not importable (not on PyPI): {err}")

    spec = importlib.util.spec_from_file_location("tacocc_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    arguments = [e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert arguments == ["params_file", "rviz", "bag", "lifecycle"]
    nodes = [e for e in description.entities if isinstance(e, Node)]
    assert nodes[0].node_package == "tacocc_ros" and nodes[0].node_executable == "occupancy_node"
