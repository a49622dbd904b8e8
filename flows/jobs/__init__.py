"""Work beside the dataflow, in rounds: rollups, recommendations, rule reloads, notifications."""
