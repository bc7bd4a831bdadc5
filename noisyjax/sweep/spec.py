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
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from noisyjax.errors import ConfigError, check_int, check_real, fail
from noisyjax.sweep.experiment import DEFAULT, Experiment, config_from_dict, get, of_config

MAX_VALUES = 100_000  # values per axis
SPEC_HELP = "a list 'a,b,c', 'lin:START:STOP:NUM', 'log:START:STOP:NUM' or 'range:START:STOP:STEP'"


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept field and its values, in grid order (the sweep checks the name)."""

    name: str
    values: tuple[float | int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", checked_values(f"axis {self.name}", self.values))
        if len(set(self.values)) != len(self.values):
            fail(f"axis {self.name}", self.values, "distinct values")


def checked_values(label: str, given: Any) -> tuple[float | int, ...]:
    """A non-empty sequence of finite numbers, as Python numbers (config.json and the
    fingerprint hold them as JSON)."""
    try:
        values = tuple(given)
    except TypeError:
        fail(label, given, "a sequence of finite numbers")
    if not values:
        fail(label, given, "at least one value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
            fail(label, v, "finite numbers")
    return tuple(int(v) if isinstance(v, numbers.Integral) else float(v) for v in values)


class Column(NamedTuple):
    """One field of a zip: its value at each point (values may repeat)."""

    name: str
    values: tuple[float | int, ...]


@dataclasses.dataclass(frozen=True)
class Zip:
    """Fields that vary together along one dimension `name`: a list of points, not a grid.

    `fields` maps each field to its value at every point (one sequence per field, all of one
    length, the points distinct). results.nc labels the dimension by the point's position (0,
    1, ...) and holds each field as a coordinate over it. Adaptive refinement
    (`noisyjax.sweep.refine`) trains its probes as a zip of the other axes' cells and the
    refined axis's new values.
    """

    name: str
    fields: Mapping[str, Sequence[float | int]]

    def __post_init__(self) -> None:
        try:
            items = [(str(k), v) for k, v in dict(self.fields).items()]
        except (TypeError, ValueError):
            items = []
        if not items:
            fail(f"zip {self.name}", self.fields, "a mapping of one field or more to values")
        columns = tuple(Column(k, checked_values(f"zip {self.name} {k}", v)) for k, v in items)
        lengths = {len(c.values) for c in columns}
        if len(lengths) != 1:
            fail(f"zip {self.name}", sorted(lengths), "fields with the same number of values")
        points = list(zip(*(c.values for c in columns), strict=True))
        if len(set(points)) != len(points):
            fail(f"zip {self.name}", "repeated points", "distinct points")
        object.__setattr__(self, "fields", columns)

    def __hash__(self) -> int:
        return hash((self.name, self.fields))

    @property
    def values(self) -> tuple[int, ...]:
        """The dimension's coordinate: each point's position."""
        return tuple(range(len(self.fields[0].values)))


def columns_of(axis: Axis | Zip) -> tuple[Axis | Column, ...]:
    """The fields an axis sets, each with one value per position along it."""
    return axis.fields if isinstance(axis, Zip) else (axis,)


def log_spaced(values: Any) -> bool:
    """Whether sorted values are three or more positive numbers with a constant ratio other
    than 1 (a log:A:B:N spec): figures draw such an axis on a log scale, and refinement
    halves its brackets geometrically."""
    values = np.asarray(values, float)
    if len(values) < 3 or np.any(values <= 0):
        return False
    ratios = values[1:] / values[:-1]
    return bool(np.allclose(ratios, ratios[0], rtol=1e-3) and not np.isclose(ratios[0], 1))


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


SPACINGS = ("auto", "lin", "log")
MAX_ROUNDS = 40  # bisection rounds: 2**-40 of a grid step is below float resolution


@dataclasses.dataclass(frozen=True)
class Refine:
    """Adaptive refinement of a sweep along one of its axes (`noisyjax.sweep.refine`): for
    every cell of the other axes, the value of `axis` at which the seed mean of the per-run
    output `var` (a trajectory's last value) crosses `threshold`, bracketed on the sweep's grid
    and bisected for at most `rounds` rounds, or until the bracket is at most `tol` wide (in the
    axis's units; 0: all rounds). `spacing` is how a bracket is halved: "lin" (arithmetic
    midpoint), "log" (geometric), or "auto": log when the axis's values are positive and evenly
    spaced in log but not in lin. The seed-mean crossing gets a `bootstrap` interval."""

    var: str
    threshold: float
    axis: str
    rounds: int = 4
    tol: float = 0.0
    spacing: str = "auto"
    bootstrap: int = 2000

    def __post_init__(self) -> None:
        for field in ("var", "axis"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip():
                fail(f"refine {field}", value, "a non-empty name")
        check_real("refine threshold", self.threshold, -math.inf, math.inf)
        object.__setattr__(self, "threshold", float(self.threshold))
        check_int("refine rounds", self.rounds, 0)
        if self.rounds > MAX_ROUNDS:
            fail("refine rounds", self.rounds, f"an integer in [0, {MAX_ROUNDS}]")
        check_real("refine tol", self.tol, 0.0, math.inf)
        object.__setattr__(self, "tol", float(self.tol))
        if self.spacing not in SPACINGS:
            fail("refine spacing", self.spacing, "one of " + ", ".join(SPACINGS))
        check_int("refine bootstrap", self.bootstrap, 100)


def parse_refine(text: str, **options: Any) -> Refine:
    """'VAR:THRESHOLD:AXIS' or 'VAR:THRESHOLD:AXIS:SPACING' (the CLI's --refine)."""
    parts = text.split(":")
    allowed = "VAR:THRESHOLD:AXIS or VAR:THRESHOLD:AXIS:lin|log (e.g. stage_one_exists:0.5:n_snr2)"
    if len(parts) not in (3, 4) or not all(p.strip() for p in parts):
        fail("--refine", text, allowed)
    try:
        threshold = float(parts[1])
    except ValueError:
        fail("--refine", text, allowed + "; THRESHOLD a number")
    spacing = parts[3].strip() if len(parts) == 4 else "auto"
    return Refine(parts[0].strip(), threshold, parts[2].strip(), spacing=spacing, **options)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A named grid: base settings, swept axes (outermost first) and seeds 0..seeds-1."""

    name: str
    cfg: Any
    hp: Any
    axes: tuple[Axis | Zip, ...] = ()
    seeds: int = 1
    refine: Refine | None = None  # locate a boundary along one axis (noisyjax.sweep.refine)

    def __post_init__(self) -> None:
        check_int("seeds", self.seeds)
        object.__setattr__(self, "seeds", int(self.seeds))  # a NumPy integer as a Python one
        exp = self.experiment
        if not isinstance(self.hp, exp.hparams_type):
            fail("hp", type(self.hp).__name__, f"a {exp.hparams_type.__name__} for {exp.name}")
        names = self.fields
        for axis in (f for a in self.axes for f in columns_of(a)):
            if axis.name not in exp.axis_names:
                fail("axis", axis.name, "one of " + ", ".join(exp.axis_names))
            if axis.name in exp.shape_axes and any(int(v) != v or v < 1 for v in axis.values):
                fail(f"axis {axis.name}", axis.values, "integers >= 1")
        if len(set(names)) != len(names):
            fail("axes", names, "each field at most once")
        zips = [a.name for a in self.axes if isinstance(a, Zip)]
        if len(set(self.dims)) != len(self.dims) or set(zips) & set(exp.axis_names):
            fail("zip", zips, "dimension names that are no field's and no other axis's")
        if self.refine is not None:
            if not isinstance(self.refine, Refine):
                fail("refine", self.refine, "a Refine")
            axes = {a.name: a for a in self.axes if isinstance(a, Axis)}
            refined = axes.get(self.refine.axis)
            if refined is None or len(refined.values) < 2:
                wide = [n for n, a in axes.items() if len(a.values) > 1]
                fail(
                    "--refine AXIS",
                    self.refine.axis,
                    "one of the sweep's axes with two values or more: "
                    + (", ".join(wide) or "none"),
                )
            if self.refine.spacing == "log" and min(refined.values) <= 0:
                fail(
                    "--refine spacing", "log", f"lin for an axis with values <= 0 ({refined.name})"
                )
        for derived, targets in exp.derived_axes.items():
            clash = set(targets) & set(names)
            if derived in names and clash:
                fail(f"axis {derived}", f"with {sorted(clash)[0]}", "one of the two, not both")

    @property
    def experiment(self) -> Experiment:
        return of_config(self.cfg)

    @property
    def fields(self) -> tuple[str, ...]:
        """The fields the axes set (a zip's fields each count), in the axes' order."""
        return tuple(f.name for a in self.axes for f in columns_of(a))

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
            "axes": [
                [a.name, {"zip": [[c.name, list(c.values)] for c in a.fields]}]
                if isinstance(a, Zip)
                else [a.name, list(a.values)]
                for a in self.axes
            ],
            "seeds": self.seeds,
            # Only when set: the fingerprints of sweeps without it stay as they were.
            **({"refine": dataclasses.asdict(self.refine)} if self.refine is not None else {}),
        }

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> Sweep:
        """The sweep `to_dict` wrote (config.json's "sweep", results.nc's attribute)."""
        exp = get(spec.get("kind", DEFAULT))
        return cls(
            spec["name"],
            config_from_dict(exp.config_type, spec["cfg"]),
            exp.hparams_type(**spec["hp"]),
            tuple(
                Zip(k, dict(v["zip"])) if isinstance(v, dict) and "zip" in v else Axis(k, tuple(v))
                for k, v in (spec["axes"] if isinstance(spec["axes"], list) else axes_of(spec))
            ),
            spec["seeds"],
            Refine(**spec["refine"]) if spec.get("refine") else None,
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
    # A zip's dimension is labelled by its points' positions.
    return [
        (name, list(range(len(values["zip"][0][1]))) if isinstance(values, dict) else values)
        for name, values in axes
    ]


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
    position = {}  # field -> (its axis's position, its values)
    for k, axis in enumerate(sweep.axes):
        for field in columns_of(axis):
            position[field.name] = (k, field.values)
            values = np.asarray(field.values)[index[:, k]]
            if field.name in exp.derived_axes:
                derived[field.name] = values.astype(np.float64)
                source |= dict.fromkeys(exp.derived_axes[field.name], field.name)
            else:
                columns[field.name] = values.astype(columns[field.name].dtype)
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
                k, given_values = position[name]
                run = int(np.flatnonzero(np.isclose(columns[field], value, equal_nan=True))[0])
                given = float(np.asarray(given_values)[index[run, k]])
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
