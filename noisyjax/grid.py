"""Grid specification: named axes over hyperparameters, shapes and seeds, flattened into runs.

A `Sweep` is a base `Config`, a base `HParams`, a tuple of `Axis` and a seed count. `expand`
turns it into a `RunTable`: one row per run, with the run's grid coordinates, its seed, every
hyperparameter and its shape (n, d, m). A run's key is `jax.random.key(seed)` and nothing else,
so its result depends only on its seed and its own settings; runs that share a seed share their
data draw across grid cells (common random numbers), which makes cell-to-cell differences less
noisy.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import numpy as np

from noisyjax.config import HPARAM_FIELDS, HPARAM_RANGES, Config, HParams, fail, hparam_allowed

SHAPE_AXES = ("n", "d", "m")
# Derived axes: "tau" sets tau_plus = tau_minus; "n_snr2" sets mu_norm so that
# n SNR^2 = n ||mu||^2 / (sigma_p^2 d) takes the given value (docs/science.md section 2).
DERIVED_AXES = {"tau": ("tau_plus", "tau_minus"), "n_snr2": ("mu_norm",)}
AXIS_NAMES = HPARAM_FIELDS + SHAPE_AXES + tuple(DERIVED_AXES)
MAX_VALUES = 100_000  # values per axis
SPEC_HELP = "a list 'a,b,c', 'lin:START:STOP:NUM', 'log:START:STOP:NUM' or 'range:START:STOP:STEP'"


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept field and its values, in grid order."""

    name: str
    values: tuple[float | int, ...]

    def __post_init__(self) -> None:
        if self.name not in AXIS_NAMES:
            fail("axis", self.name, "one of " + ", ".join(AXIS_NAMES))
        if not self.values:
            fail(f"axis {self.name}", self.values, "at least one value")
        if len(set(self.values)) != len(self.values):
            fail(f"axis {self.name}", self.values, "distinct values")
        for v in self.values:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                fail(f"axis {self.name}", v, "finite numbers")
            if self.name in SHAPE_AXES and (int(v) != v or v < 1):
                fail(f"axis {self.name}", v, "integers >= 1")


def parse_values(name: str, spec: str) -> tuple[float | int, ...]:
    """Parse an axis value spec (see SPEC_HELP) into a tuple of numbers."""
    integer = name in SHAPE_AXES
    convert = int if integer else float
    try:
        if ":" in spec:
            kind, *parts = spec.split(":")
            if kind == "range":
                start, stop, step = (float(p) for p in parts)
                if step == 0 or abs((stop - start) / step) > MAX_VALUES:
                    raise ValueError
                values = np.arange(start, stop, step).tolist()
            elif kind in ("lin", "log") and len(parts) == 3:
                start, stop = float(parts[0]), float(parts[1])
                num = int(parts[2])
                if not 1 <= num <= MAX_VALUES or (kind == "log" and (start <= 0 or stop <= 0)):
                    raise ValueError
                values = (
                    np.linspace(start, stop, num)
                    if kind == "lin"
                    else np.geomspace(start, stop, num)
                ).tolist()
            else:
                raise ValueError
        else:
            values = [float(v) for v in spec.split(",")]
        if not all(np.isfinite(values)) or len(values) > MAX_VALUES:
            raise ValueError
        if integer and any(float(v) != round(float(v)) for v in values):
            raise ValueError
        # 12 significant digits: drops linspace noise (0.30000000000000004), keeps 1e-13.
        out = tuple(int(round(v)) if integer else convert(float(f"{v:.12g}")) for v in values)
    except (ValueError, TypeError, OverflowError, ZeroDivisionError):
        fail(f"axis {name}", spec, SPEC_HELP + (" of integers" if integer else ""))
    return out


