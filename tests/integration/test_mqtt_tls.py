"""The engine's own MQTT connection over TLS with a password, against a private Mosquitto."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from storage.embedded import free_port
from tests.conftest import EngineProcess
from tests.integration.helpers import count_rows, now_ms, wait_until

pytestmark = pytest.mark.skipif(
    not all(shutil.which(b) for b in ("mosquitto", "mosquitto_passwd", "openssl")),
    reason="needs mosquitto, mosquitto_passwd and openssl",
)


@pytest.fixture
def tls_broker(tmp_path: Path):
    """Mosquitto on TLS only (a self-signed certificate for 127.0.0.1), with one user."""
    cert, key = tmp_path / "broker.pem", tmp_path / "broker.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "engine", "s3cret p@ss"],
                   check=True, capture_output=True)  # fmt: skip
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {passwords}\npersistence false\n"
        + ("user root\n" if os.geteuid() == 0 else "")  # else it cannot read the key as root
    )
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(0.5)
    yield port, cert
    proc.terminate()
    proc.wait(5)


def test_engine_reads_over_tls_with_a_password(
    tls_broker, engine_env: dict[str, str], database_url: str, topic_prefix: str
):
    port, cert = tls_broker
    url = f"mqtts://engine:s3cret%20p%40ss@127.0.0.1:{port}"
    engine = EngineProcess(dict(engine_env, TWIN_MQTT_URL=url, TWIN_MQTT_CA_FILE=str(cert)))
    engine.start()
    assert "s3cret" not in engine.log
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.username_pw_set("engine", "s3cret p@ss")
    pub.tls_set(ca_certs=str(cert))
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    device = f"{topic_prefix.strip('/')}-tls"
    t = now_ms()
    for i in range(20):
        body = json.dumps({"ts": t - 1000 + i, "seq": i, "values": {"rpm": 1000.0 + i}})
        info = pub.publish(f"{topic_prefix}devices/{device}/telemetry", body, qos=1)
    info.wait_for_publish(10)
    assert wait_until(lambda: count_rows(database_url, device) == 20), engine.log
    pub.disconnect()
    pub.loop_stop()
    assert engine.stop() == 0


def test_a_wrong_password_is_reported_and_retried_without_showing_it(
    tls_broker, engine_env: dict[str, str]
):
    port, cert = tls_broker
    url = f"mqtts://engine:wrong-pw@127.0.0.1:{port}"
    engine = EngineProcess(dict(engine_env, TWIN_MQTT_URL=url, TWIN_MQTT_CA_FILE=str(cert)))
    engine.spawn()
    engine.wait_for("refused the connection", 30)
    assert engine.proc is not None and engine.proc.poll() is None  # it keeps trying
    assert "wrong-pw" not in engine.log
    assert engine.stop() == 0
