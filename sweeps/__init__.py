"""Entry points (`python -m sweeps.grid`) and presets of noisyjax sweeps."""
