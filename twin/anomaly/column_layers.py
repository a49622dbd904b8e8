"""The metric layers of :mod:`twin.anomaly.layers`, vectorised: one numpy step updates every
track a round of readings touches, with the same arithmetic in the same order as the scalar
layers (which stay the reference: a test runs both on the same streams). Only transitions (an
episode opening or closing) run per value in Python."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from twin.anomaly.column_events import RoundEvents
from twin.anomaly.column_shift import VectorShift
from twin.anomaly.config import DetectorConfig
from twin.anomaly.records import Severity
from twin.anomaly.scores import deviation_score, ratio_score
from twin.anomaly.season import Season, Seasonal, copied
from twin.anomaly.shift import Shift
from twin.anomaly.tail import GAUSS_EXCESS, GAUSS_SHARE, LEVEL_TAIL, RATE_TAIL, Tail
from twin.anomaly.track_columns import TrackColumns, counted

ALL, RATE, FALLING, RULES = 0, 1, 2, 3
WATCH = {"all": ALL, "rate": RATE, "falling": FALLING, "rules": RULES}


@dataclass
class Round:
    """The values of one round that the metric layers judge, as arrays (one entry each)."""

    rows: np.ndarray
    x: np.ndarray
    dx: np.ndarray
    has_dx: np.ndarray
    watch: np.ndarray
    steady: np.ndarray
    ts: np.ndarray
    reading: np.ndarray
    """The reading (its slot in the round) each value belongs to."""
    special: np.ndarray
    """A position or counter metric: never judged by its level."""
    position: np.ndarray
    resting: np.ndarray
    """The machine stands still and this is not its driver (see the scalar ``Sample``)."""
    bare: np.ndarray
    """The device has no profile: its metrics may have a season."""
    interval: np.ndarray
    """The device's usual interval (ms)."""


@dataclass(frozen=True)
class RateStep:
    """What the rate layer worked out for a round, for the drift and for learning."""

    r: np.ndarray
    rz: np.ndarray
    ok: np.ndarray
    """The value has a rate (a previous reading, time passed, a steady operating point)."""
    suspect: np.ndarray
    feed: np.ndarray
    """Feeds its deviation to the drift layer (metrics watched for a trend)."""
    rmean: np.ndarray
    last: np.ndarray
    """The rate's baseline and the previous value, before this round."""


