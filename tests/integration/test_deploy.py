"""The deployment files are valid for the tools that read them."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_is_valid_with_and_without_the_simulator():
    plain = run("docker-compose", "-f", "docker-compose.yml", "config", "--services")
    assert plain.returncode == 0, plain.stderr
    services = set(plain.stdout.split())
    assert services == {"mosquitto", "postgres", "redis", "engine", "catalog", "prometheus",
                        "grafana", "simulator"}  # fmt: skip
    full = run("docker-compose", "-f", "docker-compose.yml", "--profile", "simulator", "config")
    assert full.returncode == 0 and "simulator:" in full.stdout, full.stderr
    simulator = full.stdout.split("  simulator:")[1]
    assert "profiles:\n    - simulator" in simulator  # only with --profile simulator
    assert "condition: service_healthy" in full.stdout


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_prometheus_config_and_alert_rules_are_valid():
    done = run("promtool", "check", "config", "monitoring/prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout  # the alert rules it loads
    rules = run("promtool", "check", "rules", "monitoring/alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_every_alert_rule_fires_on_its_condition_and_not_on_a_healthy_engine():
    tests = ROOT / "monitoring" / "alerts_test.yml"
    done = run("promtool", "test", "rules", str(tests))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    text = tests.read_text()
    for alert in re.findall(r"- alert: (\w+)", (ROOT / "monitoring" / "alerts.yml").read_text()):
        assert f"alertname: {alert}\n" in text, f"{alert} is never seen firing"
        assert f"alertname: {alert}, exp_alerts: []" in text, f"{alert} is never seen quiet"


def test_image_runs_as_a_non_root_user_and_checks_its_health():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dockerfile.split("\nFROM ")
    final = stages[-1]
    assert len(stages) >= 2 and "USER twin" in final and "HEALTHCHECK" in final
    assert "/healthz" in final and 'ENTRYPOINT ["twin"]' in final


def test_the_image_installs_the_pinned_versions():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml constraints.txt" in dockerfile
    assert "-c constraints.txt" in dockerfile
    pins = {
        line.split("==")[0].lower()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    assert {"bytewax", "mqtt5", "psycopg", "redis", "sqlalchemy", "alembic", "msgspec"} <= pins


def test_the_package_builds_without_a_deprecation_warning(tmp_path):
    """setuptools prints its deprecation boxes into the build log (pip -v shows them)."""
    import sys

    source = tmp_path / "src"  # a copy: the build writes build/ into the tree it builds
    skip = shutil.ignore_patterns(".venv*", ".git", "build", "*.egg-info", ".*cache", ".twin-demo*")
    shutil.copytree(ROOT, source, ignore=skip)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v",
         "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    log = built.stdout + built.stderr
    assert list(tmp_path.glob("twinstream-*.whl"))
    assert "Deprecat" not in log, [line for line in log.splitlines() if "eprecat" in line][:5]
