"""The engine's own MQTT source alone: receive, decode, acknowledge, no dataflow.

``python -m tests.bench.source_only PORT PREFIX CLIENT_ID register`` creates the persistent
session and leaves; ``... drain N`` reconnects and takes N queued messages through the source
partition exactly as the engine does, every batch reported committed at once (so every
message is acknowledged), and prints the rate.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from flows.connectors.ledger import CommitLedger
from flows.connectors.mqtt_source import MqttSource
from flows.runtime.settings import MqttEndpoint


def main() -> None:
    port, prefix, client_id, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    wanted = int(sys.argv[5]) if mode == "drain" else 0
    stop, ledger = threading.Event(), CommitLedger()
    source = MqttSource(
        MqttEndpoint("127.0.0.1", port), stop=stop, ledger=ledger, prefix=prefix,
        client_id=client_id, protocol="5",
    )  # fmt: skip
    part = source.build("mqtt", 0, 1)
    deadline = time.monotonic() + 300
    count, first = 0, 0.0
    while time.monotonic() < deadline:
        if mode == "register" and source.subscribed.is_set():
            break
        batch = part.next_batch()
        if batch:
            if not count:
                first = time.monotonic()
            count += len(batch)
            ledger.committed([m.ticket for m in batch])
            if count >= wanted and mode == "drain":
                break
        else:
            time.sleep(0.0005)
    elapsed = time.monotonic() - first
    stop.set()
    try:
        while True:  # send the last acknowledgements, then DISCONNECT
            part.next_batch()
            time.sleep(0.001)
    except StopIteration:
        pass
    if mode == "drain":
        print(json.dumps({"messages": count, "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    main()
