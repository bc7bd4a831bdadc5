"""Presets: named sweeps, each a documented function returning (Sweep, figures).

Every docstring says the command, the expected runtime on a 2-core CPU and what the figures
should show. `python -m sweeps.grid --list-presets` prints the first docstring line of each, in
the order of `PRESETS` below.

The registry is this module alone: the preset modules are plain functions and never import it.
Figure helpers they share are in `sweeps.presets.figures`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import xarray as xr

from noisyjax.errors import fail
from noisyjax.sweep import Sweep
from sweeps.presets import (
    boundary,
    cao,
    core,
    detectors,
    kou,
    lngd,
    paper,
    paper_stopping,
    real,
    story,
)
from sweeps.presets.figures import (
    RUN_DIMS,
    first_values,
    on_preset_axes,
    phase_map,
    representative_run,
    run_trajectories,
    stage_boundary,
    stage_lines,
    with_heatmaps,
)

Preset = Callable[[], tuple[Sweep, Callable[[xr.Dataset, Path], list[Path]]]]

PRESETS: dict[str, Preset] = {
    "stage-phase": core.stage_phase,
    "tiny": core.tiny,
    "stage1-boundary": boundary.stage1_boundary,
    "kou2023": kou.kou2023,
    "kou2023-grid": kou.kou2023_grid,
    "kou2023-boundary": kou.kou2023_boundary,
    "cao2022": cao.cao2022,
    "lngd2025": lngd.lngd2025,
    "lngd2025-heatmap": lngd.lngd2025_heatmap,
    "whole-story": story.whole_story,
    "paper-fig1": paper.paper_fig1,
    "stage1-phase": paper.stage1_phase,
    "t1-scaling": paper.t1_scaling,
    "early-stopping": paper_stopping.early_stopping_preset,
    "sample-selection": paper_stopping.sample_selection,
    "detectors": detectors.detectors_preset,
    "real-digits": real.real_digits,
    "real-cifar2": real.real_cifar2,
}
DEFAULT = "stage-phase"


def load(name: str) -> tuple[Sweep, Callable[[xr.Dataset, Path], list[Path]] | None]:
    """The (sweep, figures) of a preset: a name of `PRESETS`, or a user preset
    "path/to/file.py:function" whose function has the built-in presets' form (no arguments;
    returns a Sweep, or a (Sweep, figures) pair whose figures may be None)."""
    if name in PRESETS:
        return PRESETS[name]()
    path, sep, function = name.rpartition(":")
    if not sep or not path.endswith(".py"):
        fail("--preset", name, "one of " + ", ".join(sorted(PRESETS)) + ", or FILE.py:FUNCTION")
    if not Path(path).is_file():
        fail("--preset", name, f"FILE.py:FUNCTION with an existing file ({path!r} is not one)")
    spec = importlib.util.spec_from_file_location(f"noisyjax_user_preset_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: its own error, on one line
        fail("--preset", name, f"a file that imports ({type(err).__name__}: {err})")
    preset = getattr(module, function, None)
    if not callable(preset):
        fail("--preset", name, f"FILE.py:FUNCTION with a function {function!r} in {path!r}")
    made = preset()
    sweep, figures = made if isinstance(made, tuple) else (made, None)
    if not isinstance(sweep, Sweep) or not (figures is None or callable(figures)):
        fail("--preset", name, "a function returning a Sweep or a (Sweep, figures) pair")
    return sweep, figures


def describe(name: str) -> str:
    """The first line of the preset's docstring."""
    return (PRESETS[name].__doc__ or "").strip().splitlines()[0]


__all__ = [
    "DEFAULT",
    "PRESETS",
    "RUN_DIMS",
    "Preset",
    "describe",
    "load",
    "first_values",
    "on_preset_axes",
    "phase_map",
    "representative_run",
    "run_trajectories",
    "stage_boundary",
    "stage_lines",
    "with_heatmaps",
]