class VectorLayers:
    """Level, rate, drift and flatline over a round; hyperparameters from the configuration,
    state in the :class:`TrackColumns`."""

    def __init__(self, config: DetectorConfig, tracks: TrackColumns) -> None:
        self.config = config
        self.tracks = tracks
        self._critical = {"level": 2 * config.level_hi, "rate": 2 * config.rate_hi}
        self.shift = VectorShift(Shift.from_config(config), tracks, config.hold)
        self.tail = Tail.from_config(config)
        self.season = Seasonal.from_config(config)
        self.seasons: dict[int, Season] = {}
        """Track row → its season (metrics of devices without a profile; rare, so per value)."""

    def run(self, rnd: Round, events: RoundEvents, peaks: np.ndarray) -> None:
        """Every layer over the round's values: each scores, then those that learn do.
        ``peaks``: per reading, the largest deviation that nothing reports yet."""
        cfg = self.config
        rows, x, dx, has_dx, watch = rnd.rows, rnd.x, rnd.dx, rnd.has_dx, rnd.watch
        n = self.tracks.i["n"][rows]
        warm = n >= cfg.warmup_readings
        events.quiet = cfg.warmup_quiet & ~warm
        off = self._offsets(rnd)
        expected, level_feed, z, judged = self._level(rnd, n, warm, events, peaks, off)
        suspect = self.shift.score(rnd, n, judged, expected, events, peaks)
        rate = self._rate(rnd, n, events)
        fed = rate.feed
        self._drift(events, level_feed | fed, np.where(fed, rate.rz, z), np.where(fed, rate.r, x),
                    np.where(fed, rate.rmean, expected))  # fmt: skip
        self._flatline(events, n > 0, x, rate.last, n, warm, watch, has_dx, dx)
        learnt = self._learn(rnd, n, expected, off, rate.r, rate.ok, rate.suspect, suspect)
        if self.season.on:
            self._learn_seasons(rnd, judged & rnd.bare, learnt, expected, off)

    def seasons_of(self, pairs: Iterable[tuple[str, int]]) -> dict[str, Season]:
        """The seasons of a device's (metric, row) pairs, copied for its snapshot."""
        held = self.seasons
        return {m: copied(held[row]) for m, row in pairs if row in held} if held else {}

    def load_seasons(
        self, seasons: Mapping[str, Season], row_of: Callable[[str], int | None]
    ) -> None:
        for metric, season in seasons.items():
            row = row_of(metric)
            if row is not None:
                self.seasons[row] = copied(season)

    def _offsets(self, rnd: Round) -> np.ndarray:
        """Per value, its season's offset where one is in use (zero elsewhere)."""
        off = np.zeros(len(rnd.rows))
        seasons = self.seasons
        if not seasons:
            return off
        offset, ts = self.season.offset, rnd.ts
        for k in np.flatnonzero(rnd.bare):
            se = seasons.get(int(rnd.rows[k]))
            if se is not None:
                off[k] = offset(se, int(ts[k]))
        return off

    def _learn_seasons(
        self, rnd: Round, judged: np.ndarray, learnt: np.ndarray, expected: np.ndarray,
        off: np.ndarray,
    ) -> None:  # fmt: skip
        """What the scalar ``AnomalyDetectors._season`` does, value by value."""
        seasons, season = self.seasons, self.season
        for k in np.flatnonzero(judged):
            row, ts = int(rnd.rows[k]), int(rnd.ts[k])
            se = seasons.get(row)
            if se is None:
                se = seasons[row] = Season(ts)
            elif se.on and not learnt[k]:
                continue
            x = float(rnd.x[k])
            r = x - float(expected[k]) + float(off[k])
            if season.learn(se, ts, x, r, float(rnd.interval[k])):
                f = self.tracks.f
                f["mean"][row], f["var"][row] = se.level, se.daily
                f["tail_r"][row], f["tail_m"][row] = GAUSS_SHARE, GAUSS_EXCESS

    def _level(
        self, rnd: Round, n: np.ndarray, warm: np.ndarray, events: RoundEvents,
        peaks: np.ndarray, off: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """The value's distance from its baseline, at the current operating point when there
        is a driver; returns the expectation, which values feed the drift, the deviation and
        which values were judged."""
        cfg, f = self.config, self.tracks.f
        rows, x, dx, has_dx = rnd.rows, rnd.x, rnd.dx, rnd.has_dx

        mean, var, res = f["mean"][rows], f["var"][rows], f["res"][rows]
        vx, cxy, mx, rv = f["vx"][rows], f["cxy"][rows], f["mx"][rows], f["rv"][rows]
        floor = np.maximum(np.maximum(cfg.abs_floor, cfg.rel_floor * np.abs(mean)), res)
        regress = has_dx & (vx > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = np.where(regress, mean + cxy / vx * (dx - mx), mean + off)
            sd = np.where(regress, np.sqrt(rv), np.sqrt(var)) + floor
            z = np.where(n > 0, (x - expected) / sd, 0.0)
        judged = warm & rnd.steady & (rnd.watch == ALL) & ~rnd.special
        az = self.tail.columns(f, LEVEL_TAIL, rows, np.abs(z), n, judged,
                                     judged & ~self.tracks.open["level"][rows])  # fmt: skip
        new = judged & ~self.tracks.open["level"][rows]
        np.maximum.at(peaks, rnd.reading[new], az[new])
        self._episode_step(events, "level", judged, az, expected, x, z > 0,
                           ("high", "low"), cfg.level_lo, cfg.level_hi, cfg.level_instant,
                           cfg.level_persist, "level_run")  # fmt: skip
        feed = judged if cfg.level_drift else np.zeros(len(rows), dtype=np.bool_)
        return expected, feed, z, judged

    def _rate(self, rnd: Round, n: np.ndarray, events: RoundEvents) -> RateStep:
        """The rate of change per second against its baseline."""
        cfg, f, i = self.config, self.tracks.f, self.tracks.i
        rows, x, ts, watch = rnd.rows, rnd.x, rnd.ts, rnd.watch
        res = f["res"][rows]
        last, last_ts = f["last"][rows], i["last_ts"][rows]
        has_prev = n > 0
        step = np.abs(x - last)
        lower = has_prev & (step > 0) & ((res == 0) | (step < res))
        res = np.where(lower, step, res)
        f["res"][rows] = res
        dt = (ts - last_ts) / 1000.0
        rate_ok = has_prev & (dt > 0) & (rnd.steady | (watch != ALL))
        rmean, rvar, rn = f["rmean"][rows], f["rvar"][rows], i["rn"][rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(rate_ok, (x - last) / dt, 0.0)
            rfloor = np.maximum(np.maximum(cfg.abs_floor, cfg.rel_floor * np.abs(rmean)), res / dt)
            rz = np.where(rate_ok & (rn > 0), (r - rmean) / (np.sqrt(rvar) + rfloor), 0.0)
        ready = rn >= cfg.warmup_readings
        suspect = ready & (np.abs(rz) > cfg.rate_hi)
        rz = np.where(watch == FALLING, np.minimum(rz, 0.0), rz)
        judge_rate = rate_ok & ready & ~rnd.position
        arz = self.tail.columns(f, RATE_TAIL, rows, np.abs(rz), rn, judge_rate,
                                     judge_rate & ~self.tracks.open["rate"][rows])  # fmt: skip
        self._episode_step(events, "rate", judge_rate, arz, rmean, r,
                           rz > 0, ("rising", "falling"), cfg.rate_lo, cfg.rate_hi,
                           cfg.rate_instant, cfg.rate_persist, "rate_run")  # fmt: skip
        return RateStep(r, rz, rate_ok, suspect, rate_ok & (watch != ALL) & ready, rmean, last)

    def _learn(
        self, rnd: Round, n: np.ndarray, expected: np.ndarray, off: np.ndarray, r: np.ndarray,
        rate_ok: np.ndarray, suspect: np.ndarray, shift_suspect: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        """Rates and levels learn from what raised nothing (levels, after ``adapt`` readings
        or ``adapt_s`` held back in a row, from everything); returns which values the levels
        learnt from."""
        cfg, cols = self.config, self.tracks
        f, i, o, rows, watch = cols.f, cols.i, cols.open, rnd.rows, rnd.watch
        up, down = f["up"][rows], f["down"][rows]
        suspect = suspect | (np.maximum(up, down) > cfg.drift_h / 2)
        learn_rate = rate_ok & ~o["rate"][rows] & ~o["drift"][rows] & ~suspect
        self._learn_rate(rows[learn_rate], r[learn_rate])
        asked = (o["level"][rows] | o["flatline"][rows] | shift_suspect
                 | ((watch == ALL) & o["drift"][rows]))  # fmt: skip
        held = np.where(asked, counted(i["held"][rows]), 0)
        i["held"][rows] = held
        learn = ~(asked & (held <= cfg.adapt) & (held * rnd.interval <= cfg.adapt_s * 1000.0))
        self.shift.learn(rows[learn], n[learn])
        self._learn_level(rows[learn], rnd.x[learn], off[learn], rnd.dx[learn],
                          rnd.has_dx[learn], expected[learn], rnd.resting[learn])  # fmt: skip
        f["last"][rows] = rnd.x
        i["last_ts"][rows] = rnd.ts
        return learn

    def _episode_step(
        self,
        events: RoundEvents,
        layer: str,
        judged: np.ndarray,
        az: np.ndarray,
        expected: np.ndarray,
        observed: np.ndarray,
        up: np.ndarray,
        kinds: tuple[str, str],
        lo: float,
        hi: float,
        instant: float,
        persist: int,
        run_field: str,
    ) -> None:
        """Extend, release or open the layer's episode of every judged value (level, rate)."""
        cols = self.tracks
        rows = events.rows
        is_open = cols.open[layer][rows]
        extend = judged & is_open & (az > lo)
        release = judged & is_open & ~(az > lo)
        critical_z = self._critical[layer]
        for k in np.flatnonzero(extend):
            ep = cols.episodes[(layer, int(rows[k]))]
            ep.hold = self.config.hold
            value = deviation_score(float(az[k]))
            if value > ep.score:
                ep.score, ep.expected, ep.observed = value, float(expected[k]), float(observed[k])
                if az[k] > critical_z:
                    ep.severity = Severity.CRITICAL
        for k in np.flatnonzero(release):
            ep = cols.episodes[(layer, int(rows[k]))]
            if ep.hold > 0:
                ep.hold -= 1
            else:
                events.close(layer, int(k))
        closed = judged & ~is_open
        if not closed.any():
            return
        run = cols.i[run_field]
        cr = rows[closed]
        run[cr] = np.where(az[closed] > hi, counted(run[cr]), 0)
        opening = closed.copy()
        opening[closed] = (az[closed] > instant) | (run[cr] >= persist)
        for k in np.flatnonzero(opening):
            severity = Severity.CRITICAL if az[k] > 2 * hi else Severity.WARNING
            value = deviation_score(float(az[k]))
            events.open(layer, int(k), kinds[0] if up[k] else kinds[1], severity, value,
                        float(expected[k]), float(observed[k]))  # fmt: skip

    def _drift(
        self,
        events: RoundEvents,
        feed: np.ndarray,
        z: np.ndarray,
        observed: np.ndarray,
        expected: np.ndarray,
    ) -> None:
        """Two-sided CUSUM of the fed deviations (the level's or the rate's)."""
        if not feed.any():
            return
        cfg, cols = self.config, self.tracks
        rows = events.rows
        fr = rows[feed]
        up = np.maximum(0.0, cols.f["up"][fr] + z[feed] - cfg.drift_k)
        down = np.maximum(0.0, cols.f["down"][fr] - z[feed] - cfg.drift_k)
        cols.f["up"][fr], cols.f["down"][fr] = up, down
        worst = np.maximum(up, down)
        is_open = cols.open["drift"][fr]
        where = np.flatnonzero(feed)
        for j in np.flatnonzero(is_open & (worst == 0.0)):
            events.close("drift", int(where[j]))
        for j in np.flatnonzero(~is_open & (worst > cfg.drift_h)):
            k = int(where[j])
            kind = "rising" if up[j] >= down[j] else "falling"
            value = ratio_score(float(worst[j]), cfg.drift_h)
            events.open("drift", k, kind, Severity.WARNING, value, float(expected[k]),
                        float(observed[k]))  # fmt: skip

    def _flatline(
        self,
        events: RoundEvents,
        has_prev: np.ndarray,
        x: np.ndarray,
        last: np.ndarray,
        n: np.ndarray,
        warm: np.ndarray,
        watch: np.ndarray,
        has_dx: np.ndarray,
        dx: np.ndarray,
    ) -> None:
        cfg, cols = self.config, self.tracks
        rows = events.rows
        same = x == last
        count = cols.i["same"][rows]
        count = np.where(has_prev, np.where(same, counted(count), 0), count)
        cols.i["same"][rows] = count
        changed = cols.f["changed"][rows]
        learn = has_prev & (count < cfg.flat_readings)
        step = np.where(same, 0.0, 1.0) - changed
        changed = np.where(learn, changed + step / (np.minimum(n, 199) + 1), changed)
        cols.f["changed"][rows] = changed
        is_open = cols.open["flatline"][rows]
        for k in np.flatnonzero(has_prev & is_open & ~same):
            events.close("flatline", int(k))
        moving = ~has_dx | (dx != 0)  # a stopped machine reads zero everywhere, and rightly so
        stuck = (
            has_prev & ~is_open & warm & (watch == ALL) & moving
            & (count >= cfg.flat_readings) & (changed >= cfg.flat_change_share)
        )  # fmt: skip
        for k in np.flatnonzero(stuck):
            events.open("flatline", int(k), "stuck", Severity.WARNING, 0.75, None, float(x[k]))

    def _learn_rate(self, rows: np.ndarray, r: np.ndarray) -> None:
        cfg, f, i = self.config, self.tracks.f, self.tracks.i
        rn = counted(i["rn"][rows])
        i["rn"][rows] = rn
        a = np.where(rn <= cfg.warmup_readings, 1.0 / rn, cfg.rate_alpha)
        rmean = f["rmean"][rows]
        d = r - rmean
        f["rmean"][rows] = rmean + a * d
        f["rvar"][rows] = (1 - a) * (f["rvar"][rows] + a * d * d)

    def _learn_level(
        self,
        rows: np.ndarray,
        x: np.ndarray,
        off: np.ndarray,
        dx: np.ndarray,
        has_dx: np.ndarray,
        expected: np.ndarray,
        resting: np.ndarray,
    ) -> None:
        cfg, f, i = self.config, self.tracks.f, self.tracks.i
        n = counted(i["n"][rows])
        i["n"][rows] = n
        # exact running moments while warming up, exponentially weighted afterwards
        a = np.where(n <= cfg.warmup_readings, 1.0 / n, cfg.alpha)
        mean = f["mean"][rows]
        d = x - off - mean
        resid = x - expected
        f["mean"][rows] = mean + a * d
        var = f["var"][rows]
        new = (1 - a) * (var + a * d * d)
        f["var"][rows] = np.where(resting, np.maximum(new, var), new)  # spreads only widen
        if not has_dx.any():
            return
        dr, ad, dd, rd = rows[has_dx], a[has_dx], d[has_dx], resid[has_dx]
        mx = f["mx"][dr]
        e = dx[has_dx] - mx
        f["mx"][dr] = mx + ad * e
        f["vx"][dr] = (1 - ad) * (f["vx"][dr] + ad * e * e)
        f["cxy"][dr] = (1 - ad) * (f["cxy"][dr] + ad * e * dd)
        rv = f["rv"][dr]
        new = (1 - ad) * (rv + ad * rd * rd)
        f["rv"][dr] = np.where(resting[has_dx], np.maximum(new, rv), new)
