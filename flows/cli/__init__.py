"""The ``twin`` command line: one module per room of commands, assembled in ``main``."""
