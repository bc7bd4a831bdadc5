"""Tools that read a finished sweep back, without training: `--replot DIR` and `--summary DIR`.

Both load DIR/results.nc through `noisyjax.load_sweep` (which checks it against the checksum in
config.json), so what they show is what the sweep stored.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from noisyjax.sweep import load_sweep
from noisyjax.sweep.store import CONFIG, SweepDirError

SUMMARY = "summary.csv"
LEVEL = 0.95


def replot(out: Path) -> int:
    """Redraw the figures of the sweep in `out` from its results.nc (and of a refinement from
    its boundary.nc); config.json's list of figures is updated. A preset of one's own
    (FILE.py:FUNCTION) has no figures to redraw but a refinement's."""
    from noisyjax.sweep import refine
    from noisyjax.sweep.runner import draw_figures, write_json
    from sweeps.presets import PRESETS, on_preset_axes

    ds = load_sweep(out)
    config = _config(out)
    name = config["sweep"]["name"]
    refined = (out / refine.BOUNDARY).is_file()
    if name not in PRESETS and not refined:
        raise SweepDirError(
            f"--replot {str(out)!r}: its sweep {name!r} is no built-in preset: allowed the "
            "directory of a preset's sweep (draw your own figures from results.nc)"
        )
    drawn, skipped = [], None
    if refined:
        boundary = refine.load_refinement(out)
        drawn, skipped = draw_figures(
            lambda b, o: [refine.boundary_figure(b, ds, o)], boundary, out
        )
    if name in PRESETS:
        preset_sweep, figures = PRESETS[name]()
        figures = on_preset_axes(figures, tuple(a.name for a in preset_sweep.axes))
        more, skipped_more = draw_figures(figures, ds, out)
        drawn, skipped = drawn + more, skipped or skipped_more
    where = config["refinement"] if refined and "refinement" in config else config
    where["figures"] = drawn
    where.pop("figures_skipped", None)
    if skipped:
        where["figures_skipped"] = skipped
    write_json(out / CONFIG, config)
    for name in drawn:
        print(out / name)
    return 0


def seed_summary(ds: xr.Dataset, level: float = LEVEL) -> pd.DataFrame:
    """Per grid cell and per-run output (a variable with no time or sample dimension): the mean
    over seeds, a Student-t interval at `level`, and how many seeds have a value (a stage time
    that was never reached reads back from results.nc as missing, and counts as no value)."""
    frames = []
    for name, da in ds.data_vars.items():
        if "seed" not in da.dims or set(da.dims) - {"seed"} - set(_axes(ds)):
            continue  # a trajectory, a per-sample record or a per-sweep value
        x = da.astype(float)
        n = x.notnull().sum("seed")
        mean = x.mean("seed")
        sem = x.std("seed", ddof=1) / np.sqrt(n)
        half = sem * xr.apply_ufunc(lambda k: stats.t.ppf(0.5 + level / 2, np.maximum(k - 1, 1)), n)
        half = half.where(n > 1)
        table = xr.Dataset(
            {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "seeds": n}
        ).to_dataframe()
        table.insert(0, "variable", name)
        frames.append(table.reset_index())
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


def summary(out: Path) -> int:
    """Print the seed summary of the sweep in `out` and write it to out/summary.csv."""
    table = seed_summary(load_sweep(out))
    path = out / SUMMARY
    try:
        table.to_csv(path, index=False, float_format="%.6g")
    except OSError as err:
        raise SweepDirError(
            f"--summary {str(out)!r}: cannot write {SUMMARY} ({err.strerror})"
        ) from None
    try:
        print(table.to_string(index=False, max_rows=60, float_format=lambda v: f"{v:.4g}"))
        sys.stdout.flush()
    except BrokenPipeError:  # `--summary DIR | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(
        f"wrote {path} ({len(table)} rows: cell x variable; {LEVEL:.0%} t intervals)",
        file=sys.stderr,
    )
    return 0


def _axes(ds: xr.Dataset) -> list[str]:
    """The grid's dimensions: every dimension but seed, time and per-sample ones."""
    return [d for d in ds.dims if d not in ("seed", "step", "epoch") and not d.startswith("sample")]


def _config(out: Path) -> dict:
    try:
        return json.loads((out / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise SweepDirError(f"{str(out)!r}: {CONFIG} is unreadable ({err})") from None
