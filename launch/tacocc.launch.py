"""The occupancy node with its parameters file, optionally RViz and a bag played into it.

    ros2 launch tacocc_ros tacocc.launch.py [params_file:=FILE] [rviz:=true] [bag:=PATH]

With `bag:=PATH` the bag is played with `--clock` and the node and RViz run on sim time, so the latency
on /diagnostics is measured on the bag's clock. The node publishes `/occupancy/markers` and
`/occupancy/cloud` (its relative output names in the root namespace), which `rviz/tacocc.rviz` displays;
run alone, it publishes the same names.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("tacocc_ros")
    params_file = LaunchConfiguration("params_file")
    bag = LaunchConfiguration("bag")
    playing = PythonExpression(["'", bag, "' != ''"])
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "occupancy_node.yaml"]),
                description="parameters of occupancy_node (model, checkpoint, topics, sync, caps)",
            ),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz with rviz/tacocc.rviz"),
            DeclareLaunchArgument("bag", default_value="", description="rosbag2 to play (with --clock) into the node"),
            Node(
                package="tacocc_ros",
                executable="occupancy_node",
                name="occupancy_node",
                output="screen",
                parameters=[params_file, {"use_sim_time": playing}],
            ),
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                arguments=["-d", PathJoinSubstitution([share, "rviz", "tacocc.rviz"])],
                parameters=[{"use_sim_time": playing}],
                condition=IfCondition(LaunchConfiguration("rviz")),
            ),
            ExecuteProcess(
                cmd=["ros2", "bag", "play", bag, "--clock"],
                output="screen",
                condition=IfCondition(playing),
            ),
        ]
    )
