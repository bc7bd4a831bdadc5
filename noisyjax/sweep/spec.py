"""Grid specification: named axes over an experiment's fields and seeds, flattened into runs.

A `Sweep` is a base config, base hyperparameters, a tuple of `Axis` and a seed count; its config's
class names the experiment that runs it (`noisyjax.sweep.experiment`). `expand` turns it into a
`RunTable`: one row per run, with the run's seed, every hyperparameter and its shape fields. A
run's key is `jax.random.key(seed)` and nothing else, so its result depends only on its seed and
its own settings; runs that share a seed share their draws across grid cells (common random
numbers), which makes cell-to-cell differences less noisy.

Every value is checked where it is defined: the expansion builds each distinct
hyperparameter value and each distinct shape combination through the config and
hyperparameter dataclasses, whose constructors hold the rules.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import numbers
from typing import Any

import numpy as np

from noisyjax.errors import ConfigError, check_int, fail
from noisyjax.sweep.experiment import DEFAULT, Experiment, config_from_dict, get, of_config

MAX_VALUES = 100_000  # values per axis
SPEC_HELP = "a list 'a,b,c', 'lin:START:STOP:NUM', 'log:START:STOP:NUM' or 'range:START:STOP:STEP'"


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept field and its values, in grid order (the sweep checks the name)."""

    name: str
    values: tuple[float | int, ...]

    def __post_init__(self) -> None:
        try:
            values = tuple(self.values)
        except TypeError:
            fail(f"axis {self.name}", self.values, "a sequence of finite numbers")
        if not values:
            fail(f"axis {self.name}", self.values, "at least one value")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                fail(f"axis {self.name}", v, "finite numbers")
        # NumPy scalars as Python numbers: config.json and the fingerprint hold them as JSON.
        values = tuple(int(v) if isinstance(v, numbers.Integral) else float(v) for v in values)
        if len(set(values)) != len(values):
            fail(f"axis {self.name}", self.values, "distinct values")
        object.__setattr__(self, "values", values)


def parse_values(name: str, spec: str, *, integer: bool = False) -> tuple[float | int, ...]:
    """Parse an axis value spec (see SPEC_HELP) into a tuple of numbers."""
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


