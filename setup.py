"""One ament_python package: `colcon build` in a ROS 2 workspace, `pip install -e .` in a plain venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "tacocc_ros"

# The ROS 2 client libraries as wheels, for machines without a ROS distribution.
ROS_WHEELS = [
    "ros-rclpy[fastrtps]",
    "ros-std-msgs",
    "ros-sensor-msgs",
    "ros-geometry-msgs",
    "ros-nav-msgs",
    "ros-visualization-msgs",
    "ros-diagnostic-msgs",
    "ros-std-srvs",
]


ONNX = ["onnx>=1.16", "onnxruntime>=1.18", "ml_dtypes>=0.4,<0.6"]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="TACOcc 3D semantic occupancy from surround cameras and LiDAR, for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["tacocc_core", "tacocc_core.*", "tacocc_ros", "tacocc_ros.*"]),
    package_data={"tacocc_ros.messages": ["*.xml"]},  # the Fast DDS profile (tacocc_ros/messages/transport.py)
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/foxglove_layout", glob("foxglove_layout/*.json")),
        (f"share/{PACKAGE}/checkpoints", glob("checkpoints/*.pt")),
    ],
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.10",
        "pyyaml>=6",
        "pydantic>=2.6",
        "opencv-python-headless>=4.8",
        "nuscenes-devkit>=1.1.11",
        "scikit-image>=0.21",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        "imageio>=2.30",
        "pillow>=9",
        "rosbags>=0.10",
        "pytorch-msssim>=1.0",
        "tensorboard>=2.14",
        "torch>=2.4",
        "torchvision>=0.19",
        "foxglove-sdk>=0.30",  # the node's Foxglove WebSocket and the .mcap of `tacocc demo` / `tacocc drive`
        "websockets>=13",  # `tacocc drive --foxglove-client`
    ],
    extras_require={
        # ROS 2 from PyPI wheels; on a machine with a ROS distribution use the distribution instead.
        "ros": ROS_WHEELS,
        # spconv: the CPU build, or the CUDA build that matches the local CUDA toolkit.
        "cpu": ["spconv>=2.3.6"],
        "cu118": ["spconv-cu118>=2.3.6"],
        "cu121": ["spconv-cu121>=2.3.6"],
        "cu124": ["spconv-cu124>=2.3.6"],
        "cu126": ["spconv-cu126>=2.3.6"],
        # `tacocc export --onnx` (onnx) and the Predictor's onnxruntime backend; ml_dtypes (imported by onnx)
        # from 0.6 on needs numpy 2, which nuscenes-devkit's numpy < 2 pin rules out. On a GPU use
        # onnxruntime-gpu instead of onnxruntime (and the tensorrt package for its TensorRT provider).
        "onnx": ONNX,
        "test": [
            "pytest>=7",
            "pytest-timeout>=2",
            "pytest-xdist>=3",  # `make test` runs the suite on two workers
            "ruff>=0.6",
            "mypy>=1.11",  # make typecheck; settings in setup.cfg
            "types-PyYAML",
            "types-tqdm",
            "catkin_pkg>=1",
            "colcon-core",
            "colcon-ros",
            "colcon-python-setup-py",
            "colcon-package-selection",  # --packages-select, as the README's colcon command uses
            "colcon-bash",  # install/setup.bash, as the README sources
            "mcap>=1.1",
            "mcap-ros2-support>=0.5",
            "mcap-protobuf-support>=0.5",  # reads the Foxglove .mcap files back with their own schemas
            *ONNX,
            "hypothesis>=6.100",  # the generated-input tests (test/*/test_fuzz_*.py)
        ],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "tacocc = tacocc_ros.cli:main",
            "occupancy_node = tacocc_ros.node.occupancy_node:main",
            "training_node = tacocc_ros.training.training_node:main",
        ],
    },
)
