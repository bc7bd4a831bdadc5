"""Adaptive refinement: locate, per cell of the other axes, where a seed mean crosses a threshold
along one axis, training only the probes that narrow each bracket.

A sweep with a `Refine` rule (`noisyjax.sweep.spec.Refine`) runs in three parts, each an
ordinary sweep directory run by the one engine (`run_sweep`), so resume, checksums, locks and
the usual readers work on every part:

  OUT/             the sweep as given (the coarse grid): config.json, stages/, results.nc
  OUT/rounds/R/    round R = 1, 2, ...: one probe per open bracket of every cell, times the
                   seeds, as a zip of the cells' coordinates and the probes (`spec.Zip`)
  OUT/boundary.nc  per cell: the crossing, its bootstrap interval, the bracket, the flags, and
                   the per-run values of VAR at every point evaluated (`load_refinement`)
  OUT/boundary.png the boundary with its interval over the coarse grid's seed means

The rule. For one cell, the points evaluated so far (the coarse grid's values of AXIS, then
every probe) are sorted along AXIS; a point is above when the seed mean of VAR there exceeds
THRESHOLD. The bracket is the last pair of neighbouring points on opposite sides (the value
from which VAR stays on one side); the next probe is its midpoint (arithmetic, or geometric on
a log-spaced axis; rounded to an integer on a shape axis, where a bracket of width 1 is final).
After the last round the crossing is interpolated linearly (in log on a log axis) between the
bracket's two seed means. Its interval resamples the seeds with replacement, one draw for all of
a cell's points (a seed is one data draw and init at every point: common random numbers), and
applies the same rule to each resample's means.

Each round's probes are one batched sweep, and compiled programs are kept from one part to the
next (`run_chunks(programs=...)`): every round runs the coarse grid's program whenever its
bucket is the same, with the same chunk size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from noisyjax.errors import fail
from noisyjax.sweep import store
from noisyjax.sweep.plan import Plan, plan
from noisyjax.sweep.runner import Figures, draw_figures, run_sweep
from noisyjax.sweep.spec import Axis, Refine, Sweep, Zip, log_spaced

ROUNDS_DIR = "rounds"
BOUNDARY = "boundary.nc"
FIGURE = "boundary.png"
POINT = "point"  # the dimension of a cell's evaluated points in boundary.nc
LEVEL = 0.95  # bootstrap interval
MIN_FOUND = 0.9  # below this fraction of resamples with a crossing, no interval is given
DIGITS = 12  # probe values to 12 significant digits, like the axis specs


# -- the rule, on one cell's points: pure NumPy --------------------------------------------------


def spacing_of(refine: Refine, values: tuple) -> str:
    """ "lin" or "log": the rule's spacing, or for "auto" log when the axis's values are evenly
    spaced in log (`spec.log_spaced`)."""
    if refine.spacing != "auto":
        return refine.spacing
    return "log" if log_spaced(np.sort(np.asarray(values, float))) else "lin"


def last_bracket(x: np.ndarray, mean: np.ndarray, threshold: float) -> tuple[int, int] | None:
    """Indices (i, j) of the last pair of neighbouring points (x sorted; points whose mean is
    NaN left out) whose means lie on opposite sides of the threshold; None when there is none."""
    ok = np.flatnonzero(np.isfinite(mean))
    above = mean[ok] > threshold
    changes = np.flatnonzero(above[1:] != above[:-1])
    return None if not len(changes) else (int(ok[changes[-1]]), int(ok[changes[-1] + 1]))


def crossings(mean: np.ndarray, threshold: float) -> int:
    """How many times the means (sorted along the axis, NaN left out) cross the threshold."""
    above = mean[np.isfinite(mean)] > threshold
    return int(np.count_nonzero(above[1:] != above[:-1]))


def interpolate(x0: float, x1: float, m0: float, m1: float, threshold: float, log: bool) -> float:
    """Where the line through (x0, m0) and (x1, m1) meets the threshold (in log x when `log`)."""
    w = (threshold - m0) / (m1 - m0)
    if log:
        return float(math.exp(math.log(x0) + w * (math.log(x1) - math.log(x0))))
    return float(x0 + w * (x1 - x0))


def crossing(x: np.ndarray, mean: np.ndarray, threshold: float, log: bool) -> float:
    """The crossing located in the last bracket; NaN when the means never cross."""
    found = last_bracket(x, mean, threshold)
    if found is None:
        return float("nan")
    i, j = found
    return interpolate(x[i], x[j], mean[i], mean[j], threshold, log)


def midpoint(lo: float, hi: float, log: bool, integer: bool) -> float | int | None:
    """The probe that halves (lo, hi), or None when the bracket cannot be narrowed."""
    mid = math.sqrt(lo * hi) if log else (lo + hi) / 2
    if integer:
        mid = int(round(mid))
        return mid if lo < mid < hi else None
    mid = float(f"{mid:.{DIGITS}g}")
    return mid if lo < mid < hi else None


def bootstrap(
    x: np.ndarray, values_PS: np.ndarray, threshold: float, log: bool, draws: int
) -> tuple[float, float, float]:
    """(low, high, fraction of resamples with a crossing) of the crossing when the seeds are
    resampled with replacement, one draw for every point (common random numbers). The interval
    is NaN when fewer than MIN_FOUND of the resamples cross."""
    seeds = values_PS.shape[1]
    rng = np.random.default_rng(0)  # fixed: the same file on every run and resume
    pick_BS = rng.integers(0, seeds, size=(draws, seeds))
    means_BP = nanmean(values_PS[:, pick_BS], axis=2).T
    samples = np.full(draws, np.nan)
    finite_B = np.isfinite(means_BP).all(axis=1)
    # Rows without a missing mean at once: the last sign change of each.
    above_BP = means_BP[finite_B] > threshold
    change_BQ = above_BP[:, 1:] != above_BP[:, :-1]
    has_B = change_BQ.any(axis=1)
    i_B = change_BQ.shape[1] - 1 - np.argmax(change_BQ[:, ::-1], axis=1)
    m_BP = means_BP[finite_B]
    rows = np.arange(len(m_BP))
    m0, m1 = m_BP[rows, i_B], m_BP[rows, np.minimum(i_B + 1, m_BP.shape[1] - 1)]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = (threshold - m0) / (m1 - m0)
        x0, x1 = x[i_B], x[np.minimum(i_B + 1, len(x) - 1)]
        located = np.exp(np.log(x0) + w * np.log(x1 / x0)) if log else x0 + w * (x1 - x0)
    samples[np.flatnonzero(finite_B)] = np.where(has_B, located, np.nan)
    for b in np.flatnonzero(~finite_B):  # rows with a missing mean: point by point
        samples[b] = crossing(x, means_BP[b], threshold, log)
    found = np.isfinite(samples)
    if found.mean() < MIN_FOUND:
        return float("nan"), float("nan"), float(found.mean())
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(samples[found], [tail, 100 - tail])
    return float(low), float(high), float(found.mean())


def nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """The mean leaving NaN out (a marker never reached); NaN, quietly, where all are."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def check_var(refine: Refine, outputs: dict[str, Any], variables, time: str) -> None:
    """VAR must be a per-run output of the planned program (`outputs`: one run's output
    shapes), a scalar or a trajectory, and THRESHOLD strictly inside the range VAR can take:
    (0, 1) for a flag or a fraction, above 0 for a step count."""
    known = sorted(
        k for k, v in outputs.items() if k != time and not k.startswith("sample_") and v.ndim <= 1
    )
    if refine.var not in known:
        fail("--refine VAR", refine.var, "a per-run output: " + ", ".join(known))
    entry = variables(refine.var) or ("", "", "")
    fraction = outputs[refine.var].dtype == bool or entry[2].startswith(("Fraction", "Whether"))
    t = refine.threshold
    if fraction and not 0 < t < 1:
        fail("--refine THRESHOLD", t, f"a number in (0, 1): {refine.var} is a fraction or a flag")
    if entry[1] in ("steps", "epochs") and not t > 0:
        fail("--refine THRESHOLD", t, f"a number > 0: {refine.var} counts {entry[1]}")