def parse_axis(text: str, experiment: Experiment | str = DEFAULT) -> Axis:
    """Parse 'field=spec' (the CLI's --axis) for an experiment (default: the synthetic one)."""
    exp = get(experiment) if isinstance(experiment, str) else experiment
    name, sep, spec = text.partition("=")
    if not sep or not spec:
        fail("axis", text, "'field=spec' with spec " + SPEC_HELP)
    name = name.strip()
    if name not in exp.axis_names:
        fail("axis", name, "one of " + ", ".join(exp.axis_names))
    return Axis(name, parse_values(name, spec.strip(), integer=name in exp.shape_axes))


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A named grid: base settings, swept axes (outermost first) and seeds 0..seeds-1."""

    name: str
    cfg: Any
    hp: Any
    axes: tuple[Axis, ...] = ()
    seeds: int = 1

    def __post_init__(self) -> None:
        check_int("seeds", self.seeds)
        object.__setattr__(self, "seeds", int(self.seeds))  # a NumPy integer as a Python one
        exp = self.experiment
        if not isinstance(self.hp, exp.hparams_type):
            fail("hp", type(self.hp).__name__, f"a {exp.hparams_type.__name__} for {exp.name}")
        names = [a.name for a in self.axes]
        for axis in self.axes:
            if axis.name not in exp.axis_names:
                fail("axis", axis.name, "one of " + ", ".join(exp.axis_names))
            if axis.name in exp.shape_axes and any(int(v) != v or v < 1 for v in axis.values):
                fail(f"axis {axis.name}", axis.values, "integers >= 1")
        if len(set(names)) != len(names):
            fail("axes", names, "each field at most once")
        for derived, targets in exp.derived_axes.items():
            clash = set(targets) & set(names)
            if derived in names and clash:
                fail(f"axis {derived}", f"with {sorted(clash)[0]}", "one of the two, not both")

    @property
    def experiment(self) -> Experiment:
        return of_config(self.cfg)

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

    def without_axis(self, name: str) -> Sweep:
        """The sweep without the axis `name`: its field keeps the base value."""
        names = [a.name for a in self.axes]
        if name not in names:
            fail("--no-axis", name, "one of the sweep's axes: " + (", ".join(names) or "none"))
        return dataclasses.replace(self, axes=tuple(a for a in self.axes if a.name != name))

    def to_dict(self) -> dict[str, Any]:
        kind = self.experiment.name
        return {
            **({"kind": kind} if kind != DEFAULT else {}),
            "name": self.name,
            "cfg": dataclasses.asdict(self.cfg),
            "hp": dataclasses.asdict(self.hp),
            # A list, not a mapping: the order of the axes numbers the runs, and config.json
            # is written with sorted keys.
            "axes": [[a.name, list(a.values)] for a in self.axes],
            "seeds": self.seeds,
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Sweep:
        """The sweep `to_dict` wrote (config.json's "sweep", results.nc's attribute)."""
        exp = get(spec.get("kind", DEFAULT))
        return cls(
            spec["name"],
            config_from_dict(exp.config_type, spec["cfg"]),
            exp.hparams_type(**spec["hp"]),
            tuple(Axis(k, tuple(v)) for k, v in axes_of(spec)),
            spec["seeds"],
        )


def axes_of(spec: dict[str, Any]) -> list[tuple[str, list]]:
    """The (name, values) of a recorded sweep's axes, in the sweep's order. Files written before
    the order was recorded hold a mapping whose order may have been sorted: refused when it has
    more than one axis, since its runs cannot be numbered reliably."""
    axes = spec["axes"]
    if isinstance(axes, dict):
        if len(axes) > 1:
            fail("sweep axes", sorted(axes), "a sweep recorded with its axis order (rerun it)")
        return list(axes.items())
    return [(name, values) for name, values in axes]


@dataclasses.dataclass(frozen=True)
class RunTable:
    """The flattened grid: column arrays with one entry per run, in C order of `Sweep.shape`."""

    seed: np.ndarray  # (R,) uint32
    hp: dict[str, np.ndarray]  # field -> (R,) float64
    shape: dict[str, np.ndarray]  # shape field -> (R,) int64 (none for real images)

    @property
    def n_runs(self) -> int:
        return len(self.seed)


def expand(sweep: Sweep) -> RunTable:
    """Flatten the grid into runs and check every run's values (one error for the first bad one).

    Each distinct value of each hyperparameter is built into the sweep's hyperparameters, and
    each distinct combination of shape fields into its config: their constructors decide what
    is allowed, and an error names the axis that produced the value.
    """
    exp = sweep.experiment
    grid = list(itertools.product(*[range(s) for s in sweep.shape]))
    index = np.asarray(grid, dtype=np.int64).reshape(len(grid), len(sweep.shape))
    base = dataclasses.asdict(sweep.hp) | {k: getattr(sweep.cfg, k) for k in exp.shape_axes}
    columns = {
        name: np.full(len(grid), value, np.int64 if name in exp.shape_axes else np.float64)
        for name, value in base.items()
    }
    derived: dict[str, np.ndarray] = {}
    source = {}  # field -> the axis that set it, for error messages
    for k, axis in enumerate(sweep.axes):
        values = np.asarray(axis.values)[index[:, k]]
        if axis.name in exp.derived_axes:
            derived[axis.name] = values.astype(np.float64)
            source |= dict.fromkeys(exp.derived_axes[axis.name], axis.name)
        else:
            columns[axis.name] = values.astype(columns[axis.name].dtype)
    columns |= exp.derive(derived, columns)
    dtype = np.dtype(getattr(sweep.cfg, "dtype", "float32"))
    # Fields set directly first: a bad sigma_p is named as such, not through the mu_norm it sets.
    for field in sorted(exp.hparam_fields, key=lambda f: f in source):
        for value in first_seen(columns[field]):
            try:
                dataclasses.replace(sweep.hp, **{field: float(value)})
                check_representable(field, float(value), dtype)
            except ConfigError as err:
                name = source.get(field, field)
                if name == field:
                    raise
                # A derived axis: name it, with its own value and what it set.
                k = next(k for k, a in enumerate(sweep.axes) if a.name == name)
                run = int(np.flatnonzero(np.isclose(columns[field], value, equal_nan=True))[0])
                given = float(np.asarray(sweep.axes[k].values)[index[run, k]])
                allowed = str(err).split(" is invalid: allowed ", 1)[1]
                sets = "" if given == value else f"it sets {field}={float(value)!r}, "
                raise ConfigError(f"{name}={given!r} is invalid: {sets}allowed {allowed}") from None
    if exp.shape_axes:
        shapes = np.stack([columns[k] for k in exp.shape_axes], axis=1)
        for row in first_seen(shapes):
            dataclasses.replace(
                sweep.cfg, **{k: int(v) for k, v in zip(exp.shape_axes, row, strict=True)}
            )
    exp.check(sweep.cfg, columns)
    return RunTable(
        seed=index[:, -1].astype(np.uint32),
        hp={f: columns[f] for f in exp.hparam_fields},
        shape={k: columns[k] for k in exp.shape_axes},
    )


def first_seen(values: np.ndarray) -> np.ndarray:
    """The distinct values (rows) of `values`, in the order they first occur."""
    _, first = np.unique(values, axis=0, return_index=True)
    return values[np.sort(first)]


def check_representable(field: str, value: float, dtype: np.dtype) -> None:
    """A value must survive the run's dtype: no underflow to 0 (or to a subnormal, which has
    lost its precision), no overflow to inf."""
    info = np.finfo(dtype)
    if value != 0 and not info.tiny <= abs(value) <= info.max:
        fail(
            field,
            value,
            f"0 or a magnitude in [{info.tiny:.3g}, {info.max:.3g}], what {dtype.name} holds",
        )
