"""One inbox on its way through the twin step (see :class:`twin.processor.TwinProcessor`)."""

from __future__ import annotations

from twin.alerts.records import AlertTransition
from twin.anomaly.columns import Item
from twin.anomaly.records import Anomaly
from twin.profiles import DeviceProfile
from twin.records import DeadLetter, DeviceEvent, DeviceInbox, Reading
from twin.state import TwinState


class InboxStep:
    """One inbox while its items are applied in order: what it has produced so far, and the
    readings and events whose detector and alert work waits for the rest of the batch."""

    __slots__ = (
        "accepted",
        "anomalies",
        "attributes",
        "dead",
        "device_id",
        "events",
        "inbox",
        "is_new",
        "judged",
        "positioned",
        "profile",
        "ranges",
        "repeats",
        "script",
        "state",
        "transitions",
    )  # fmt: skip

    def __init__(
        self, state: TwinState, profile: DeviceProfile, inbox: DeviceInbox, is_new: bool
    ) -> None:
        self.state = state
        self.device_id = state.device_id
        self.inbox = inbox
        self.is_new = is_new
        self.profile = profile
        self.ranges: dict[str, tuple[float, float]] = {}
        self.accepted: list[Reading] = []
        self.dead: list[DeadLetter] = []
        self.events: list[DeviceEvent] = []
        self.anomalies: list[Anomaly] = []
        self.transitions: list[AlertTransition] = []
        self.attributes: dict[str, object] | None = None
        self.positioned = False
        self.repeats = 0
        self.judged: list[Item] = []
        """The accepted readings as the detectors take them, with the profile of their time."""
        self.script: list[tuple[Reading | DeviceEvent, str]] = []
        """Accepted readings and events in order, with the profile name of their time: the
        alert rules run through them once the detectors have judged the readings."""


Work = tuple[TwinState | None, str, DeviceInbox]
"""One device's share of a batch: its twin's state (None before its first reading), its id
and its inbox."""
