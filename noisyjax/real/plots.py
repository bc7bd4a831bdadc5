"""Figures of a real-image sweep: accuracy trajectories with stage lines, attribution grids.

Built on `matplotlib.figure.Figure` directly (no pyplot state), like `noisyjax.analysis.plots`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from noisyjax.analysis.plots import save, seed_band

CURVES = (
    ("train_acc_clean", "train clean", "C2", "-"),
    ("train_acc_noisy", "train flipped (observed labels)", "C3", "-"),
    ("train_acc_noisy_true", "train flipped (true labels)", "C3", ":"),
    ("test_acc", "test", "C0", "-"),
)
SEPARATION = (
    ("frac_clean_below_log2", "clean: loss < log 2", "C2"),
    ("frac_noisy_above_log2", "flipped: loss > log 2", "C3"),
    ("loss_auroc", "AUROC of loss (flipped vs clean)", "k"),
)


def stage_epochs(ds: xr.Dataset, name: str) -> list[int]:
    """A transition's epoch in each seed (never-reached seeds left out)."""
    return [int(v) for v in np.ravel(ds[name].values) if v >= 0]


def accuracy_trajectories(ds: xr.Dataset, path: Path, *, title: str = "") -> Path:
    """One column per noise rate: accuracies (top) and the log-2 separation (bottom), mean over
    seeds with a min-max band, dashed lines at the seeds' median t1 and t2."""
    taus = [float(t) for t in ds["tau"].values] if "tau" in ds.dims else [None]
    fig = Figure(figsize=(4.2 * len(taus), 6.4), layout="constrained")
    axes = fig.subplots(2, len(taus), sharex=True, squeeze=False)
    epoch = ds["epoch"].values
    for col, tau in enumerate(taus):
        run = ds.sel(tau=tau) if tau is not None else ds
        top, bottom = axes[0, col], axes[1, col]
        for name, label, color, style in CURVES:
            seed_band(top, epoch, run[name], label, color, style, alpha=0.15, lw=1.4)
        for name, label, color in SEPARATION:
            seed_band(bottom, epoch, run[name], label, color, alpha=0.15, lw=1.4)
        for name in ("t1", "t2"):
            times = stage_epochs(run, name)
            if times:
                t = float(np.median(times))
                for ax in (top, bottom):
                    ax.axvline(t, color="gray", ls="--", lw=1)
                top.annotate(
                    f"{name} (median {t:g}; seeds {min(times)}-{max(times)})"
                    + ("" if len(times) == run.sizes["seed"] else ", some never"),
                    (t, 0.02 if name == "t1" else 0.1),
                    xycoords=("data", "axes fraction"),
                    fontsize=7,
                    ha="left",
                )
        label = f"tau = {tau:g}" if tau is not None else ""
        top.set_title(f"{title}, {label}" if title else label, fontsize=9)
        top.set_ylim(-0.03, 1.03)
        bottom.set_ylim(-0.03, 1.03)
        bottom.set_xlabel("epoch")
        if col == 0:
            top.set_ylabel(f"accuracy (mean, min-max of {ds.sizes['seed']} seeds)")
            bottom.set_ylabel("log-2 separation")
    handles, labels = [], []
    for ax in axes[:, -1]:  # the last column has every curve (tau > 0 has flipped samples)
        h, lab = ax.get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=7)
    save(fig, path)
    return path


def attribution_grid(
    images_NHWC: np.ndarray,
    attributions: dict[str, np.ndarray],
    groups: dict[str, np.ndarray],
    captions: list[str],
    path: Path,
    *,
    title: str = "",
) -> Path:
    """Rows: for each group of images (clean, flipped), the images and then one row of
    attributions per checkpoint; columns: images. Red supports the observed label, blue
    opposes it. Each map has its own symmetric colour scale (patterns compare, sizes do not);
    the number in a map is its sum, the margin gained over the baseline image (completeness).

    Args:
      images_NHWC: the displayed images.
      attributions: checkpoint label -> (N, H, W, C) attributions.
      groups: group name -> indices into the N images (one column each).
      captions: one per image (e.g. its true and observed labels).
    """
    stages = list(attributions)
    cols = max(len(v) for v in groups.values())
    rows = len(groups) * (1 + len(stages))
    fig = Figure(figsize=(1.35 * cols + 1.2, 1.35 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    row = 0
    for group, idx in groups.items():
        for c, i in enumerate(idx):
            axes[row, c].imshow(_display(images_NHWC[i]), cmap="gray")
            axes[row, c].set_title(captions[i], fontsize=7)
        axes[row, 0].set_ylabel(f"{group}\nimage", fontsize=8)
        for s, stage in enumerate(stages):
            for c, i in enumerate(idx):
                a_HW = attributions[stage][i].sum(-1)
                scale = float(np.abs(a_HW).max()) or 1.0
                ax = axes[row + 1 + s, c]
                ax.imshow(a_HW, cmap="RdBu_r", vmin=-scale, vmax=scale)
                ax.text(0.02, 0.02, f"{a_HW.sum():+.1f}", transform=ax.transAxes, fontsize=6)
            axes[row + 1 + s, 0].set_ylabel(f"{group}\n{stage}", fontsize=8)
        row += 1 + len(stages)
    if title:
        fig.suptitle(title, fontsize=9)
    save(fig, path)
    return path


def _display(x_HWC: np.ndarray) -> np.ndarray:
    """A normalized image rescaled to [0, 1] for display (grey for one channel)."""
    lo, hi = x_HWC.min(), x_HWC.max()
    x = (x_HWC - lo) / (hi - lo if hi > lo else 1.0)
    return x[..., 0] if x.shape[-1] == 1 else x
