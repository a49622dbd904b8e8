"""What every process needs: settings from the environment, metrics, logs and health."""
