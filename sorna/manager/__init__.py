"""The Sorna manager: places kernels on agents and keeps the capacity table."""