def check_plan(plan_: Plan) -> None:
    """The rule of a planned sweep against the outputs one of its runs will have (traced, not
    compiled or run)."""
    import jax

    exp, bucket = plan_.sweep.experiment, plan_.buckets[0]
    one = jax.tree.map(lambda a: a[0], exp.inputs(plan_.table, bucket.runs[:1], bucket.cfg))
    outputs, _ = jax.eval_shape(exp.make_run(bucket.cfg), one, exp.shared(bucket.cfg))
    check_var(plan_.sweep.refine, outputs, exp.variables, exp.time)


# -- cells and their points ----------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    """One combination of the other axes' values and the points evaluated there."""

    coords: dict[str, float | int]
    x: list[float] = dataclasses.field(default_factory=list)
    values: list[np.ndarray] = dataclasses.field(default_factory=list)  # (S,) per point
    rounds: list[int] = dataclasses.field(default_factory=list)  # 0: the coarse grid

    def add(self, x: float, values_S: np.ndarray, round_: int) -> None:
        self.x.append(x)
        self.values.append(values_S)
        self.rounds.append(round_)

    def sorted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, values (P, S), rounds), sorted along the axis."""
        order = np.argsort(self.x, kind="stable")
        return (
            np.asarray(self.x, float)[order],
            np.stack(self.values)[order],
            np.asarray(self.rounds)[order],
        )

    def mean(self) -> tuple[np.ndarray, np.ndarray]:
        x, values, _ = self.sorted()
        return x, nanmean(values, axis=1)


def per_run(ds: xr.Dataset, var: str, time: str) -> xr.DataArray:
    """VAR per run as floats: a trajectory's last logged value, a flag as 0 or 1, a marker
    never reached as NaN."""
    da = ds[var]
    if time in da.dims:
        da = da.isel({time: -1})
    return da.astype(float)


def refined_axis(sweep: Sweep) -> Axis:
    """The axis the sweep's rule refines (`Sweep` checks that it is one of its axes)."""
    return next(a for a in sweep.axes if a.name == sweep.refine.axis)


