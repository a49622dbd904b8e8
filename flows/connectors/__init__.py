"""Where the dataflow meets the outside: the MQTT source with its commit ledger, and the sinks."""
