"""Input subscriptions that hear what drivers offer: QoS adapted to the publishers, as rosbag2 records.

A subscription and a publisher only talk when their QoS is compatible. Drivers publish with ROS 2's
default profile (reliable, volatile: image_transport cameras, most drivers), sensor-data QoS (best
effort, volatile) or latched (reliable, transient local: a bag player's CameraInfo, /tf_static). A
best-effort volatile subscription hears all three but gets no latched message sent before it joined;
a reliable or transient-local one hears only some. So, in `auto` mode, a subscription takes what every
publisher on its topic offers (rosbag2's rule): reliable when all of them are reliable, best effort
otherwise; transient local when all of them are latched, volatile otherwise; best effort volatile while
there is none yet. `AdaptiveSubscription.refresh` (called periodically by the node) recreates the
subscription when the offers change, and says which publishers it still cannot hear (another message
type, or a QoS it cannot match: a fixed `reliable`/`transient_local` choice, a deadline, a liveliness).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSCompatibility,
    QoSProfile,
    ReliabilityPolicy,
    qos_check_compatible,
)

AUTO = "auto"
RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
DURABILITY = {"transient_local": DurabilityPolicy.TRANSIENT_LOCAL, "volatile": DurabilityPolicy.VOLATILE}


@dataclass(frozen=True)
class QosChoice:
    """What the user asked for one input: `auto` adapts; a policy name fixes it.

    Args:
        reliability: auto, reliable or best_effort.
        durability: auto, transient_local or volatile.
        depth: messages the subscription keeps (keep-last history).
    """

    reliability: str
    durability: str
    depth: int

    def __post_init__(self) -> None:
        if self.reliability not in (AUTO, *RELIABILITY):
            raise ValueError(f"QosChoice.reliability must be auto, reliable or best_effort, got {self.reliability!r}")
        if self.durability not in (AUTO, *DURABILITY):
            raise ValueError(f"QosChoice.durability must be auto, transient_local or volatile, got {self.durability!r}")
        if self.depth < 1:
            raise ValueError(f"QosChoice.depth must be >= 1, got {self.depth}")


def adapted_profile(offered: Sequence[QoSProfile], choice: QosChoice) -> QoSProfile:
    """The subscription profile for publishers offering `offered` (rosbag2's rule for `auto` policies)."""
    if choice.reliability != AUTO:
        reliability = RELIABILITY[choice.reliability]
    elif offered and all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered):
        reliability = ReliabilityPolicy.RELIABLE
    else:
        reliability = ReliabilityPolicy.BEST_EFFORT
    if choice.durability != AUTO:
        durability = DURABILITY[choice.durability]
    elif offered and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered):
        durability = DurabilityPolicy.TRANSIENT_LOCAL
    else:
        durability = DurabilityPolicy.VOLATILE
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=choice.depth, reliability=reliability, durability=durability
    )


def type_name(msg_type: Any) -> str:
    """`sensor_msgs/msg/CameraInfo` for the rclpy message class CameraInfo (as the ROS graph names types)."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def describe(profile: QoSProfile) -> str:
    """`reliable transient_local` and the like."""
    return f"{profile.reliability.name.lower()} {profile.durability.name.lower()}"


def unheard(publishers: Sequence[Any], profile: QoSProfile, expected_type: str) -> list[str]:
    """Why each publisher in `publishers` (rclpy TopicEndpointInfo) cannot reach a `profile` subscription.

    One line per publisher that publishes another type or offers a QoS `profile` cannot match; [] when
    every publisher is heard.
    """
    reasons = []
    for info in publishers:
        who = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
        if info.topic_type != expected_type:
            reasons.append(f"{who} publishes {info.topic_type}, the node subscribes {expected_type}")
            continue
        compatibility, why = qos_check_compatible(info.qos_profile, profile)
        if compatibility == QoSCompatibility.ERROR:
            reasons.append(f"{who} offers {describe(info.qos_profile)}, the node asks {describe(profile)}: {why}")
    return reasons


class AdaptiveSubscription:
    """One input subscription whose QoS follows its publishers' offers (see the module docstring).

    Args:
        node: the rclpy node that owns the subscription (its graph is queried).
        msg_type: the message class.
        topic: the topic name (absolute).
        callback: called with each message.
        choice: the user's QoS choice for this input.
        callback_group: the group the subscription's callbacks run in.
    """

    def __init__(
        self,
        node: Any,
        msg_type: Any,
        topic: str,
        callback: Callable[[Any], None],
        choice: QosChoice,
        callback_group: Any = None,
    ) -> None:
        self.node, self.msg_type, self.topic, self.callback = node, msg_type, topic, callback
        self.choice, self.callback_group = choice, callback_group
        self.expected_type = type_name(msg_type)
        self.recreated = 0
        self.profile = adapted_profile(self._offers(), choice)
        self.subscription = self._subscribe(self.profile)

    def _publishers(self) -> list[Any]:
        return list(self.node.get_publishers_info_by_topic(self.topic))

    def _offers(self, publishers: Sequence[Any] | None = None) -> list[QoSProfile]:
        found = self._publishers() if publishers is None else publishers
        return [p.qos_profile for p in found if p.topic_type == self.expected_type]

    def _subscribe(self, profile: QoSProfile) -> Any:
        return self.node.create_subscription(
            self.msg_type, self.topic, self.callback, profile, callback_group=self.callback_group
        )

    def refresh(self) -> list[str]:
        """Re-adapt to the current publishers; the publishers it still cannot hear, one reason each.

        The subscription is recreated when the adapted profile changes (`adapted_profile`); the reasons
        are `unheard`'s.
        """
        publishers = self._publishers()
        offers = self._offers(publishers)
        wanted = adapted_profile(offers, self.choice)
        if offers and (wanted.reliability, wanted.durability) != (self.profile.reliability, self.profile.durability):
            self.node.destroy_subscription(self.subscription)
            self.profile, self.subscription = wanted, self._subscribe(wanted)
            self.recreated += 1
        return unheard(publishers, self.profile, self.expected_type)

    def publisher_count(self) -> int:
        return len(self._offers())

    def destroy(self) -> None:
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None
