"""What every part of the command line shares, with the standard library only (so that it works
before JAX is imported): exit statuses, the usage error, the version, the environment check."""

from __future__ import annotations

import os

EXIT_USAGE = 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal's number, as shells report them


class UsageError(Exception):
    """A command-line problem: reported on one line, exit status 2."""


class EarlyTermination(BaseException):
    """SIGTERM before the sweep's own handler is in place (nothing is written by then)."""


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("noisyjax")
    except PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown (not installed)"


def check_environment() -> None:
    """What JAX would crash on at import, checked first (stdlib only): its CPU device count."""
    count = os.environ.get("JAX_NUM_CPU_DEVICES")
    if count is not None and not (count.strip().isdigit() and int(count) >= 1):
        raise UsageError(f"JAX_NUM_CPU_DEVICES={count!r} is invalid: allowed an integer >= 1")
