"""Online anomaly detection inside the twins."""
