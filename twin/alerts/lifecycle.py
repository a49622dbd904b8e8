"""From rule verdicts to alerts: open once per problem, escalate, re-trigger, auto-resolve.

Per device and rule the twin keeps an ``AlertTrack`` (in its state, so in its snapshots):

    idle ─ condition ─▶ pending ─ held sustain_s ─▶ open ─ clear ─▶ clearing ─ clear_s ─▶ idle
                          │ clear                     ▲                │ condition again
                          ▼                           └── re-triggered ┘  (occurrences + 1)
                         idle

Everything runs in device (event) time and only forwards: a reading no newer than the last one a
rule judged changes nothing, so replayed or redelivered telemetry never opens a second alert.
An alert's id is ``{device}:{rule}:{first crossing ms}``, the same however often it is computed.
Humans acknowledge, assign and resolve in the store; the engine only opens, escalates,
re-triggers and auto-resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from twin.alerts.book import RuleBook
from twin.alerts.records import AlertTransition
from twin.alerts.rules import (
    Rule,
    Verdict,
    dtc_severity,
    geofence,
    rate,
    severity_rank,
    threshold,
)
from twin.anomaly.records import Anomaly

CLEARING_CHECK_MS = 60_000
"""A clearing alert of a silent device is looked at again this long after it began clearing
(device time): its clear time may have run out with no reading to notice."""


class AlertTrack(msgspec.Struct, array_like=True, gc=False):
    phase: str = "idle"
    since_ms: int = 0
    judged_ms: int = 0
    alert_id: str = ""
    opened_ms: int = 0
    severity: str = ""
    peak: str = ""
    occurrences: int = 0
    observed: float | None = None
    detail: str = ""


class AlertState(msgspec.Struct, kw_only=True, gc=False):
    tracks: dict[str, AlertTrack] = msgspec.field(default_factory=dict)
    previous: dict[str, tuple[float, int]] = msgspec.field(default_factory=dict)
    """Per metric watched by a rate rule: the last value and its time."""
    anomaly_times: list[int] = msgspec.field(default_factory=list)
    book_version: int = -1
    """The rule book's version when the tracks were last checked against it."""


_NOT_ACTIVE = Verdict(False)


def _judged_idle(
    tracks: dict[str, AlertTrack], rule_id: str, tr: AlertTrack | None, ts_ms: int
) -> None:
    """What the state machine does with a clear verdict on an idle alert: note the time."""
    if tr is None:
        tracks[rule_id] = AlertTrack(judged_ms=ts_ms)
    elif ts_ms > tr.judged_ms:
        tr.judged_ms = ts_ms


