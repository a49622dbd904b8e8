"""``twin apikey`` and ``--json``: keys made on the command line work on the API, and a list or
show command's ``--json`` prints what the API returns."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx

from tests.conftest import ROOT
from tests.integration.api_fleet import Fleet, auth
from tests.integration.helpers import wait_until


def twin(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env["TWIN_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_keys_made_listed_and_revoked_on_the_command_line(
    client: httpx.Client, fleet: Fleet, database_url: str
):
    made = twin(database_url, "apikey", "create", "--role", "operator", "--name", "night shift")
    assert made.returncode == 0, made.stderr
    key = made.stdout.splitlines()[0]
    assert key.startswith("tws_") and "shown this once" in made.stdout
    bearer = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/me", headers=bearer).json()["role"] == "operator"
    listed = json.loads(twin(database_url, "apikey", "list", "--json").stdout)["items"]
    mine = next(k for k in listed if k["name"] == "night shift")
    assert key not in json.dumps(listed) and "digest" not in mine and mine["last_used_at"]
    revoked = twin(database_url, "apikey", "revoke", str(mine["id"]))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    wait_until(lambda: client.get("/api/v1/me", headers=bearer).status_code == 401, timeout_s=15)
    bad = twin(database_url, "apikey", "create", "--role", "root", "--name", "x")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr
    gone = twin(database_url, "apikey", "revoke", "999999999")
    assert gone.returncode != 0 and gone.stderr.strip() == "twin: no API key 999999999"


def test_json_of_list_and_show_commands_is_what_the_api_returns(
    client: httpx.Client, fleet: Fleet, database_url: str
):
    viewer, admin = auth(fleet, "viewer"), auth(fleet, "admin")

    def same(command: list[str], path: str, headers: dict[str, str]) -> dict:
        done = twin(database_url, *command, "--json")
        assert done.returncode == 0, done.stderr
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        assert json.loads(done.stdout) == answer.json(), command
        return answer.json()

    listed = same(["alerts", "list", "--device", fleet.hot], f"/api/v1/alerts?device={fleet.hot}",
                  viewer)  # fmt: skip
    alert_id = listed["items"][0]["id"]
    shown = same(["alerts", "show", alert_id], f"/api/v1/alerts/{alert_id}", viewer)
    assert shown["timeline"]
    recs = same(["recommendations", "list", "--device", fleet.hot],
                f"/api/v1/recommendations?device={fleet.hot}", viewer)  # fmt: skip
    rec_id = recs["items"][0]["id"]
    same(["recommendations", "show", str(rec_id)], f"/api/v1/recommendations/{rec_id}", viewer)
    same(["alerts", "rule", "list"], "/api/v1/rules", admin)
    same(["alerts", "route", "list"], "/api/v1/routes", admin)
    keys = twin(database_url, "apikey", "list", "--json")
    assert json.loads(keys.stdout) == client.get("/api/v1/apikeys", headers=admin).json()
