"""Which ``python`` options keep ``otelprof run`` from starting the profiler."""

from __future__ import annotations

from typing import List

import pytest

from otelprof._python_options import blocking_options, warning


@pytest.mark.parametrize(
    "command, expected",
    [
        (["python", "app.py"], []),
        (["python3", "-I", "app.py"], ["I"]),
        (["/usr/bin/python3.11", "-E", "-m", "pkg"], ["E"]),
        (["python", "-S", "-c", "print(1)"], ["S"]),
        (["python", "-IS", "app.py"], ["I", "S"]),  # combined letters
        (["python", "-uE", "app.py"], ["E"]),
        (["python", "-X", "importtime", "-I", "app.py"], ["I"]),  # -X takes the next argument
        (["python", "-XI", "app.py"], []),  # -X's value is attached: "I" is not an option
        (["python", "-W", "error", "app.py", "-I"], []),  # after the script: the program's
        (["python", "-m", "pkg", "-E"], []),
        (["python", "-c", "code", "-S"], []),
        (["python", "-mpkg", "-S"], []),  # -m with its module attached
        (["python", "--check-hash-based-pycs", "always", "-E", "x.py"], ["E"]),
        (["python", "-", "-I"], []),  # stdin program
        (["gunicorn", "-I", "app:app"], []),  # not a Python interpreter
        (["pythonista", "-I"], []),
        ([], []),
    ],
)
def test_blocking_options(command: List[str], expected: List[str]) -> None:
    assert blocking_options(command) == expected


def test_the_warning_names_each_option_and_what_to_do() -> None:
    assert warning(["python", "app.py"]) == ""
    text = warning(["python", "-I", "-S", "app.py"])
    assert "-I (isolated mode) ignores PYTHONPATH" in text
    assert "-S skips the site module" in text
    assert "otelprof.start()" in text and "\n" not in text
