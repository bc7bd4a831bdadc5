"""`python -m sweeps.grid`: run a phase-diagram sweep from a preset, with overrides.

The project's documented entry point (`noisyjax` and `python -m noisyjax` are the same command).
This module imports only the standard library until the environment is checked, so that a JAX
that cannot start ends in one line; the command line itself is `sweeps.cli`, the launch of a
sweep `sweeps.launch`. `python -m sweeps.grid --help` lists the options, presets and fields.
"""

from __future__ import annotations

import signal
import sys
import threading

from sweeps.exits import (
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_USAGE,
    EarlyTermination,
    UsageError,
    check_environment,
)


def main(argv: list[str] | None = None, *, cpu_cores_as_devices: bool = False) -> int:
    """The CLI. `cpu_cores_as_devices` (set when run as a program, not when called from Python
    code, where changing JAX's device count would leak into the caller) makes every CPU core a
    JAX device before JAX starts (`noisyjax.sweep.distributed.use_cpu_cores`).

    Whatever happens, it ends in one line on stderr: an error (exit 2), or a signal before the
    sweep began (exit 130 or 143; a signal during the sweep stores what was queued and names
    the command that finishes it)."""

    def terminated(signum, frame):
        raise EarlyTermination

    in_main_thread = threading.current_thread() is threading.main_thread()  # signal's rule
    previous = signal.signal(signal.SIGTERM, terminated) if in_main_thread else None
    try:
        check_environment()
        try:
            from sweeps import cli
        except (ValueError, RuntimeError, AssertionError) as err:  # JAX refused to start
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UsageError(f"JAX cannot start: {first}") from None
        return cli.run(argv, cpu_cores_as_devices=cpu_cores_as_devices)
    except UsageError as err:
        print(f"sweeps.grid: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("sweeps.grid: interrupted (SIGINT) before the sweep started", file=sys.stderr)
        return EXIT_SIGINT
    except EarlyTermination:
        print("sweeps.grid: terminated (SIGTERM) before the sweep started", file=sys.stderr)
        return EXIT_SIGTERM
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def console() -> None:
    """The `noisyjax` console command (and `python -m noisyjax`)."""
    sys.exit(main(cpu_cores_as_devices=True))


if __name__ == "__main__":
    console()
