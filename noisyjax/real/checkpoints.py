"""Reading a real-image sweep back: its settings and its stage snapshots.

The snapshots are written by the sweep engine exactly as for synthetic sweeps (the chunk store of
`noisyjax.sweep.store`); an item here is a `RealSnapshot`: the network's variables, the epoch,
and the run's flip mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisyjax.errors import ConfigError
from noisyjax.real.config import RealConfig
from noisyjax.real.stages import RealSnapshot
from noisyjax.sweep import store
from noisyjax.sweep.store import SweepDirError, load_sweep


def sweep_config(sweep_dir: str | Path) -> RealConfig:
    """The static config a real-image sweep directory was run with."""
    cfg = store.sweep_of(load_sweep(sweep_dir)).cfg
    if not isinstance(cfg, RealConfig):
        raise ConfigError(f"sweep_dir={str(sweep_dir)!r} is invalid: allowed a real-image sweep")
    return cfg


def load_real_stage(sweep_dir: str | Path, stage: str, **coords: Any) -> RealSnapshot:
    """The snapshot at `stage` of the one run selected by `coords` (e.g. tau=0.2, seed=0), as
    NumPy arrays; `epoch` is -1 where the stage was never reached (the initial network)."""
    sweep_dir = Path(sweep_dir)
    cfg = sweep_config(sweep_dir)
    if stage not in cfg.snapshot_stages:
        raise ConfigError(
            f"stage={stage!r} is invalid: allowed one of " + ", ".join(cfg.snapshot_stages)
        )
    selection = store.run_index(load_sweep(sweep_dir), coords)
    if selection.size != 1:
        raise ConfigError(
            f"coordinates {coords} are invalid: they select {selection.size} runs, allowed "
            "exactly one (give every sweep dimension)"
        )
    run = int(selection.values)
    found = store.read_snapshots(sweep_dir, stage, {run}, cfg.snapshot_stages)
    if run not in found:
        raise SweepDirError(
            f"sweep {str(sweep_dir)!r} has no {stage} snapshot for run {run}: rerun with --resume"
        )
    item = found[run]
    variables = {"params": {}, "batch_stats": {}} | dict(item["variables"])
    return RealSnapshot(variables, item["epoch"], item["flipped"])
