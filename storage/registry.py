"""The detector model registry: each configuration, its shared state and its measured scores."""

from __future__ import annotations

import json
from typing import Any

from storage.database import connect


def register(
    database_url: str,
    version: str,
    name: str,
    config: dict[str, Any],
    shared_state: dict[str, Any] | None = None,
) -> None:
    """Record a configuration (idempotent: a version is its configuration's hash)."""
    with connect(database_url) as conn:
        conn.execute(
            "INSERT INTO model_versions (version, name, config, shared_state) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET "
            "shared_state = EXCLUDED.shared_state, updated_at = now()",
            (version, name, json.dumps(config), json.dumps(shared_state or {})),
        )


def add_evaluation(database_url: str, version: str, evaluation: dict[str, Any]) -> None:
    """Append one evaluation (dataset, accuracy, precision, recall, F1, ...) to a version."""
    with connect(database_url) as conn:
        conn.execute(
            "UPDATE model_versions SET evaluations = evaluations || %s::jsonb, updated_at = now() "
            "WHERE version = %s",
            (json.dumps([evaluation]), version),
        )


def evaluations(database_url: str, version: str) -> list[dict[str, Any]]:
    with connect(database_url) as conn:
        row = conn.execute(
            "SELECT evaluations FROM model_versions WHERE version = %s", (version,)
        ).fetchone()
    return list(row[0]) if row else []
