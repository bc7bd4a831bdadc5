"""Entry points (`python -m sweeps.grid`) and presets of noisyjax sweeps."""

import importlib.abc
import sys


class _OldPresetModules(importlib.abc.MetaPathFinder):
    """The preset modules' old paths (`sweeps.paper_presets`, ...) import from their new homes
    (`noisyjax/_moved.py` lists them). Standard library only until one is asked for, so that
    `python -m sweeps.grid` checks its environment before JAX is imported."""

    def find_spec(self, name, path=None, target=None):
        if not name.startswith("sweeps.") or not name.endswith(("_presets", "_overrides")):
            return None
        from noisyjax import _moved  # installs the finder that knows every old path

        return _moved._MovedFinder().find_spec(name, path, target)


if not any(isinstance(f, _OldPresetModules) for f in sys.meta_path):
    sys.meta_path.append(_OldPresetModules())
