"""``twin demo`` from nothing: embedded servers, a faulty fleet, and a summary that adds up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


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