def cells_of(sweep: Sweep) -> list[Cell]:
    """The cells of the other axes, in their given order (C order of their values)."""
    others = [a for a in sweep.axes if a.name != sweep.refine.axis]
    return [
        Cell(dict(zip([a.name for a in others], combo, strict=True)))
        for combo in itertools.product(*[a.values for a in others])
    ]


def add_coarse(cells: list[Cell], sweep: Sweep, ds: xr.Dataset) -> None:
    refine = sweep.refine
    axis = refined_axis(sweep)
    da = per_run(ds, refine.var, sweep.experiment.time)
    for cell in cells:
        at = store.select(da, cell.coords) if cell.coords else da
        for value in axis.values:
            cell.add(value, store.select(at, {axis.name: value}).transpose("seed").values, 0)


def probes(cells: list[Cell], sweep: Sweep, log: bool, integer: bool) -> list[tuple[int, Any]]:
    """(cell index, probe value) for every cell whose bracket is still open."""
    refine = sweep.refine
    out = []
    for k, cell in enumerate(cells):
        x, mean = cell.mean()
        found = last_bracket(x, mean, refine.threshold)
        if found is None:
            continue
        i, j = found
        if refine.tol and x[j] - x[i] <= refine.tol:
            continue
        mid = midpoint(float(x[i]), float(x[j]), log, integer)
        if mid is not None:
            out.append((k, mid))
    return out


def round_sweep(sweep: Sweep, cells: list[Cell], open_: list[tuple[int, Any]], r: int) -> Sweep:
    """Round r: one point per open cell (its coordinates and its probe), times the seeds."""
    names = list(cells[0].coords)
    fields = {name: [cells[k].coords[name] for k, _ in open_] for name in names}
    fields[sweep.refine.axis] = [mid for _, mid in open_]
    return dataclasses.replace(
        sweep, name=f"{sweep.name}-round{r}", axes=(Zip(POINT, fields),), refine=None
    )


def add_round(cells: list[Cell], open_: list[tuple[int, Any]], ds: xr.Dataset, sweep, r: int):
    da = per_run(ds, sweep.refine.var, sweep.experiment.time).transpose(POINT, "seed")
    for p, (k, mid) in enumerate(open_):
        cells[k].add(mid, da.isel({POINT: p}).values, r)


# -- the driver ----------------------------------------------------------------------------------


def shared_chunk_runs(plan_: Plan, cells: int) -> int:
    """One chunk size for the coarse grid and every round, so that they all run one compiled
    program: a round's runs (cells x seeds) at most, and never more than the plan chose."""
    step = plan_.n_devices * max(b.vector_runs for b in plan_.buckets)
    round_runs = math.ceil(cells * plan_.sweep.seeds / step) * step
    return min(max(b.chunk_runs for b in plan_.buckets), round_runs)


