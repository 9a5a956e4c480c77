"""Only the optional C extension lives here; everything else is in pyproject.toml.

``optional=True``: where no C compiler or Python headers are available, the install goes on
without it and the agent uses its pure-Python paths (docs/how-it-works.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[Extension("otelprof._native", ["otelprof/_native.c"], optional=True)],
)
