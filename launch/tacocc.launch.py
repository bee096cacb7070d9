"""The occupancy node with its parameters file, optionally RViz and a bag played into it.

    ros2 launch tacocc_ros tacocc.launch.py [params_file:=FILE] [rviz:=true] [bag:=PATH] [lifecycle:=true]

With `bag:=PATH` the bag is played with `--clock` and the node and RViz run on sim time. The node
publishes `/occupancy/markers` and `/occupancy/cloud` (its relative output names in the root namespace),
which `rviz/tacocc.rviz` displays; run alone, it publishes the same names.

By default the node configures and activates itself (`autostart`). With `lifecycle:=true` it starts
unconfigured (`autostart: false`) and this launch file drives it: `configure` at once, `activate` when
it reaches `inactive`, as a lifecycle manager would; `ros2 lifecycle set /occupancy_node deactivate`
(or `cleanup`, `shutdown`) works on it either way.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, RegisterEventHandler
from launch.conditions import IfCondition, UnlessCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution, PythonExpression
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare("tacocc_ros")
    params_file = LaunchConfiguration("params_file")
    bag = LaunchConfiguration("bag")
    playing = PythonExpression(["'", bag, "' != ''"])
    managed = IfCondition(LaunchConfiguration("lifecycle"))
    managed_node = LifecycleNode(
        package="tacocc_ros",
        executable="occupancy_node",
        name="occupancy_node",
        namespace="",
        output="screen",
        parameters=[params_file, {"use_sim_time": playing, "autostart": False}],
        condition=managed,
    )
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([share, "config", "occupancy_node.yaml"]),
                description="parameters of occupancy_node (model, checkpoint, topics, sync, caps)",
            ),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz with rviz/tacocc.rviz"),
            DeclareLaunchArgument("bag", default_value="", description="rosbag2 to play (with --clock) into the node"),
            DeclareLaunchArgument(
                "lifecycle", default_value="false", description="start the node unconfigured and drive its transitions"
            ),
            Node(
                package="tacocc_ros",
                executable="occupancy_node",
                name="occupancy_node",
                output="screen",
                parameters=[params_file, {"use_sim_time": playing}],
                condition=UnlessCondition(LaunchConfiguration("lifecycle")),
            ),
            managed_node,
            RegisterEventHandler(
                OnStateTransition(
                    target_lifecycle_node=managed_node,
                    goal_state="inactive",
                    entities=[
                        EmitEvent(
                            event=ChangeState(
                                lifecycle_node_matcher=matches_action(managed_node),
                                transition_id=Transition.TRANSITION_ACTIVATE,
                            )
                        )
                    ],
                ),
                condition=managed,
            ),
            EmitEvent(
                event=ChangeState(
                    lifecycle_node_matcher=matches_action(managed_node),
                    transition_id=Transition.TRANSITION_CONFIGURE,
                ),
                condition=managed,
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
