"""User-facing errors: the CLI prints them as one line (no traceback) and exits non-zero."""


class GcrlBenchError(Exception):
    """An error caused by user input or a results directory; its message is one complete line:
    what is wrong, the offending value, and how to fix it."""


class ConfigError(GcrlBenchError, ValueError):
    """An invalid configuration value or combination of values."""


class UnknownNameError(GcrlBenchError, KeyError):
    """An unknown task, algorithm or preset name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ResultsError(GcrlBenchError):
    """A results directory that cannot be read or written (corrupt file, incompatible version, permissions)."""