class AlertEngine:
    def __init__(self, book: RuleBook) -> None:
        self.book = book

    # -- inputs --------------------------------------------------------------------------

    def on_reading(
        self,
        st: AlertState,
        device_id: str,
        profile: str,
        ts_ms: int,
        values: Mapping[str, float],
    ) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        if st.book_version != self.book.version:
            self._retire(st, device_id, profile, ts_ms, out)
        plan, tracks = self.book.reading_rules(device_id, profile), st.tracks
        for rule, trip in plan.judged:
            verdict: Verdict | None = None
            kind = rule.type
            if kind == "threshold":
                x = values.get(rule.metric)
                if x is None:
                    continue
                tr = tracks.get(rule.id)
                if tr is None or tr.phase == "idle":
                    if not (x >= trip if rule.above else x <= trip):  # nearly every reading
                        _judged_idle(tracks, rule.id, tr, ts_ms)
                        continue
                    verdict = threshold(rule, x, False)
                else:
                    verdict = threshold(rule, x, tr.phase in ("pending", "open"))
            elif kind == "no_data":  # a reading: the device is not silent
                tr = tracks.get(rule.id)
                if tr is None or tr.phase == "idle":
                    _judged_idle(tracks, rule.id, tr, ts_ms)
                    continue
                verdict = _NOT_ACTIVE
            elif kind == "rate":
                verdict = self._rate(st, rule, ts_ms, values)
            else:
                lat, lon = values.get("lat"), values.get("lon")
                if lat is not None and lon is not None:
                    verdict = geofence(rule, lat, lon)
            if verdict is not None:
                self._step(st, rule, device_id, ts_ms, verdict, out)
        for metric in plan.rate_metrics:
            if metric in values:
                st.previous[metric] = (values[metric], ts_ms)
        return out

    def _rate(
        self, st: AlertState, rule: Rule, ts_ms: int, values: Mapping[str, float]
    ) -> Verdict | None:
        x = values.get(rule.metric)
        prev = st.previous.get(rule.metric)
        if x is None or prev is None or ts_ms <= prev[1]:
            return None
        per_min = (x - prev[0]) / ((ts_ms - prev[1]) / 60_000)
        return rate(rule, per_min, values.get(rule.when_metric) if rule.when_metric else None)

    def on_event(
        self, st: AlertState, device_id: str, profile: str, ts_ms: int, kind: str, code: str
    ) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        if kind != "dtc" or not code:
            return out
        for rule in self.book.applicable(device_id, profile):
            if rule.type == "dtc":
                severity = dtc_severity(rule, code)
                self._step(st, rule, device_id, ts_ms, Verdict(True, severity, None, code), out)
                # a code is a moment: the alert clears clear_s after the last code
                self._step(st, rule, device_id, ts_ms, Verdict(False), out, same_instant=True)
        return out

    def on_anomalies(
        self, st: AlertState, device_id: str, profile: str, ts_ms: int, anomalies: list[Anomaly]
    ) -> list[AlertTransition]:
        out: list[AlertTransition] = []
        applicable = self.book.applicable(device_id, profile)
        rules = [r for r in applicable if r.type == "anomaly"]
        if not rules:
            return out
        # a limit breach on a metric that a threshold rule watches is that rule's alert:
        # one problem, one alert
        owned = {r.metric for r in applicable if r.type == "threshold"}
        for rule in rules:
            hits = [
                a
                for a in anomalies
                if a.ended_ms is None
                and not (a.detector == "rule" and a.metric in owned)
                and severity_rank(_alert_severity(a.severity)) >= severity_rank(rule.min_severity)
                and a.score >= rule.min_score
                and (not rule.metric or a.metric == rule.metric)
                and (not rule.detector or a.detector == rule.detector)
            ]
            if rule.count > 1:
                horizon = ts_ms - int(rule.window_s * 1000)
                st.anomaly_times = [t for t in st.anomaly_times if t > horizon]
                st.anomaly_times.extend(a.started_ms for a in hits)
                active = len(st.anomaly_times) >= rule.count
            else:
                active = bool(hits)
            if active:
                worst = max(hits, key=lambda a: a.score) if hits else None
                detail = f"{worst.detector} {worst.kind} {worst.metric}" if worst else ""
                verdict = Verdict(True, rule.severity, worst.observed if worst else None, detail)
                self._step(st, rule, device_id, ts_ms, verdict, out)
                self._step(st, rule, device_id, ts_ms, Verdict(False), out, same_instant=True)
        return out

    def on_silence(
        self, st: AlertState, device_id: str, profile: str, now_ms: int, last_ms: int
    ) -> list[AlertTransition]:
        """No-data rules, judged against a clock (``now_ms`` in the device's time)."""
        out: list[AlertTransition] = []
        for rule in self.book.applicable(device_id, profile):
            if rule.type == "no_data" and last_ms and now_ms - last_ms > rule.silence_s * 1000:
                detail = f"silent for {(now_ms - last_ms) / 1000:.0f} s"
                self._step(st, rule, device_id, last_ms + int(rule.silence_s * 1000),
                           Verdict(True, rule.severity, None, detail), out)  # fmt: skip
        return out

    def silence_limit_ms(
        self, st: AlertState, device_id: str, profile: str, last_seen_ms: int
    ) -> int | None:
        """The shortest silence that would open a no-data alert not already open, or let a
        clearing alert clear (``last_seen_ms``: the device's newest event time)."""
        limit: int | None = None
        tracks = st.tracks
        for rule_id, silence_ms in self.book.silences(device_id, profile):
            track = tracks.get(rule_id)
            if (track is None or track.phase == "idle") and (limit is None or silence_ms < limit):
                limit = silence_ms
        for t in tracks.values():
            if t.phase == "clearing":
                clears = t.since_ms - last_seen_ms + CLEARING_CHECK_MS
                if limit is None or clears < limit:
                    limit = clears
        return limit

    # -- the state machine ---------------------------------------------------------------

    def _step(
        self,
        st: AlertState,
        rule: Rule,
        device_id: str,
        ts_ms: int,
        verdict: Verdict,
        out: list[AlertTransition],
        same_instant: bool = False,
    ) -> None:
        tr = st.tracks.get(rule.id)
        if tr is None:
            tr = st.tracks[rule.id] = AlertTrack()
        if ts_ms < tr.judged_ms or (ts_ms == tr.judged_ms and not same_instant and tr.judged_ms):
            return  # replayed or late: event time only moves forward
        tr.judged_ms = ts_ms
        emit = _emitter(rule.id, rule.type, device_id, tr, ts_ms, out)
        if verdict.active:
            if tr.phase == "idle":
                tr.phase, tr.since_ms = "pending", ts_ms
                tr.severity = tr.peak = verdict.severity or rule.severity
            if tr.phase == "pending":
                if ts_ms - tr.since_ms >= rule.sustain_s * 1000:
                    tr.phase = "open"
                    tr.alert_id = f"{device_id}:{rule.id}:{tr.since_ms}"
                    tr.opened_ms, tr.occurrences = tr.since_ms, 1
                    tr.observed, tr.detail = verdict.observed, verdict.detail
                    _raise(tr, verdict.severity)
                    emit("opened")
                else:
                    _raise(tr, verdict.severity)
                return
            if tr.phase == "clearing":
                tr.phase = "open"
                tr.occurrences += 1
                tr.observed, tr.detail = verdict.observed, verdict.detail
                escalated = _raise(tr, verdict.severity)
                emit("escalated" if escalated else "retriggered")
                return
            if verdict.severity and severity_rank(verdict.severity) > severity_rank(tr.severity):
                tr.observed, tr.detail = verdict.observed, verdict.detail
                _raise(tr, verdict.severity)
                emit("escalated")
            return
        # the condition does not hold
        if tr.phase == "pending":
            tr.phase = "idle"
        elif tr.phase == "open":
            tr.phase, tr.since_ms = "clearing", ts_ms
            if rule.clear_s <= 0:
                _resolve(tr, emit)
        elif tr.phase == "clearing" and ts_ms - tr.since_ms >= rule.clear_s * 1000:
            _resolve(tr, emit)

    def expire(
        self, st: AlertState, device_id: str, profile: str, now_ms: int
    ) -> list[AlertTransition]:
        """Resolve alerts whose clear time has passed although no reading came to notice."""
        out: list[AlertTransition] = []
        if st.book_version != self.book.version:
            self._retire(st, device_id, profile, now_ms, out)
        by_id = {r.id: r for r in self.book.rules}
        for rule_id, tr in st.tracks.items():
            rule = by_id.get(rule_id)
            if rule is None or tr.phase != "clearing":
                continue
            if now_ms - tr.since_ms >= rule.clear_s * 1000:
                _resolve(tr, _emitter(rule.id, rule.type, device_id, tr, now_ms, out))
        return out

    def _retire(
        self, st: AlertState, device_id: str, profile: str, ts_ms: int, out: list[AlertTransition]
    ) -> None:
        """Rules deleted, disabled or overridden since this device was last judged: their open
        alerts resolve (nothing would ever judge them again) and their tracks go."""
        st.book_version = self.book.version
        if not st.tracks:
            return
        live = {r.id for r in self.book.applicable(device_id, profile)}
        types = {r.id: r.type for r in self.book.rules}
        for rule_id in [rid for rid in st.tracks if rid not in live]:
            tr = st.tracks.pop(rule_id)
            if tr.phase in ("open", "clearing"):
                tr.detail = "the rule no longer applies"
                at = max(ts_ms, tr.judged_ms)
                _resolve(tr, _emitter(rule_id, types.get(rule_id, ""), device_id, tr, at, out))

    @staticmethod
    def open_summary(st: AlertState) -> tuple[int, str]:
        """How many alerts are open on the device, and the highest severity among them."""
        open_ = [t for t in st.tracks.values() if t.phase in ("open", "clearing")]
        if not open_:
            return 0, ""
        return len(open_), max((t.severity for t in open_), key=severity_rank)


