"""A lifecycle node's `change_state` service that refuses, with its reason in the log, what its state forbids.

rclpy answers a transition the current state does not allow (configure asked twice, activate while
unconfigured) with `success: false` and an error line naming only ids. `refuse_with_reason` puts a
check in front of the service: the refused transition, the state and the transitions it allows are
logged as a warning, `on_refused` is called (the node counts it on /diagnostics), and the node stays in
its state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lifecycle_msgs.srv import ChangeState


def refusal(asked_id: int, asked_label: str, state: str, available: list[tuple[int, str]]) -> str | None:
    """Why the transition `asked_label` (or `asked_id` when the label is empty) is refused; None if allowed.

    `state` is the current state's label, `available` the (id, label) transitions it allows.
    """
    asked = asked_label or str(asked_id)
    if any(asked in (label, str(tid)) for tid, label in available):
        return None
    allowed = ", ".join(sorted({label for _, label in available})) or "none"
    return f"transition {asked!r} refused: the node is {state}, which allows {allowed}"


def refuse_with_reason(node: Any, on_refused: Callable[[str], None]) -> None:
    """Wrap `node`'s (an rclpy LifecycleNode) change_state service with `refusal` (see the module docstring)."""
    service = node._service_change_state
    transition = service.callback

    def change_state(request: ChangeState.Request, response: ChangeState.Response) -> ChangeState.Response:
        _, state = node._state_machine.current_state
        available = [(t[0], t[1]) for t in node._state_machine.available_transitions]
        reason = refusal(request.transition.id, request.transition.label, state, available)
        if reason is None:
            return transition(request, response)
        on_refused(reason)
        response.success = False
        return response

    service.callback = change_state
