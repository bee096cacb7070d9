"""tacocc_ros.node.lifecycle_guard: why a transition is refused (the services: test_occupancy_node_lifecycle.py)."""

from tacocc_ros.node.lifecycle_guard import refusal

INACTIVE = [(2, "cleanup"), (3, "activate"), (6, "shutdown")]


def test_an_allowed_transition_by_label_or_id_has_no_refusal():
    assert refusal(0, "activate", "inactive", INACTIVE) is None
    assert refusal(3, "", "inactive", INACTIVE) is None


def test_a_transition_asked_twice_or_in_the_wrong_state_is_refused_with_the_state_and_what_it_allows():
    assert refusal(1, "configure", "inactive", INACTIVE) == (
        "transition 'configure' refused: the node is inactive, which allows activate, cleanup, shutdown"
    )
    assert refusal(4, "", "inactive", INACTIVE).startswith("transition '4' refused: the node is inactive")
    assert refusal(0, "configure", "finalized", []).endswith("which allows none")
