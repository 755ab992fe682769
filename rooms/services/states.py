"""The room's state leaving a change: every state a change makes goes out through here."""

from .. import broadcast, selectors
from ..models import Room
from ..protocol import BeforeEvent, StateEvent


def state_publish(
    room: Room,
    state: StateEvent | None = None,
    *,
    before: tuple[BeforeEvent, ...] = (),
    presence: bool = False,
) -> StateEvent:
    """Send the room's new state to its channel group once the change commits; return it.

    `state` is the one the change read already, if it did (else it is read now); `before`
    goes out ahead of it (a pick's `picked`). rooms/broadcast.py states the version rule.
    What goes out is what the state may show (`selectors.state_shown`: a blind room's votes
    stay hidden, and each participant's connections are told their own); the full state is
    returned.
    """
    if state is None:
        state = selectors.room_state(room=room)
    shown = selectors.state_shown(state)
    broadcast.state_on_commit(
        group=room.channel_group,
        state=shown.state,
        mine=shown.mine,
        before=before,
        presence=presence,
    )
    return state