def parse_axis(text: str) -> Axis:
    """Parse 'field=spec' (the CLI's --axis)."""
    name, sep, spec = text.partition("=")
    if not sep or not spec:
        fail("axis", text, "'field=spec' with spec " + SPEC_HELP)
    name = name.strip()
    if name not in AXIS_NAMES:
        fail("axis", name, "one of " + ", ".join(AXIS_NAMES))
    return Axis(name, parse_values(name, spec.strip()))


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A named grid: base settings, swept axes (outermost first) and seeds 0..seeds-1."""

    name: str
    cfg: Config
    hp: HParams
    axes: tuple[Axis, ...] = ()
    seeds: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            fail("seeds", self.seeds, "an integer >= 1")
        names = [a.name for a in self.axes]
        if len(set(names)) != len(names):
            fail("axes", names, "each field at most once")
        for derived, targets in DERIVED_AXES.items():
            clash = set(targets) & set(names)
            if derived in names and clash:
                fail(f"axis {derived}", f"with {sorted(clash)[0]}", "one of the two, not both")

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes) + ("seed",)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes) + (self.seeds,)

    @property
    def n_runs(self) -> int:
        return math.prod(self.shape)

    def with_axis(self, axis: Axis) -> Sweep:
        """Add an axis, or replace the axis of the same name in place."""
        axes = list(self.axes)
        names = [a.name for a in axes]
        if axis.name in names:
            axes[names.index(axis.name)] = axis
        else:
            axes.append(axis)
        return dataclasses.replace(self, axes=tuple(axes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cfg": dataclasses.asdict(self.cfg),
            "hp": dataclasses.asdict(self.hp),
            "axes": {a.name: list(a.values) for a in self.axes},
            "seeds": self.seeds,
        }


@dataclasses.dataclass(frozen=True)
class RunTable:
    """The flattened grid: column arrays with one entry per run, in C order of `Sweep.shape`."""

    seed: np.ndarray  # (R,) uint32
    hp: dict[str, np.ndarray]  # field -> (R,) float
    shape: dict[str, np.ndarray]  # "n", "d", "m" -> (R,) int

    @property
    def n_runs(self) -> int:
        return len(self.seed)


def expand(sweep: Sweep) -> RunTable:
    """Flatten the grid into runs and check every run's values (one error for the first bad one)."""
    grid = list(itertools.product(*[range(s) for s in sweep.shape]))
    index = np.asarray(grid, dtype=np.int64).reshape(len(grid), len(sweep.shape))
    columns: dict[str, np.ndarray] = {}
    base = dataclasses.asdict(sweep.hp) | {k: getattr(sweep.cfg, k) for k in SHAPE_AXES}
    for name, value in base.items():
        columns[name] = np.full(
            len(grid), value, dtype=np.int64 if name in SHAPE_AXES else np.float64
        )
    derived: dict[str, np.ndarray] = {}
    for k, axis in enumerate(sweep.axes):
        values = np.asarray(axis.values)[index[:, k]]
        if axis.name in DERIVED_AXES:
            derived[axis.name] = values.astype(np.float64)
        else:
            columns[axis.name] = values.astype(columns[axis.name].dtype)
    if "tau" in derived:
        columns["tau_plus"] = columns["tau_minus"] = derived["tau"]
    if "n_snr2" in derived:  # n ||mu||^2 / (sigma_p^2 d) = value
        columns["mu_norm"] = np.sqrt(
            derived["n_snr2"] * columns["sigma_p"] ** 2 * columns["d"] / columns["n"]
        )
    for field, low, high, open_low, open_high in HPARAM_RANGES:
        col = columns[field]
        bad = (
            ~np.isfinite(col)
            | (col <= low if open_low else col < low)
            | (col >= high if open_high else col > high)
        )
        if bad.any():
            source = "tau" if field.startswith("tau_") and "tau" in derived else field
            source = "n_snr2" if field == "mu_norm" and "n_snr2" in derived else source
            fail(source, float(col[np.argmax(bad)]), hparam_allowed(field))
    if sweep.cfg.optimizer == "adam" and np.any(columns["n"] + 1 > columns["d"]):
        bad = int(np.argmax(columns["n"] + 1 > columns["d"]))
        fail(
            "d",
            int(columns["d"][bad]),
            f"d >= n + 1 = {int(columns['n'][bad]) + 1} with "
            "optimizer 'adam' (its coefficients project onto span{mu, xi_1..xi_n})",
        )
    if sweep.cfg.engine == "wishart" and np.any(columns["d"] < 2 * columns["m"] + 2):
        bad = int(np.argmax(columns["d"] < 2 * columns["m"] + 2))
        fail(
            "d",
            int(columns["d"][bad]),
            f"d >= 2 m + 2 = {2 * int(columns['m'][bad]) + 2} with engine 'wishart'",
        )
    for name in SHAPE_AXES:
        if name in [a.name for a in sweep.axes]:
            for value in np.unique(columns[name]):
                sweep.cfg.replace(**{name: int(value)})  # shape-dependent checks (batch_size, ...)
    return RunTable(
        seed=index[:, -1].astype(np.uint32),
        hp={f: columns[f] for f in HPARAM_FIELDS},
        shape={k: columns[k] for k in SHAPE_AXES},
    )
