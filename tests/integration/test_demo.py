"""``twin demo`` from nothing: embedded servers, a faulty fleet, and a summary that adds up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.integration.api_fleet import free_port
from tests.integration.helpers import wait_until


def test_demo_runs_on_embedded_servers_and_loses_nothing(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    data = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo", "--duration", "20", "--devices", "40",
         "--rate", "200", "--data-dir", str(data)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "embedded" in out and "injected faults (demo)" in out
    published = int(re.search(r"readings published\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    bad = int(re.search(r"malformed messages sent\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    stored = int(re.search(r"telemetry rows\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    # malformed messages replace readings; the generator also sends out-of-range values
    assert published > 3000 and bad > 0
    assert stored == published, out
    for line in ("dead letters", "anomaly episodes", "alerts", "notifications", "Redis twin",
                 "rollups", "daily reports", "recommendations"):  # fmt: skip
        assert re.search(rf"^{line}\s", out, re.MULTILINE), (line, out)
    assert "Traceback" not in done.stderr
    assert re.search(r"^daily reports\s+\d+ for ", out, re.MULTILINE), out
    assert re.search(r"^recommendations\s+[1-9]\d* open", out, re.MULTILINE), out
    assert re.search(r"^rollups\s+[1-9]\d* hourly rows, [1-9]\d* 15-minute", out, re.MULTILINE)
    inspected = subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo", "--inspect", "--data-dir", str(data)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert inspected.returncode == 0
    assert re.search(rf"^telemetry rows\s+{stored}\s", inspected.stdout, re.MULTILINE)


def test_demo_keeps_serving_the_console_until_ctrl_c(tmp_path: Path):
    """``--keep-serving``: the console's URL and keys are printed, twins change while it is
    open, and Ctrl-C stops the fleet first so that everything it sent is stored."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env["TWIN_API_PORT"] = str(free_port())
    demo = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "demo", "--keep-serving", "--devices", "20",
         "--rate", "100", "--data-dir", str(tmp_path / "demo")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("  operator key"):
                break
        out = "".join(lines)
        url = re.search(r"console +(http://\S+)/", out).group(1)  # type: ignore[union-attr]
        viewer = re.search(r"viewer key +(\S+)", out).group(1)  # type: ignore[union-attr]
        assert url.endswith(env["TWIN_API_PORT"])
        headers = {"Authorization": f"Bearer {viewer}"}
        with httpx.Client(base_url=url, headers=headers, timeout=10) as api:
            assert "twinstream console" in api.get("/").text

            def readings() -> int:
                devices = api.get("/api/v1/devices?limit=1").json()["items"]
                if not devices:
                    return 0
                return int(api.get(f"/api/v1/twins/{devices[0]['device_id']}").json()["readings"])

            first = wait_until(readings, timeout_s=60)
            wait_until(lambda: readings() > first, timeout_s=30)
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    out = "".join(lines) + rest
    assert demo.returncode == 0, out
    published = int(re.search(r"readings published\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    stored = int(re.search(r"telemetry rows\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert published > 0 and stored == published, out
