"""Alert rules and the alert lifecycle, evaluated inside the twins."""
