"""The twinstream domain: readings, device profiles, twin state and their rules.

Pure Python (stdlib, numpy and msgspec only): no I/O library is imported here, so the same
code runs inside the dataflow, in replays and in evaluations.
"""
