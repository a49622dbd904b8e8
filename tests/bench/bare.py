"""The raw ceiling: a paho subscriber that does nothing with its messages.

``python -m tests.bench.bare PORT FILTER CLIENT_ID register`` creates its persistent session and
leaves; ``... drain N`` reconnects, takes N queued messages (QoS 1) and prints the rate. It
drives paho's loop itself, the fastest way paho receives.
"""

from __future__ import annotations

import json
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


def main() -> None:
    port, topic, client_id, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    wanted = int(sys.argv[5]) if mode == "drain" else 0
    state = {"count": 0, "first": 0.0, "subscribed": False}

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not state["count"]:
            state["first"] = time.monotonic()
        state["count"] += 1

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_subscribe = lambda *args: state.update(subscribed=True)
    client.on_connect = lambda c, *args: c.subscribe(topic, options=SubscribeOptions(qos=1))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 65535
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    deadline = time.monotonic() + 300
    if mode == "register":
        while not state["subscribed"] and time.monotonic() < deadline:
            client.loop(0.05)
        client.disconnect()
        return
    while state["count"] < wanted and time.monotonic() < deadline:
        client.loop(0.01)
    elapsed = time.monotonic() - state["first"]
    client.disconnect()
    print(json.dumps({"messages": state["count"], "seconds": elapsed}), flush=True)


if __name__ == "__main__":
    main()
