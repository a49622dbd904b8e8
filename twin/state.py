"""The state of one device's twin and how readings change it.

Event time throughout: "latest" per metric only moves forward in the device's own clock, so a
late or redelivered reading is stored but never overwrites a newer value. Usage figures are
time-weighted exponential averages, bias-free from the first interval:

    rate = S / W,  S ← S·d + Δx,  W ← W·d + Δt,  d = exp(-Δt / τ)

which is the average of x per unit time over roughly the last τ of the device's life.
"""

from __future__ import annotations

import math
import struct
import sys
from typing import cast

import msgspec

from twin.alerts.lifecycle import AlertEngine, AlertState
from twin.anomaly.detectors import DetectorState
from twin.clock import MS_PER_DAY, MS_PER_HOUR
from twin.latest import Latest
from twin.profiles import GENERIC, MACHINE, VEHICLE, DeviceProfile
from twin.records import Reading

STATE_VERSION = 1
KM_PER_DAY_TAU_MS = 7 * MS_PER_DAY
LOAD_TAU_MS = MS_PER_HOUR
MAX_RUN_GAP_MS = 10 * 60 * 1000
"""A machine silent longer than this is not assumed to have run through the gap."""


RECENT_READINGS = 16
"""How many reading identities a twin keeps to recognise a reading delivered twice."""


IDENTITY = struct.Struct("<q")
"""A reading identity as the twin keeps it: 8 bytes, little-endian (a list of ints would take
four times the memory, and a million twins keep 16 each)."""
RECENT_BYTES = RECENT_READINGS * IDENTITY.size


def reading_identity(reading: Reading) -> int:
    """The store's identity of a reading, ``(ts, seq or -1)``, as one int (ints and tuples of
    ints hash the same in every process)."""
    return hash((reading.ts_ms, -1 if reading.seq is None else reading.seq))


def packed_identities(identities: list[int]) -> bytes:
    """Identities as :attr:`TwinState.recent` holds them (newest last)."""
    return b"".join(map(IDENTITY.pack, identities[-RECENT_READINGS:]))


def holds_identity(recent: bytes, identity: int) -> bool:
    packed = IDENTITY.pack(identity)
    at = recent.find(packed)
    while at >= 0:
        if at % IDENTITY.size == 0:  # not the end of one identity and the start of the next
            return True
        at = recent.find(packed, at + 1)
    return False


