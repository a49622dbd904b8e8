"""Device simulators that speak the wire contract over MQTT."""
