"""Calling the CLI in-process from tests, and the one-line error contract every bad input must meet."""

import pytest

from gcrl_bench.cli import main


def run_cli(capsys, *argv):
    """Runs ``gcrl-bench ARGV`` in this process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def assert_one_line_error(code, err, *needles):
    """Exit code 2, exactly one non-empty stderr line starting ``error: ``, no traceback, each needle in it."""
    assert code == 2, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]
