"""The project's one-line errors and the checks every configuration uses: a bad value raises
`ConfigError` naming the field, the value and what is allowed. Any experiment's config and
hyperparameter classes validate through these at construction (the one boundary); traced code
never validates.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import numpy as np


class ConfigError(ValueError):
    """A user-supplied setting is out of range; the message names field, value and allowed set."""


def fail(field: str, value: Any, allowed: str) -> None:
    """Raise the project's one-line configuration error."""
    raise ConfigError(f"{field}={value!r} is invalid: allowed {allowed}")


def check_int(field: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        fail(field, value, f"an integer >= {minimum}")


def check_real(
    field: str,
    value: Any,
    low: float,
    high: float,
    *,
    open_high: bool = False,
    open_low: bool = False,
) -> None:
    """Check a finite real number in [low, high] (ends opened on request)."""
    is_real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not is_real or not math.isfinite(float(value)):
        fail(field, value, f"a finite number in {_interval(low, high, open_low, open_high)}")
    v = float(value)
    bad_low = v <= low if open_low else v < low
    bad_high = v >= high if open_high else v > high
    if bad_low or bad_high:
        fail(field, value, f"a finite number in {_interval(low, high, open_low, open_high)}")


def check_choice(field: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        fail(field, value, "one of " + ", ".join(repr(c) for c in choices))


def check_leaves(hp: Any, ranges: tuple) -> None:
    """Check a hyperparameter dataclass at construction: every leaf a real number or an array
    of them, finite and in its range, and the arrays' shapes broadcast together.

    Concrete values (Python numbers, NumPy arrays, JAX arrays on this host) are checked;
    anything else that pytree unflattening passes (tracers, abstract shapes, shardings) goes
    through unchecked: traced code never validates.
    """
    shapes = {}
    for field, low, high, open_low, open_high in ranges:
        value = getattr(hp, field)
        if value is None or isinstance(value, (str, bytes, bool)):
            fail(field, value, f"a finite number in {_interval(low, high, open_low, open_high)}")
        array = _concrete(value)
        if array is None:
            continue
        if array.dtype.kind not in "fiu":
            fail(field, value, f"real numbers in {_interval(low, high, open_low, open_high)}")
        shapes[field] = array.shape
        for v in np.unique(array.astype(np.float64)):
            check_real(field, float(v), low, high, open_low=open_low, open_high=open_high)
    try:
        np.broadcast_shapes(*shapes.values())
    except ValueError:
        fail("hparams shapes", shapes, "arrays whose shapes broadcast together")


def _concrete(value: Any) -> np.ndarray | None:
    """`value` as a NumPy array if it is concrete and on this host, else None."""
    if isinstance(value, (numbers.Number, np.ndarray, np.generic)):
        return np.asarray(value)
    if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
        if getattr(value, "is_fully_addressable", False):
            return np.asarray(value)
    return None


def _interval(low: float, high: float, open_low: bool, open_high: bool) -> str:
    return f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
