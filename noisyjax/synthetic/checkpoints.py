"""Reading a synthetic sweep back: one run's settings, data and stage snapshots.

The snapshots live in the sweep's chunk store (`noisyjax.sweep.store`: `stages/`, one Orbax
checkpoint per chunk with one item per snapshot stage, each a `Snapshot` of arrays with a leading
run axis); every item read is checked against the checksum stored with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from noisyjax.errors import ConfigError
from noisyjax.sweep import store
from noisyjax.sweep.store import SweepDirError, load_sweep, run_index, sweep_of
from noisyjax.synthetic.config import STAGE_NAMES, Config, HParams, Sizes
from noisyjax.synthetic.data import Batch
from noisyjax.synthetic.stages import Snapshot


def load_stage(sweep_dir: str | Path, stage: str, **coords: Any) -> Snapshot:
    """Snapshot arrays (NumPy, on the host) at `stage` for the selected runs.

    Coordinates select like `Dataset.sel` (e.g. `tau=0.2, seed=3`); the returned arrays have the
    remaining sweep dimensions first. `w` holds what the engine trains: the filters W
    (..., 2, m, d) on the dense engine, the coefficients C (..., 2, m, n + 1) of
    W = W(0) + C [mu; xi_1..xi_n] on the gram and wishart engines (`load_filters` rebuilds W;
    the projections G and A are not stored but redrawn exactly from the run's key by
    `load_run_data`). `b` is the bias (zero without one), `rho_*` is (..., 2, m, n). Arrays
    are at the bucket's padded n and d; when every selected run has the same n and d they are
    trimmed to them. `step` is the step of the snapshot (-1 where the transition never
    happened, in which case the arrays hold the initial state). Runs of different m cannot be
    stacked: select one m. A coordinate value matches to within float rounding (a relative
    1e-9); a value the sweep does not hold is refused with its values.
    """
    if stage not in STAGE_NAMES:
        raise ConfigError(f"stage={stage!r} is invalid: allowed one of " + ", ".join(STAGE_NAMES))
    sweep_dir = Path(sweep_dir)
    ds = load_sweep(sweep_dir)
    kept = sweep_of(ds).cfg.snapshot_stages
    if stage not in kept:
        raise ConfigError(f"stage={stage!r} is invalid: this sweep kept " + ", ".join(kept))
    selection = run_index(ds, coords)
    wanted = np.atleast_1d(selection.values).ravel()
    m_runs = at_runs(ds, "m", selection)
    if len(np.unique(m_runs)) > 1:
        raise ConfigError(
            f"coordinates {coords} are invalid: they select runs of different m; "
            "allowed a selection with one m (select m=...)"
        )
    wanted_set = set(wanted.tolist())
    found = store.read_snapshots(sweep_dir, stage, wanted_set, STAGE_NAMES)
    missing = sorted(wanted_set - set(found))
    if missing:
        raise SweepDirError(
            f"sweep {str(sweep_dir)!r} has no {stage} snapshot for runs "
            f"{missing[:10]}: rerun the sweep with --resume"
        )
    stacked = {k: np.stack([found[r][k] for r in wanted]) for k in Snapshot._fields}
    shape = selection.shape
    out = {k: v.reshape(shape + v.shape[1:]) for k, v in stacked.items()}
    n = np.unique(at_runs(ds, "n", selection))
    d = np.unique(at_runs(ds, "d", selection))
    if len(n) == 1 and len(d) == 1:
        engine = run_engine(ds, int(m_runs[0]), sweep_dir)
        out["w"] = out["w"][..., : int(d[0]) if engine == "dense" else int(n[0]) + 1]
        out["rho_bar"] = out["rho_bar"][..., : int(n[0])]
        out["rho_under"] = out["rho_under"][..., : int(n[0])]
    return Snapshot(**out)


def at_runs(ds: xr.Dataset, name: str, selection: xr.DataArray) -> np.ndarray:
    """`ds[name]` (a variable or coordinate over some of the sweep's dimensions) at the selected
    runs, flat in the order of `selection.values.ravel()`: found by coordinates, never by
    position (`results.nc` is sorted by axis value, the runs are numbered as the sweep gave
    its axes)."""
    cells = {d: selection[d].values for d in selection.coords if d in ds[name].dims}
    values = ds[name].sel(cells).broadcast_like(selection).transpose(*selection.dims)
    return np.asarray(values.values).ravel()


def run_engine(ds: xr.Dataset, m: int, sweep_dir: str | Path | None = None) -> str:
    """The engine that ran the bucket of m: as recorded in the sweep's plan, else resolved again
    (engine "auto" is resolved per bucket, see `noisyjax.sweep.plan`)."""
    from noisyjax.synthetic.experiment import resolve_engine

    config = Path(sweep_dir) / "config.json" if sweep_dir is not None else None
    recorded = json.loads(config.read_text()) if config and config.is_file() else {}
    for bucket in recorded.get("plan", {}).get("buckets", []):
        if bucket.get("m") == m and "engine" in bucket:
            return bucket["engine"]
    every = run_index(ds, {})
    in_bucket = at_runs(ds, "m", every) == m
    n_all, d_all = at_runs(ds, "n", every)[in_bucket], at_runs(ds, "d", every)[in_bucket]
    cfg = sweep_of(ds).cfg.replace(m=m, n=int(n_all.max()), d=int(d_all.max()))
    return resolve_engine(cfg, int(d_all.min())).step_engine


def run_settings(sweep_dir: str | Path, **coords: Any) -> tuple[Config, HParams, int]:
    """The unpadded static config, hyperparameters and seed of one run of a sweep."""
    ds = load_sweep(sweep_dir)
    selection = run_index(ds, coords)
    if selection.size != 1:
        raise ConfigError(
            f"coordinates {coords} are invalid: they select {selection.size} runs, "
            "allowed exactly one (give every sweep dimension)"
        )
    run = ds.sel({d: selection[d].values for d in selection.coords if d in ds.dims})
    cfg = sweep_of(ds).cfg.replace(n=int(run["n"]), d=int(run["d"]), m=int(run["m"]))
    hp = HParams(**{f: float(run[f]) for f in HParams.__dataclass_fields__})
    return cfg, hp, int(run["seed"])


def load_run_data(sweep_dir: str | Path, **coords: Any) -> tuple[Batch, Batch, Config, HParams]:
    """Rebuild one run's training and test sets, identical to what it trained on (on the wishart
    engine: in the reduced coordinates it was drawn in). The returned config has the run's
    unpadded n, d, m and the engine that ran it."""
    _, train, test, _, cfg, hp = load_run(sweep_dir, **coords)
    return train, test, cfg, hp


def load_run(sweep_dir: str | Path, **coords: Any):
    """(initial params, train, test, validation set or None, config, hparams) of one run."""
    import jax

    from noisyjax.synthetic.train import sample_run

    cfg, hp, seed = run_settings(sweep_dir, **coords)
    cfg = cfg.replace(engine=run_engine(load_sweep(sweep_dir), cfg.m, sweep_dir))
    hp_arrays = HParams(
        **{f: np.asarray(getattr(hp, f), cfg.dtype) for f in HParams.__dataclass_fields__}
    )
    sizes = Sizes(n=np.int32(cfg.n), d=np.int32(cfg.d))
    params0, train, test, val = sample_run(jax.random.key(seed), cfg, hp_arrays, sizes)
    return params0, train, test, val, cfg, hp


def load_filters(sweep_dir: str | Path, stage: str, **coords: Any) -> np.ndarray:
    """The filters W (2, m, d) of one run at `stage`, rebuilt as W(0) + C V on the gram and
    wishart engines (wishart: in its reduced coordinates, dimension 1 + 2m + n)."""
    from noisyjax.synthetic.engines import filters

    snap = load_stage(sweep_dir, stage, **coords)
    params0, train, _, _, cfg, _ = load_run(sweep_dir, **coords)
    if cfg.step_engine == "dense":
        return np.asarray(snap.w)
    return np.asarray(filters({"c": snap.w}, params0, train))
