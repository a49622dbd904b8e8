"""The composition root: Bytewax dataflow, MQTT source, sinks, metrics, settings and the CLI."""
