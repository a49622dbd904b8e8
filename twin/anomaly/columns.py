"""The detector layers over a whole batch at once: numpy updates of every metric track a batch
touches, the same arithmetic as the scalar layers in :mod:`twin.anomaly.layers` (which stay
the reference: a test runs both on the same streams).

A batch is cut into rounds: round *k* holds the *k*-th reading of each device in the batch, so
a device's readings stay in order while every round is one vectorised step over all devices.
Per reading, only what is rare runs in Python: thresholds outside the safe band, GPS jumps,
dropouts, and the transitions (an episode opening or closing) that become
:class:`~twin.anomaly.records.Anomaly` events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import numpy as np

from twin.anomaly.column_events import DETECTOR, RoundEvents
from twin.anomaly.column_layers import RULES, Round, VectorLayers
from twin.anomaly.column_plans import Plans
from twin.anomaly.config import FLEET, DetectorConfig
from twin.anomaly.detectors import AnomalyDetectors, Observation
from twin.anomaly.device_rows import DeviceRows
from twin.anomaly.episodes import Episodes
from twin.anomaly.records import Anomaly, Severity
from twin.anomaly.round_values import Item, Layout, RoundValues, related_values
from twin.anomaly.scores import deviation_score
from twin.anomaly.state import DetectorState, Episode, packed_rows, unpacked_rows
from twin.anomaly.track_columns import PLAN_FLOATS, TrackColumns, counted
from twin.latest import shared_names
from twin.profiles import DeviceProfile


@dataclass(slots=True)
class _Device:
    st: DetectorState
    rows: DeviceRows = field(default_factory=DeviceRows)
    """Metric → track row."""
    metric_open: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Episode key (``level:rpm``) → (layer, row) of the metric layers' open episodes."""
    layout: Layout | None = None
    """The rows of the metrics its last reading carried (most readings carry the same)."""


def _name(profile: DeviceProfile | None) -> str:
    return profile.name if profile is not None else ""