class TwinState(msgspec.Struct, kw_only=True):
    """Everything a twin remembers about its device; a few hundred bytes encoded."""

    device_id: str
    kind: str = GENERIC
    profile: str = GENERIC
    version: int = STATE_VERSION
    first_seen_ms: int = 0
    last_seen_ms: int = 0  # newest event time seen
    last_arrival_ms: int = 0  # newest arrival time seen
    messages: int = 0
    readings: int = 0
    rejected: int = 0
    late: int = 0  # readings older than the newest value of every metric they carried
    events: int = 0
    last_event: str | None = None
    latest: Latest = msgspec.field(default_factory=Latest)
    """The newest value of each metric (in a snapshot: metric → value)."""
    latest_ts: dict[str, int] | None = None
    """In a snapshot only: metric → the device time of its newest value (held in
    :attr:`latest` once decoded)."""
    # vehicle usage
    odometer_km: float | None = None
    odometer_ts_ms: int = 0
    km_sum: float = 0.0
    km_weight_days: float = 0.0
    # machine usage
    operating_hours: float = 0.0
    run_ts_ms: int = 0
    was_running: bool = False
    load_sum: float = 0.0
    load_weight_h: float = 0.0
    # anomaly detection: baselines per metric and open anomalies
    detectors: DetectorState = msgspec.field(default_factory=DetectorState)
    health: int = 100
    alerts: AlertState = msgspec.field(default_factory=AlertState)
    # bookkeeping
    recent: bytes | list[int] = b""
    """Identities of the newest readings (see :func:`reading_identity`), packed as
    :data:`IDENTITY` (a list of ints in snapshots of older releases, packed when decoded): a
    reading delivered twice close together (a publisher's resend, two sessions during a
    drain) counts once."""
    snapshot_ms: int = 0
    recs_mark: str = ""
    """The usage boundary at which maintenance recommendations were last asked for."""

    def __post_init__(self) -> None:
        if type(self.recent) is list:  # decoded from a snapshot of an older release
            self.recent = packed_identities(self.recent)
        if self.latest_ts is not None:  # decoded from a snapshot
            self.latest.set_times(self.latest_ts)
            self.latest_ts = None

    # -- derived figures -----------------------------------------------------------------

    @property
    def km_per_day(self) -> float | None:
        if self.km_weight_days <= 0.0:
            return None
        return self.km_sum / self.km_weight_days

    @property
    def load_ema(self) -> float | None:
        if self.load_weight_h <= 0.0:
            return None
        return self.load_sum / self.load_weight_h

    def usage_category(self, profile: DeviceProfile) -> str | None:
        rate = self.km_per_day
        if rate is None:
            return None
        if rate >= profile.usage_high_km_day:
            return "HIGH"
        if rate >= profile.usage_medium_km_day:
            return "MEDIUM"
        return "LOW"

    def is_online(self, now_ms: int, silence_ms: int) -> bool:
        return now_ms - self.last_arrival_ms <= silence_ms

    # -- updates -------------------------------------------------------------------------

    def seen_before(self, reading: Reading) -> bool:
        """True for a reading this twin has just applied: same ``ts`` and ``seq``.

        Only a reading no newer than the newest one seen can be a repeat, so the common case
        (a reading newer than everything) costs one comparison.
        """
        if reading.ts_ms > self.last_seen_ms:
            return False
        return holds_identity(cast(bytes, self.recent), reading_identity(reading))

    def remember(self, reading: Reading) -> None:
        recent = cast(bytes, self.recent) + IDENTITY.pack(reading_identity(reading))
        self.recent = recent[-RECENT_BYTES:] if len(recent) > RECENT_BYTES else recent

    def apply(self, reading: Reading, profile: DeviceProfile) -> None:
        """Fold one valid reading into the state."""
        ts = reading.ts_ms
        self.readings += 1
        if self.first_seen_ms == 0 or ts < self.first_seen_ms:
            self.first_seen_ms = ts
        if ts > self.last_seen_ms:
            self.last_seen_ms = ts
        if reading.received_ms > self.last_arrival_ms:
            self.last_arrival_ms = reading.received_ms
        if not self.latest.update(reading.values, ts):
            self.late += 1
        kind = profile.kind
        if kind == VEHICLE:
            odo = reading.values.get("odometer_km")
            if odo is not None:
                self._odometer(float(odo), ts)
        elif kind == MACHINE:
            self._machine(reading, ts, profile)

    def _odometer(self, odo: float, ts: int) -> None:
        if ts <= self.odometer_ts_ms:
            return  # late reading: usage follows event order only
        prev, prev_ts = self.odometer_km, self.odometer_ts_ms
        self.odometer_km, self.odometer_ts_ms = odo, ts
        if prev is None or odo < prev:
            return  # first sight, or a replaced / rolled-over odometer: new baseline
        dt = ts - prev_ts
        decay = math.exp(-dt / KM_PER_DAY_TAU_MS)
        self.km_sum = self.km_sum * decay + (odo - prev)
        self.km_weight_days = self.km_weight_days * decay + dt / MS_PER_DAY

    def _machine(self, reading: Reading, ts: int, profile: DeviceProfile) -> None:
        if ts <= self.run_ts_ms:
            return
        values = reading.values
        load = values.get("load_pct")
        if load is not None:
            running = load > profile.running_load_pct
        else:
            running = values.get("rpm", 0) > 0 or values.get("power_kw", 0) > 0
        dt = ts - self.run_ts_ms
        if self.run_ts_ms == 0:
            dt = 1000  # first sight: weigh the first load value as one second
        elif running and self.was_running and dt <= MAX_RUN_GAP_MS:
            self.operating_hours += dt / MS_PER_HOUR
        if load is not None:
            decay = math.exp(-dt / LOAD_TAU_MS)
            self.load_sum = self.load_sum * decay + load * dt / MS_PER_HOUR
            self.load_weight_h = self.load_weight_h * decay + dt / MS_PER_HOUR
        self.run_ts_ms = ts
        self.was_running = running

    # -- views ---------------------------------------------------------------------------

    def live_view(
        self, profile: DeviceProfile, now_ms: int, anomalies_open: int, status: str = "online"
    ) -> dict[str, str | int | float]:
        """The fields of the ``twin:{device_id}`` hash in Redis (``status``: ``online``, or
        ``silent`` once the device has gone quiet for longer than it usually does;
        ``anomalies_open`` from the detectors, which may hold the twin's state elsewhere)."""
        view: dict[str, str | int | float] = self.latest.as_dict()  # type: ignore[assignment]
        view.update(
            device_id=self.device_id,
            kind=self.kind,
            profile=self.profile,
            status=status,
            last_seen_ms=self.last_seen_ms,
            updated_ms=now_ms,
            messages=self.messages,
            readings=self.readings,
            rejected=self.rejected,
            health=self.health,
            anomalies_open=anomalies_open,
        )
        alerts_open, alert_severity = AlertEngine.open_summary(self.alerts)
        view["alerts_open"] = alerts_open
        view["alert_severity"] = alert_severity
        if self.kind == VEHICLE:
            rate = self.km_per_day
            if rate is not None:
                view["km_per_day"] = round(rate, 3)
                view["usage_category"] = self.usage_category(profile) or ""
        elif self.kind == MACHINE:
            view["operating_hours"] = round(self.operating_hours, 4)
            load = self.load_ema
            if load is not None:
                view["load_ema"] = round(load, 3)
        return view

    def position(self) -> tuple[float, float] | None:
        lat = self.latest.get("lat")
        lon = self.latest.get("lon")
        if lat is None or lon is None:
            return None
        return float(lat), float(lon)


def _to_builtin(obj: object) -> object:
    if type(obj) is Latest:
        return obj.as_dict()
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _from_builtin(kind: type, obj: object) -> object:
    if kind is Latest and isinstance(obj, dict):
        return Latest.of(obj)
    raise NotImplementedError(f"cannot decode {kind.__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_to_builtin)
_decoder = msgspec.json.Decoder(TwinState, dec_hook=_from_builtin)


def encode_state(state: TwinState) -> bytes:
    """The snapshot: latest values and their times as two maps of metric → value."""
    fields = msgspec.structs.asdict(state)
    fields["latest_ts"] = state.latest.times()
    return _encoder.encode(fields)


def decode_state(raw: bytes | str) -> TwinState:
    """A twin from its snapshot, taking no more memory than one that never left: the names
    of its kind and profile shared with every other twin (so are its metric names, see
    :mod:`twin.latest`)."""
    state = _decoder.decode(raw)
    state.kind, state.profile = sys.intern(state.kind), sys.intern(state.profile)
    return state
