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


class MissingExtraError(GcrlBenchError, ImportError):
    """An optional feature whose package is not installed; the message names the extra that installs it."""


def import_extra(module: str, extra: str, feature: str):
    """Imports the optional dependency ``module`` of ``feature`` (e.g. ``--executor ray``) and returns it.

    Raises:
      MissingExtraError: ``module`` is not installed (or fails to import); the one-line message names the
        install command, ``pip install 'gcrl-bench[<extra>]'``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name == module:
            why = f"the {module} package, which is not installed"
        else:
            why = f"the {module} package, which failed to import ({exc})"
        raise MissingExtraError(f"{feature} needs {why}: pip install 'gcrl-bench[{extra}]'") from None
