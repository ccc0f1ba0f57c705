"""Sorna: a back-end server of calculation kernels in locked-down containers."""

__version__ = "0.1.0"
