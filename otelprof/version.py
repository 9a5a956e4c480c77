"""The agent's version, reported as the instrumentation scope version."""

__version__ = "0.1.0"
