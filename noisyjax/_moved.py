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
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        homes = MOVED[module.__name__]
        module.__doc__ = f"Moved to {homes[0]}; this path is kept for old imports."

        def __getattr__(attr: str):
            for home in homes:
                new = importlib.import_module(home)
                if hasattr(new, attr):
                    return getattr(new, attr)
            raise AttributeError(f"{module.__name__}.{attr} moved: look in {homes[0]}")

        module.__getattr__ = __getattr__


def install() -> None:
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
