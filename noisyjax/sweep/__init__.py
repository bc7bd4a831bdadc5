"""The sweep engine: any `Experiment` from a grid specification to a labelled results file.

Layers, each a module (docs/architecture.md):
  experiment   the protocol an experiment family implements, and the registry of families
  spec         axes, sweeps, parsing and the expansion of a grid into a table of runs
  plan         buckets, vector width and memory-budgeted chunks, decided before compiling
  execute      the jitted, vmapped, sharded chunk program and the loop over chunks
  distributed  the share of each process in a multi-process run (`jax.distributed`)
  store        the sweep directory: one atomic Orbax store per chunk, results.nc, config.json
  runner       `run_sweep`: resume, run, store, label, draw
  refine       `run_refined`: a boundary along one axis, bracketed on the grid and bisected
"""

from noisyjax.sweep.execute import Timing, run_chunks
from noisyjax.sweep.experiment import Experiment, config_from_dict, of_config
from noisyjax.sweep.plan import VECTOR_RUNS, Bucket, Plan, cut, default_max_memory, plan
from noisyjax.sweep.refine import load_refinement, load_round, run_refined
from noisyjax.sweep.runner import run_sweep
from noisyjax.sweep.spec import (
    SPEC_HELP,
    Axis,
    Refine,
    RunTable,
    Sweep,
    Zip,
    expand,
    parse_axis,
    parse_refine,
    parse_values,
)
from noisyjax.sweep.store import SweepDirError, load_sweep, sweep_of

__all__ = [
    "SPEC_HELP",
    "VECTOR_RUNS",
    "Axis",
    "Bucket",
    "Experiment",
    "Plan",
    "Refine",
    "RunTable",
    "Sweep",
    "SweepDirError",
    "Timing",
    "Zip",
    "config_from_dict",
    "cut",
    "default_max_memory",
    "expand",
    "load_refinement",
    "load_round",
    "load_sweep",
    "of_config",
    "parse_axis",
    "parse_refine",
    "parse_values",
    "plan",
    "run_chunks",
    "run_refined",
    "run_sweep",
    "sweep_of",
]