class ColumnarDetectors:
    """Every twin's detector state of one worker as columns, judged a batch at a time."""

    def __init__(self, config: DetectorConfig = FLEET) -> None:
        self.config = config
        self.scalar = AnomalyDetectors(config)
        """The scalar layers: thresholds, position and dropout run per reading through them."""
        self.version = config.version
        self.tracks = TrackColumns()
        self._devices: dict[str, _Device] = {}
        self._critical = {"level": 2 * config.level_hi, "rate": 2 * config.rate_hi}
        self._plans = Plans(self.scalar)
        self._metric_names: list[str] = []
        """Track row → its metric (rows are numbered in order and never reused)."""
        self._relations = False
        """A profile that names ``relations`` has been seen (then each round looks for them)."""
        self.layers = VectorLayers(config, self.tracks)

    # -- state in and out ----------------------------------------------------------------

    def _device(self, device_id: str) -> _Device:
        dev = self._devices.get(device_id)
        if dev is None:
            dev = self._devices[device_id] = _Device(DetectorState())
        return dev

    def load(self, device_id: str, state: DetectorState) -> None:
        """Take a twin's scalar state (from its snapshot) into the columns."""
        dev = self._devices[device_id] = _Device(
            DetectorState(
                last_ts=state.last_ts,
                interval_ms=state.interval_ms,
                readings=state.readings,
                raised=state.raised,
                relation=msgspec.structs.replace(state.relation) if state.relation else None,
            )
        )
        if state.packed_metrics:  # a block of rows, written as one
            metrics = shared_names(state.packed_metrics)
            first = self.tracks.add_block(len(metrics))
            self._metric_names += metrics
            dev.rows.take_block(first, metrics)
            self.tracks.load_block(first, unpacked_rows(state))
        for metric, track in state.tracks.items():  # a snapshot of an older release
            row = self._new_row(metric)
            dev.rows.add(metric, row)
            self.tracks.load(row, track)
        if state.seasons:
            self.layers.load_seasons(state.seasons, dev.rows.get)
        for key, ep in state.open.items():
            layer, _, metric = key.partition(":")
            held = dev.rows.get(metric) if layer in DETECTOR else None
            if held is not None:
                self.tracks.load_episode(held, layer, ep)
                dev.metric_open[key] = (layer, held)
            else:
                dev.st.open[key] = ep

    def state(self, device_id: str) -> DetectorState:
        """A twin's state as its snapshot holds it (tracks packed)."""
        dev = self._device(device_id)
        st = dev.st
        pairs = list(dev.rows.items())
        rows = self.tracks.rows([row for _, row in pairs])
        opened: dict[str, Episode] = dict(st.open)
        for key, (layer, row) in dev.metric_open.items():
            ep = self.tracks.episode(row, layer)
            assert ep is not None
            opened[key] = msgspec.structs.replace(ep)
        seasons = self.layers.seasons_of(pairs)
        return DetectorState(open=opened, last_ts=st.last_ts, interval_ms=st.interval_ms,
                             readings=st.readings, raised=st.raised, packed=packed_rows(rows),
                             packed_metrics=tuple(m for m, _ in pairs), seasons=seasons or None,
                             relation=msgspec.structs.replace(st.relation)
                             if st.relation else None)  # fmt: skip

    def check_silence(self, device_id: str, now_ms: int) -> list[Anomaly]:
        return self.scalar.check_silence(self._device(device_id).st, device_id, now_ms)

    def silence_limits_ms(self, device_ids: Sequence[str]) -> list[int | None]:
        limit, devices = self.scalar.silence_limit_ms, self._devices
        return [None if (dev := devices.get(d)) is None else limit(dev.st) for d in device_ids]

    def open_count(self, device_id: str) -> int:
        dev = self._device(device_id)
        return len(dev.st.open) + len(dev.metric_open)

    def health(self, device_id: str) -> int:
        """100 with nothing open; lower the worse the worst open anomaly is."""
        dev = self._device(device_id)
        if not dev.st.open and not dev.metric_open:  # nearly every reading
            return 100
        scores = [ep.score for ep in dev.st.open.values()]
        critical = any(ep.severity == Severity.CRITICAL for ep in dev.st.open.values())
        for layer, row in dev.metric_open.values():
            ep = self.tracks.episodes[(layer, row)]
            scores.append(ep.score)
            critical |= ep.severity == Severity.CRITICAL
        if not scores:
            return 100
        return max(0, round(100 * (1 - max(scores)) - (20 if critical else 0)))

    # -- a batch -------------------------------------------------------------------------

    def observe_batch(self, items: Sequence[Item]) -> list[Observation]:
        """Judge every reading of the batch, in order per device; one observation each."""
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for i, (device_id, _, _, _) in enumerate(items):
            k = seen.get(device_id, 0)
            seen[device_id] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(i)
        out: list[Observation | None] = [None] * len(items)
        for members in rounds:
            self._round(items, members, out)
        return [o for o in out if o is not None]

    def _round(self, items: Sequence[Item], members: list[int], out: list) -> None:
        acc = RoundValues()
        context: list[tuple[int, _Device, Episodes]] = []
        at_rest: list[bool] = []
        for i in members:
            device_id, profile, ts_ms, values = items[i]
            dev = self._device(device_id)
            eps = self._episodes(dev, device_id)
            at_rest.append(self._before(dev, eps, profile, ts_ms, values, acc))
            context.append((i, dev, eps))
        peaks = np.zeros(len(members))
        related = (
            related_values(context, items, self.tracks.i["last_ts"]) if self._relations else None
        )
        positions, steady = self._peek(acc)
        rnd = self._take(acc, context, items, at_rest, steady)
        if len(rnd.rows):
            events = RoundEvents(
                self.tracks,
                self.config.hold,
                rnd,
                lambda slot: (context[slot][2], context[slot][1].metric_open),
                self._metric_names.__getitem__,
            )
            self.layers.run(rnd, events, peaks)
        relate = self.scalar.relate
        for slot, peak in enumerate(peaks.tolist()):
            i, dev, eps = context[slot]
            shown = 0.0
            if related and slot in related:
                _, profile, ts_ms, values = items[i]
                assert profile is not None  # a relation is a profile's
                shown = relate(dev.st, eps, ts_ms, related[slot], profile,
                               values.get(profile.driver) if profile.driver else None)  # fmt: skip
            if positions:
                was = positions.get(slot)
                if was is not None:
                    _, _, ts_ms, values = items[i]
                    if "lat" in values and "lon" in values:
                        self.scalar.position.judge(dev.st, was, values["lat"], values["lon"],
                                                   ts_ms, eps)  # fmt: skip
            flagged = bool(dev.st.open) or bool(dev.metric_open)
            score = max(deviation_score(peak), eps.opened, shown)
            out[i] = Observation(eps.events, flagged, score)

    def _episodes(self, dev: _Device, device_id: str) -> Episodes:
        return Episodes(dev.st, device_id, hold=self.config.hold, version=self.version,
                        critical_z=self.scalar.critical_z)  # fmt: skip

    def _before(
        self,
        dev: _Device,
        eps: Episodes,
        profile: DeviceProfile | None,
        ts_ms: int,
        values: Mapping[str, float],
        acc: RoundValues,
    ) -> bool:
        """The reading's per-device steps before its values are judged; its values into the
        round. Returns whether the machine stands still (low thresholds do not apply)."""
        st = dev.st
        self.scalar.dropout.observe(st, ts_ms, eps)
        st.last_ts = max(st.last_ts, ts_ms)
        st.readings += 1
        keys = tuple(values)
        layout = dev.layout
        if layout is None or layout.keys != keys or layout.profile != _name(profile):
            layout = dev.layout = self._layout(dev, profile, keys)
        drow = layout.driver
        dx = values[self._metric_names[drow]] if drow is not None else None
        acc.rows.extend(layout.rows)
        acc.x.extend(values.values())
        acc.counts.append(len(keys))
        acc.ts.append(ts_ms)
        acc.dx.append(0.0 if dx is None else dx)
        acc.dx_present.append(dx is not None)
        acc.lat.append(-1 if layout.lat is None or layout.lon is None else layout.lat)
        acc.lon.append(-1 if layout.lon is None else layout.lon)
        acc.driver.append(-1 if drow is None else drow)
        acc.bare.append(profile is None)
        acc.interval.append(st.interval_ms)
        return profile is not None and dx is not None and dx <= profile.running_load_pct

    def _peek(self, acc: RoundValues) -> tuple[dict[int, tuple[float, float, int]], np.ndarray]:
        """What the round's readings need of their tracks before any of them moves (a device
        is in a round once, so reading every row up front is reading each in turn): the
        previous position of those that carry one (for the GPS jump check), and per reading
        whether the driver metric holds steady (rate baselines learn only then)."""
        cols = self.tracks
        last, mean, n, last_ts = cols.f["last"], cols.f["mean"], cols.i["n"], cols.i["last_ts"]
        ts = np.asarray(acc.ts, dtype=np.int64)
        la = np.asarray(acc.lat, dtype=np.int64)
        lo = np.asarray(acc.lon, dtype=np.int64)
        dr = np.asarray(acc.driver, dtype=np.int64)
        positions: dict[int, tuple[float, float, int]] = {}
        moved = np.flatnonzero(la >= 0)
        if len(moved):
            rows = la[moved]
            had = (n[rows] > 0) & (ts[moved] > last_ts[rows])
            slots, rows = moved[had], rows[had]
            was = zip(last[rows].tolist(), last[lo[slots]].tolist(), last_ts[rows].tolist(),
                      strict=True)  # fmt: skip
            positions = dict(zip(slots.tolist(), was, strict=True))
        steady = np.ones(len(ts), dtype=np.bool_)
        driven = np.flatnonzero(dr >= 0)
        if len(driven):
            rows = dr[driven]
            dx = np.asarray(acc.dx, dtype=np.float64)[driven]
            near = np.abs(dx - last[rows]) <= np.maximum(5.0, 0.1 * np.abs(mean[rows]))
            steady[driven] = (n[rows] == 0) | near
        return positions, steady

    def _new_row(self, metric: str) -> int:
        row = self.tracks.add()
        self._metric_names.append(metric)
        assert len(self._metric_names) == row + 1
        return row

    def _layout(self, dev: _Device, profile: DeviceProfile | None, keys: tuple[str, ...]) -> Layout:
        """Rows for a reading's metrics (new tracks made), and what the profile says of each."""
        for metric in keys:
            if metric not in dev.rows:
                dev.rows.add(metric, self._new_row(metric))
        keys, rows = dev.rows.span(keys)
        at: slice | np.ndarray
        if type(rows) is range:  # the usual case: tracks made together
            at = slice(rows.start, rows.stop)
        else:
            at = np.asarray(rows, dtype=np.int64)
        f, i = self.tracks.f, self.tracks.i
        for name, values in self._plans.of(profile, keys).items():
            (f if name in PLAN_FLOATS else i)[name][at] = values
        opened = dev.st.open
        i["rule_open"][at] = [("rule:" + m) in opened for m in keys] if opened else 0
        position = "lat" in keys and "lon" in keys
        driver = profile.driver if profile is not None else None
        self._relations |= profile is not None and bool(profile.relations)
        return Layout(
            keys,
            _name(profile),
            rows,
            dev.rows["lat"] if position else None,
            dev.rows["lon"] if position else None,
            dev.rows[driver] if driver is not None and driver in keys else None,
        )

    def _take(
        self,
        acc: RoundValues,
        context: list,
        items: Sequence[Item],
        at_rest: list[bool],
        steady: np.ndarray,
    ) -> Round:
        """The round's values as arrays: late ones dropped, thresholds judged where a value
        leaves its safe band, operating-state metrics recorded, the rest for the layers."""
        cols = self.tracks
        f, i = cols.f, cols.i
        rows = np.asarray(acc.rows, dtype=np.int64)
        x = np.asarray(acc.x, dtype=np.float64)
        counts = np.asarray(acc.counts, dtype=np.int64)
        ts = np.repeat(np.asarray(acc.ts, dtype=np.int64), counts)
        reading = np.repeat(np.arange(len(counts)), counts)
        keep = ts > i["last_ts"][rows]  # late or repeated: baselines move forward only
        band = (x <= f["low"][rows]) | (x >= f["high"][rows]) | (i["rule_open"][rows] == 1)
        for k in np.flatnonzero(keep & (i["has_spec"][rows] == 1) & band):
            self._threshold(int(k), int(reading[k]), context, items, at_rest, rows, x)
        watch = i["watch"][rows]
        rules = keep & (watch == RULES)
        rr = rows[rules]
        i["n"][rr] = counted(i["n"][rr])
        f["last"][rr] = x[rules]
        i["last_ts"][rr] = ts[rules]
        take = keep & ~rules
        tr = rows[take]
        present = np.repeat(np.asarray(acc.dx_present, dtype=np.bool_), counts)[take]
        has_dx = present & (i["is_driver"][tr] == 0)
        return Round(
            rows=tr,
            x=x[take],
            dx=np.repeat(np.asarray(acc.dx, dtype=np.float64), counts)[take],
            has_dx=has_dx,
            watch=watch[take],
            steady=np.repeat(steady, counts)[take],
            ts=ts[take],
            reading=reading[take],
            special=i["special"][tr] == 1,
            position=i["position"][tr] == 1,
            resting=np.repeat(np.asarray(at_rest, dtype=np.bool_), counts)[take] & has_dx,
            bare=np.repeat(np.asarray(acc.bare, dtype=np.bool_), counts)[take],
            interval=np.repeat(np.asarray(acc.interval, dtype=np.float64), counts)[take],
        )

    def _threshold(
        self,
        k: int,
        slot: int,
        context: list,
        items: Sequence[Item],
        at_rest: list[bool],
        rows: np.ndarray,
        x: np.ndarray,
    ) -> None:
        i, dev, eps = context[slot]
        _, profile, ts_ms, _ = items[i]
        row = int(rows[k])
        metric = self._metric_names[row]
        spec = self.scalar.plan(profile)[metric][1]
        assert spec is not None
        driven = at_rest[slot] and not self.tracks.i["is_driver"][row]
        self.scalar.thresholds.judge(spec, metric, float(x[k]), ts_ms, eps, driven)
        self.tracks.i["rule_open"][row] = ("rule:" + metric) in dev.st.open
