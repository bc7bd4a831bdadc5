"""Old import paths of modules that moved, kept working for code written against them.

`import noisyjax.grid` (say) gives a small module whose attributes are looked up in the new home,
`noisyjax.sweep.spec`, so old code keeps running and `help()` names where to go. New code should
import the new paths (docs/architecture.md lists them).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# Old module -> the modules its names now live in, searched in order.
MOVED: dict[str, tuple[str, ...]] = {
    "noisyjax.grid": ("noisyjax.sweep.spec", "noisyjax.synthetic.experiment"),
    "noisyjax.runner": ("noisyjax.sweep.runner",),
    "noisyjax.results": ("noisyjax.sweep.store",),
    "noisyjax.distributed": ("noisyjax.sweep.distributed",),
    "noisyjax.faults": ("noisyjax.sweep.faults",),
    "noisyjax.real.sweep": ("noisyjax.real", "noisyjax.sweep", "noisyjax.real.experiment"),
    # The synthetic experiment's modules, now in noisyjax/synthetic/.
    "noisyjax.config": ("noisyjax.synthetic.config", "noisyjax.errors"),
    **{
        f"noisyjax.{name}": (f"noisyjax.synthetic.{name}",)
        for name in (
            "data",
            "model",
            "train",
            "stages",
            "metrics",
            "decomposition",
            "checkpoints",
            "theory",
            "engines",
        )
    },
    **{
        f"noisyjax.engines.{name}": (f"noisyjax.synthetic.engines.{name}",)
        for name in ("dense", "gram", "wishart")
    },
    "noisyjax.wishart": ("noisyjax.synthetic.engines.wishart",),
    # Reading results back, now in noisyjax/analysis/ (whose package keeps the names of the old
    # noisyjax.analysis module).
    **{
        f"noisyjax.{name}": (f"noisyjax.analysis.{name}",)
        for name in ("selection", "early_stopping", "predictions", "plots", "theory_plots")
    },
    # The presets, now a package with one module per family.
    "sweeps.paper_presets": ("sweeps.presets.paper", "sweeps.presets.paper_stopping"),
    "sweeps.story_presets": ("sweeps.presets.story",),
    "sweeps.neighbour_presets": ("sweeps.presets.kou", "sweeps.presets.cao", "sweeps.presets.lngd"),
    "sweeps.real_presets": ("sweeps.presets.real",),
    "sweeps.boundary_presets": ("sweeps.presets.boundary",),
    "sweeps.real_overrides": ("sweeps.overrides",),
}
# Names that were replaced by the one sweep engine's: old name -> the new one.
RENAMED = {
    "RealAxis": "noisyjax.sweep.Axis",
    "RealSweep": "noisyjax.sweep.Sweep",
    "RealTable": "noisyjax.sweep.RunTable",
    "RealBucket": "noisyjax.sweep.Bucket",
    "RealPlan": "noisyjax.sweep.Plan",
    "plan_real": "noisyjax.sweep.plan",
    "expand_real": "noisyjax.sweep.expand",
    "run_real_chunks": "noisyjax.sweep.run_chunks",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        homes = MOVED[module.__name__]
        module.__doc__ = f"Moved to {homes[0]}; this path is kept for old imports."
        module.__path__ = []  # a package to the import system: its old submodules import too

        def __getattr__(attr: str):
            if attr.startswith("__"):  # import machinery probing (__path__, __file__, ...)
                raise AttributeError(attr)
            for home in homes:
                new = importlib.import_module(home)
                if hasattr(new, attr):
                    return getattr(new, attr)
            if attr in RENAMED:
                where = RENAMED[attr]
                home, _, name = where.rpartition(".")
                return getattr(importlib.import_module(home), name)
            raise AttributeError(f"{module.__name__}.{attr} moved: look in " + " or ".join(homes))

        module.__getattr__ = __getattr__


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
