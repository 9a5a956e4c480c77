"""``python -m otelprof`` is the ``otelprof`` command."""

from otelprof.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