def part_options(plan_: Plan, chunk_runs: int | None = None) -> dict[str, Any]:
    """How the coarse grid and every round are planned: the plan's budget and vector width,
    and `chunk_runs` or the shared chunk size."""
    return {
        "max_memory": plan_.max_memory,
        "vector_runs": max(b.vector_runs for b in plan_.buckets),
        "chunk_runs": chunk_runs or shared_chunk_runs(plan_, len(cells_of(plan_.sweep))),
    }


def coarse_plan(plan_: Plan, chunk_runs: int | None = None) -> Plan:
    """The plan of a refined sweep's coarse grid, chunked as its rounds will be."""
    options = part_options(plan_, chunk_runs)
    if all(b.chunk_runs == options["chunk_runs"] for b in plan_.buckets):
        return plan_
    return plan(plan_.sweep, **options)


def run_refined(
    plan_: Plan,
    out: Path,
    *,
    resume: bool = False,
    figures: Figures | None = None,
    progress: bool = True,
    chunk_runs: int | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> xr.Dataset:
    """Run a refined sweep into `out`: the coarse grid, then the rounds, then boundary.nc and
    its figure; the preset's `figures` last, with boundary.nc in place. Returns boundary.nc's
    dataset. Every part is planned as `plan_` was (memory budget, vector width), with one
    chunk size (`chunk_runs`, or `shared_chunk_runs`). With `resume`, every part already
    complete is read back, the part cut off is finished, and the rest runs."""
    out = Path(out)
    sweep, refine = plan_.sweep, plan_.sweep.refine
    if refine is None:
        fail("refine", None, "a sweep with a Refine rule")
    options = part_options(plan_, chunk_runs)
    plan_ = coarse_plan(plan_, chunk_runs)
    cells = cells_of(sweep)
    axis = refined_axis(sweep)
    log_spacing = spacing_of(refine, axis.values) == "log"
    integer = refine.axis in sweep.experiment.shape_axes
    programs: dict = {}
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    coarse = run_sweep(plan_, out, resume=resume, progress=progress, programs=programs)
    add_coarse(cells, sweep, coarse)
    spent = [plan_.table.n_runs]
    for r in range(1, refine.rounds + 1):
        open_ = probes(cells, sweep, log_spacing, integer)
        if not open_:
            break
        part = round_sweep(sweep, cells, open_, r)
        where = out / ROUNDS_DIR / str(r)
        again = resume and (where / store.CONFIG).is_file()
        probes_ = f"{len(open_)} brackets x {sweep.seeds} seeds"
        log(f"{sweep.name}: round {r} of {refine.rounds}: {probes_}")
        ds = run_sweep(
            plan(part, **options), where, resume=again, progress=progress, programs=programs
        )
        add_round(cells, open_, ds, sweep, r)
        spent.append(len(open_) * sweep.seeds)
    boundary = boundary_dataset(sweep, cells, log_spacing, spent)
    store.write_dataset(boundary, out / BOUNDARY)
    record(out, refine, spent, started, boundary)
    boundary = load_refinement(out)
    drawn, skipped = draw_figures(lambda ds, o: [boundary_figure(ds, coarse, o)], boundary, out)
    if figures is not None:
        more, skipped_more = draw_figures(figures, coarse, out)
        drawn, skipped = drawn + more, skipped or skipped_more
    record(out, refine, spent, started, boundary, figures=drawn, figures_skipped=skipped)
    return boundary


def record(out: Path, refine: Refine, spent: list[int], started: str, ds, **figures) -> None:
    """config.json's `refinement`: the rule, the runs spent per part, and what was located."""
    config = json.loads((out / store.CONFIG).read_text())
    located = ds["located"].values
    config["refinement"] = {
        "rule": dataclasses.asdict(refine),
        "runs_per_round": spent,
        "runs": int(sum(spent)),
        "full_grid_runs": int(ds.attrs["full_grid_runs"]),
        "cells": int(located.size),
        "cells_located": int(located.sum()),
        "started": started,
        "boundary_sha256": store.file_checksum(out / BOUNDARY),
        **{k: v for k, v in figures.items() if v},
    }
    store.write_json(out / store.CONFIG, config)


def boundary_dataset(sweep: Sweep, cells: list[Cell], log: bool, spent: list[int]) -> xr.Dataset:
    """boundary.nc: one entry per cell of the other axes (dimensions in their given order,
    values sorted), and each cell's evaluated points (sorted along the axis, NaN-padded)."""
    refine = sweep.refine
    others = [a for a in sweep.axes if a.name != refine.axis]
    shape = tuple(len(a.values) for a in others)
    n_points = max(len(c.x) for c in cells)
    seeds = sweep.seeds
    cell_vars: dict[str, np.ndarray] = {
        name: np.full(len(cells), np.nan)
        for name in ("crossing", "crossing_low", "crossing_high", "bracket_low", "bracket_high")
    }
    cell_vars["bootstrap_found"] = np.zeros(len(cells))
    n_cross = np.zeros(len(cells), np.int64)
    located = np.zeros(len(cells), bool)
    monotone = np.zeros(len(cells), bool)
    px = np.full((len(cells), n_points), np.nan)
    pmean = np.full((len(cells), n_points), np.nan)
    pround = np.full((len(cells), n_points), -1, np.int64)
    pvalues = np.full((len(cells), n_points, seeds), np.nan)
    for k, cell in enumerate(cells):
        x, values, rounds = cell.sorted()
        _, mean = cell.mean()
        px[k, : len(x)], pmean[k, : len(x)], pround[k, : len(x)] = x, mean, rounds
        pvalues[k, : len(x)] = values
        n_cross[k] = crossings(mean, refine.threshold)
        found = last_bracket(x, mean, refine.threshold)
        if found is None:
            continue
        i, j = found
        located[k] = True
        cell_vars["bracket_low"][k], cell_vars["bracket_high"][k] = x[i], x[j]
        cell_vars["crossing"][k] = interpolate(x[i], x[j], mean[i], mean[j], refine.threshold, log)
        low, high, found = bootstrap(x, values, refine.threshold, log, refine.bootstrap)
        cell_vars["crossing_low"][k], cell_vars["crossing_high"][k] = low, high
        cell_vars["bootstrap_found"][k] = found
        # Monotone inside the coarse bracket that holds the final one (every probe lies there).
        coarse = np.flatnonzero(rounds == 0)
        lo_c = coarse[coarse <= i].max() if (coarse <= i).any() else 0
        hi_c = coarse[coarse >= j].min() if (coarse >= j).any() else len(x) - 1
        inside = mean[lo_c : hi_c + 1]
        inside = inside[np.isfinite(inside)]
        steps = np.diff(inside)
        monotone[k] = bool((steps >= 0).all() or (steps <= 0).all())
    dims = tuple(a.name for a in others)
    coords: dict[str, Any] = {a.name: list(a.values) for a in others}
    coords[POINT] = np.arange(n_points)
    coords["seed"] = np.arange(seeds)
    in_axis = {"crossing", "crossing_low", "crossing_high", "bracket_low", "bracket_high"}
    units = (sweep.experiment.variables(refine.axis) or ("", "1", ""))[1]
    data: dict[str, Any] = {
        name: (dims, v.reshape(shape), attrs_of(name, refine, units if name in in_axis else "1"))
        for name, v in cell_vars.items()
    }
    data["crossings"] = (dims, n_cross.reshape(shape), attrs_of("crossings", refine))
    data["located"] = (dims, located.reshape(shape), attrs_of("located", refine))
    data["monotone"] = (dims, monotone.reshape(shape), attrs_of("monotone", refine))
    data["point_" + refine.axis] = (
        dims + (POINT,),
        px.reshape(shape + (n_points,)),
        attrs_of("point_x", refine, units),
    )
    data["point_mean"] = (
        dims + (POINT,),
        pmean.reshape(shape + (n_points,)),
        attrs_of("point_mean", refine),
    )
    data["point_round"] = (
        dims + (POINT,),
        pround.reshape(shape + (n_points,)),
        attrs_of("point_round", refine),
    )
    data["point_" + refine.var] = (
        dims + (POINT, "seed"),
        pvalues.reshape(shape + (n_points, seeds)),
        attrs_of("point_var", refine),
    )
    ds = xr.Dataset(data, coords=coords)
    ds = ds.sortby(list(dims)) if dims else ds
    full = full_grid_runs(sweep, cells, log)
    ds.attrs.update(
        Conventions=store.CONVENTIONS,
        title=f"noisyjax refinement of {sweep.name!r}: where the seed mean of {refine.var} "
        f"crosses {refine.threshold:g} along {refine.axis}",
        sweep=json.dumps(sweep.to_dict()),
        var=refine.var,
        threshold=refine.threshold,
        axis=refine.axis,
        spacing="log" if log else "lin",
        rounds=refine.rounds,
        tol=refine.tol,
        runs=int(sum(spent)),
        runs_per_round=json.dumps(spent),
        full_grid_runs=full,
        rounds_dir=ROUNDS_DIR,
    )
    return ds


def attrs_of(name: str, refine: Refine, units: str = "1") -> dict[str, str]:
    """CF attributes of boundary.nc's variables (`units`: those of the refined axis for the
    variables in its units)."""
    a, v, t = refine.axis, refine.var, f"{refine.threshold:g}"
    text = {
        "crossing": f"{a} at which the seed mean of {v} crosses {t} (last bracket, interpolated)",
        "crossing_low": f"low end of the {LEVEL:.0%} bootstrap interval of the crossing",
        "crossing_high": f"high end of the {LEVEL:.0%} bootstrap interval of the crossing",
        "bracket_low": f"lower end of the final bracket along {a}",
        "bracket_high": f"upper end of the final bracket along {a}",
        "bootstrap_found": "fraction of seed resamples whose means cross the threshold",
        "crossings": f"number of times the seed means cross {t} over the evaluated points",
        "located": "whether the seed means cross the threshold (a bracket was found)",
        "monotone": "whether the seed means are monotone along the coarse bracket of the crossing",
        "point_x": f"{a} at each evaluated point of the cell, sorted (NaN: no point)",
        "point_mean": f"seed mean of {v} at each evaluated point",
        "point_round": "the round that evaluated the point (0: the coarse grid; -1: no point)",
        "point_var": f"{v} of every run at each evaluated point (a trajectory's last value)",
    }[name]
    return {"long_name": text.split(" (")[0], "units": units, "description": text}


def full_grid_runs(sweep: Sweep, cells: list[Cell], log: bool) -> int:
    """The runs a full grid would take to reach the finest bracket the refinement reached:
    the coarse span at the smallest spacing seen, for every cell, times the seeds."""
    finest = math.inf
    for cell in cells:
        x = np.sort(np.asarray(cell.x, float))
        gaps = np.diff(np.log(x)) if log else np.diff(x)
        if len(gaps):
            finest = min(finest, float(gaps.min()))
    axis = refined_axis(sweep)
    lo, hi = min(axis.values), max(axis.values)
    span = math.log(hi / lo) if log else hi - lo
    values = (
        int(math.floor(span / finest + 1e-9)) + 1 if math.isfinite(finest) else len(axis.values)
    )
    return values * len(cells) * sweep.seeds


def load_refinement(directory: str | Path) -> xr.Dataset:
    """boundary.nc of a refined sweep directory, checked against the checksum config.json
    recorded for it."""
    path = Path(directory) / BOUNDARY
    if not path.is_file():
        raise store.SweepDirError(
            f"sweep directory {str(directory)!r} has no {BOUNDARY}: allowed the directory of a "
            "finished refined sweep (--refine)"
        )
    try:
        recorded = json.loads((Path(directory) / store.CONFIG).read_text())["refinement"]
        expected = recorded["boundary_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        expected = None
    if expected is not None and store.file_checksum(path) != expected:
        raise store.SweepDirError(
            f"sweep directory {str(directory)!r}: {BOUNDARY} does not match its checksum in "
            f"{store.CONFIG}: rerun the sweep with --resume"
        )
    return store.read_dataset(path)


def load_round(directory: str | Path, r: int) -> xr.Dataset:
    """results.nc of round `r` (1, 2, ...) of a refined sweep: every output of its runs."""
    return store.load_sweep(Path(directory) / ROUNDS_DIR / str(r))


# -- the figure ----------------------------------------------------------------------------------


def boundary_figure(ds: xr.Dataset, coarse: xr.Dataset, out: Path) -> Path:
    """The located crossing with its interval over the coarse grid's seed means: a heatmap of
    the means over (AXIS, first other axis), one panel per combination of the further axes (at
    most 6), or, with no other axis, the means along AXIS."""
    from matplotlib.figure import Figure

    from noisyjax.analysis.plots import _edges, axis_label, save

    var, axis, threshold = ds.attrs["var"], ds.attrs["axis"], float(ds.attrs["threshold"])
    others = list(ds["crossing"].dims)
    time = "epoch" if "epoch" in coarse.dims else "step"
    mean = per_run(coarse, var, time).mean("seed")
    panels = list(itertools.product(*[range(ds.sizes[d]) for d in others[1:]]))[:6]
    fig = Figure(
        figsize=(6.4 if len(panels) == 1 else 4.2 * len(panels), 4.6), layout="constrained"
    )
    axes = fig.subplots(1, len(panels), squeeze=False).ravel()
    for ax, panel in zip(axes, panels, strict=True):
        where = dict(zip(others[1:], panel, strict=True))
        cell = ds.isel(where)
        label = ", ".join(f"{axis_label(coarse, d)} = {cell[d].item():g}" for d in others[1:])
        if not others:
            x = cell["point_" + axis].values
            ok = np.isfinite(x)
            ax.plot(x[ok], cell["point_mean"].values[ok], "o-", ms=3, label="seed mean")
            ax.axhline(threshold, color="gray", ls="--", lw=0.8, label=f"threshold {threshold:g}")
            _mark(ax, cell, threshold)
            ax.set_ylabel(axis_label(coarse, var))
        else:
            y_name = others[0]
            sub = mean.isel(where).transpose(y_name, axis)
            xs, ys = sub[axis].values.astype(float), sub[y_name].values.astype(float)
            image = ax.pcolormesh(_edges(xs), _edges(ys), sub.values, shading="flat", cmap="YlGnBu")
            fig.colorbar(image, ax=ax, label=f"seed mean of {var}, coarse grid")
            line = {
                k: cell[k].transpose(y_name).values
                for k in ("crossing", "crossing_low", "crossing_high")
            }
            has = np.isfinite(line["crossing_low"])
            ax.errorbar(
                line["crossing"][has],
                ys[has],
                xerr=[
                    line["crossing"][has] - line["crossing_low"][has],
                    line["crossing_high"][has] - line["crossing"][has],
                ],
                fmt="o",
                ms=3,
                color="red",
                elinewidth=0.8,
                label=f"crossing of {threshold:g}, {LEVEL:.0%} interval",
            )
            loose = np.isfinite(line["crossing"]) & ~has
            if loose.any():
                ax.plot(
                    line["crossing"][loose],
                    ys[loose],
                    "o",
                    mfc="none",
                    color="red",
                    ms=4,
                    label="crossing, no interval",
                )
            flagged = ~cell["monotone"].transpose(y_name).values & np.isfinite(line["crossing"])
            if flagged.any():
                ax.plot(
                    line["crossing"][flagged],
                    ys[flagged],
                    "x",
                    color="black",
                    ms=5,
                    label="not monotone in its bracket",
                )
            ax.set_ylabel(axis_label(coarse, y_name))
            if log_spaced(ys):
                ax.set_yscale("log")
            if log_spaced(xs):
                ax.set_xscale("log")
        ax.set_xlabel(axis_label(coarse, axis))
        if label:
            ax.set_title(label, fontsize=9)
        ax.legend(fontsize=6, loc="best")
    located = ds["located"].values
    fig.suptitle(
        f"where the seed mean of {var} crosses {threshold:g}: {int(located.sum())} of "
        f"{located.size} cells located\n{int(ds.attrs['runs']):,} runs (a full grid at the "
        f"same resolution: {int(ds.attrs['full_grid_runs']):,})",
        fontsize=9,
    )
    path = out / FIGURE
    save(fig, path)
    return path


def _mark(ax, cell: xr.Dataset, threshold: float) -> None:
    x = float(cell["crossing"])
    if not math.isfinite(x):
        return
    low, high = float(cell["crossing_low"]), float(cell["crossing_high"])
    if math.isfinite(low):
        ax.errorbar([x], [threshold], xerr=[[x - low], [high - x]], fmt="s", color="red", capsize=3)
    else:
        ax.plot([x], [threshold], "s", color="red")
