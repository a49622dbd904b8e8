"""PostgreSQL and Redis I/O for twinstream, and the embedded servers of the demo and tests."""
