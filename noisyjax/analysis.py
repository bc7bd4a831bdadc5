"""Reductions of logged trajectories: values at the first logged step where a condition holds."""

from __future__ import annotations

import numpy as np
import xarray as xr


def first_step(condition: xr.DataArray, dim: str = "step") -> xr.DataArray:
    """Index of the first logged step where `condition` holds; -1 where it never does."""
    hit = condition.any(dim)
    return xr.where(hit, condition.argmax(dim), -1)


def value_at_first(ds: xr.Dataset, condition: xr.DataArray, var: str,
                   dim: str = "step") -> xr.DataArray:
    """`ds[var]` at the first logged step where `condition` holds; NaN where it never does."""
    index = first_step(condition, dim)
    picked = ds[var].isel({dim: index.clip(min=0)})
    return picked.where(index >= 0).drop_vars(dim, errors="ignore")


def flipped_acc_at_clean_fit(ds: xr.Dataset) -> xr.DataArray:
    """Flipped-sample accuracy (observed labels) at the first logged step with every clean sample
    fitted: near 0 when Stage I exists (SCIENCE.md section 5), near 1 when memorized at once."""
    return value_at_first(ds, ds["train_acc_clean"] >= 1.0, "train_acc_noisy").rename(
        "flipped_acc_at_clean_fit")


def seed_summary(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean and standard deviation over seeds (NaN-aware)."""
    with np.errstate(all="ignore"):
        return da.mean("seed", skipna=True), da.std("seed", skipna=True)
