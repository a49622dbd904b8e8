"""Publish pre-encoded readings (QoS 1): ``python -m tests.bench.blast PORT PREFIX DEVICES
READINGS BATCH [RATE]``. Without a rate, as fast as paho can; with one (messages per second),
each message at its planned time, stamped with that time as its device timestamp, so that
``ingested_at - ts`` is the latency from the device to the commit."""

from __future__ import annotations

import json
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    port, prefix, devices, readings, batch = (
        int(sys.argv[1]),
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        int(sys.argv[5]),
    )
    rate = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    count = readings // batch
    now = time.time_ns() // 1_000_000 - readings // devices
    begin = time.time() + 2.0 + count / 200_000  # after the messages are encoded
    messages = []
    for i in range(count):
        dev = i % devices
        seq0 = (i // devices) * batch
        at = int((begin + i / rate) * 1000) if rate else now + seq0
        body = [
            {
                "ts": at + k,
                "seq": seq0 + k,
                "values": {
                    "speed_kmh": 50.0 + k,
                    "rpm": 2000.0,
                    "coolant_temp_c": 90.1,
                    "fuel_level_pct": 55.0,
                    "odometer_km": 1000.0 + seq0 + k,
                },
            }
            for k in range(batch)
        ]
        payload = json.dumps(body[0] if batch == 1 else body).encode()
        messages.append((f"{prefix}devices/bench-{dev:05d}/telemetry", payload))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, client_id="blast")
    client.max_inflight_messages_set(10_000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    if rate:
        time.sleep(max(0.0, begin - time.time()))
    started = time.monotonic()
    info = None
    late = 0.0
    # the network loop is driven here: with loop_start() the publishing thread and paho's
    # thread contend for every QoS 1 acknowledgement (~1.5k msg/s instead of ~15k msg/s)
    for i, (topic, payload) in enumerate(messages):
        if rate and i % 20 == 0:
            ahead = begin + i / rate - time.time()
            if ahead > 0:
                time.sleep(ahead)
            late = max(late, -ahead)
        info = client.publish(topic, payload, qos=1)
        if i % 200 == 0:
            client.loop(timeout=0)
    deadline = time.monotonic() + 300
    while info is not None and not info.is_published() and time.monotonic() < deadline:
        client.loop(timeout=0.01)
    elapsed = time.monotonic() - started
    print(
        json.dumps(
            {
                "messages": len(messages),
                "readings": len(messages) * batch,
                "seconds": elapsed,
                "most_behind_plan_s": late,
            }
        ),
        flush=True,
    )
    client.disconnect()


if __name__ == "__main__":
    main()