def _alert_severity(anomaly_severity: str) -> str:
    return "critical" if anomaly_severity == "critical" else "warning"


def _raise(tr: AlertTrack, severity: str) -> bool:
    if severity and severity_rank(severity) > severity_rank(tr.severity):
        tr.severity = severity
        if severity_rank(severity) > severity_rank(tr.peak):
            tr.peak = severity
        return True
    return False


def _resolve(tr: AlertTrack, emit: Callable[[str], None]) -> None:
    emit("resolved")
    tr.phase, tr.alert_id, tr.occurrences, tr.severity, tr.peak = "idle", "", 0, "", ""


def _emitter(
    rule_id: str,
    rule_type: str,
    device_id: str,
    tr: AlertTrack,
    ts_ms: int,
    out: list[AlertTransition],
) -> Callable[[str], None]:
    def emit(transition: str) -> None:
        out.append(
            AlertTransition(
                alert_id=tr.alert_id,
                device_id=device_id,
                rule_id=rule_id,
                rule_type=rule_type,
                transition=transition,
                severity=tr.severity,
                peak_severity=tr.peak,
                occurrences=tr.occurrences,
                first_seen_ms=tr.opened_ms,
                last_seen_ms=ts_ms,
                at_ms=ts_ms,
                observed=tr.observed,
                detail=tr.detail,
            )
        )

    return emit
