"""Replay a recorded time series from a CSV file as one device's telemetry.

Handles SKAB files (``;``-separated, a ``datetime`` column, label columns ``anomaly`` and
``changepoint``) and ordinary comma-separated files with a time column. The delimiter is
detected; the time column is the one given or the first named datetime, timestamp, time, ts or
date. Times may be RFC 3339 / ISO 8601 (naive ones are taken as UTC), or epoch seconds or
milliseconds. Column names become metric names in snake_case (``Volume Flow RateRMS`` →
``volume_flow_raterms``) unless mapped with ``COLUMN=metric``; label columns are left out.

Each row becomes one reading with ``seq`` = its row number, so replaying the same file twice
stores it once. Timestamps are kept, or re-based so the first row is "now"; pacing follows the
recorded intervals divided by ``speed``, or none at all (``speed`` = 0: as fast as possible).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from simulators.traffic import Outgoing
from twin.errors import ConfigurationError
from twin.topics import TopicRouter

_json = msgspec.json.Encoder().encode
TIME_COLUMNS = ("datetime", "timestamp", "time", "ts", "date")
LABEL_COLUMNS = ("anomaly", "changepoint", "label")


def metric_name(column: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z]+", "_", column.strip()).strip("_").lower()
    if not name or name[0].isdigit():
        name = f"m_{name}"
    return name[:64]


def parse_time(text: str) -> int:
    """Epoch milliseconds from ISO 8601 text or epoch seconds / milliseconds."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(number):
            raise ValueError(f"not a time: {text!r}")
        return round(number if number > 1e11 else number * 1000)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


@dataclass
class Series:
    path: Path
    time_column: str
    metrics: dict[str, str]
    """CSV column → metric name."""
    rows: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    skipped_cells: int = 0


def read_series(
    path: Path,
    *,
    time_column: str | None = None,
    mapping: dict[str, str] | None = None,
    exclude: Sequence[str] = LABEL_COLUMNS,
) -> Series:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from None
    lines = text.splitlines()
    if not lines:
        raise ConfigurationError(f"{path} is empty")
    delimiter = ";" if lines[0].count(";") > lines[0].count(",") else ","
    reader = csv.reader(lines, delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    lower = {h.lower(): h for h in header}
    if time_column is None:
        time_column = next((lower[c] for c in TIME_COLUMNS if c in lower), None)
        if time_column is None:
            raise ConfigurationError(
                f"{path}: no time column (looked for {', '.join(TIME_COLUMNS)}); "
                "name it with --time-column"
            )
    elif time_column not in header:
        raise ConfigurationError(f"{path}: no column {time_column!r} (has {', '.join(header)})")
    mapping = dict(mapping or {})
    unknown = set(mapping) - set(header)
    if unknown:
        raise ConfigurationError(f"{path}: --map names unknown columns {sorted(unknown)}")
    skip = {c.lower() for c in exclude}
    metrics = {
        h: mapping.get(h) or metric_name(h)
        for h in header
        if h != time_column and (h in mapping or h.lower() not in skip)
    }
    series = Series(path=path, time_column=time_column, metrics=metrics)
    t_index = header.index(time_column)
    columns = [(header.index(h), name) for h, name in metrics.items()]
    for line_no, cells in enumerate(reader, start=2):
        if not cells or all(not c.strip() for c in cells):
            continue
        try:
            ts = parse_time(cells[t_index])
        except (ValueError, IndexError):
            raise ConfigurationError(
                f"{path}:{line_no}: cannot read the time {cells[t_index : t_index + 1]}"
            ) from None
        values: dict[str, float] = {}
        for index, name in columns:
            try:
                value = float(cells[index])
            except (ValueError, IndexError):
                series.skipped_cells += 1
                continue
            if math.isfinite(value):
                values[name] = value
            else:
                series.skipped_cells += 1
        series.rows.append((ts, values))
    if not series.rows:
        raise ConfigurationError(f"{path}: no data rows")
    return series


class ReplayTraffic:
    """A series as paced messages of one device, in the shape the publisher sends."""

    def __init__(
        self,
        series: Series,
        device_id: str,
        *,
        prefix: str = "",
        speed: float = 1.0,
        rebase: bool = False,
        batch: int = 1,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self.series = series
        self.device_id = device_id
        self.prefix = prefix
        self.speed = speed
        self.rebase_to_now = rebase
        self.batch = batch
        self._attributes = attributes
        self.shift_ms = 0
        self.fleet = [device_id]
        self.faults: list[object] = []

    def topic(self, channel: str = "telemetry") -> str:
        return TopicRouter(self.prefix).topic(self.device_id, channel)

    def attributes(self) -> list[Outgoing]:
        if not self._attributes:
            return []
        topic = self.topic("attributes")
        return [Outgoing(0.0, topic, _json(self._attributes), 0, retain=True, kind="attributes")]

    def rebase(self, start_ms: int) -> None:
        if self.rebase_to_now:
            self.shift_ms = start_ms - self.series.rows[0][0]

    def messages(self) -> Iterator[Outgoing]:
        rows = self.series.rows
        first = rows[0][0]
        topic = self.topic()
        for i in range(0, len(rows), self.batch):
            chunk = rows[i : i + self.batch]
            body = [
                {"ts": ts + self.shift_ms, "seq": i + k + 1, "values": values}
                for k, (ts, values) in enumerate(chunk)
            ]
            last_ts = chunk[-1][0]
            due = max(0.0, (last_ts - first) / 1000 / self.speed) if self.speed > 0 else 0.0
            payload = _json(body[0] if self.batch == 1 else body)
            yield Outgoing(due, topic, payload, 0, readings=len(body))
