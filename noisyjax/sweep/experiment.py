"""The experiment protocol: what the one sweep engine needs to know about a family of runs.

An `Experiment` is a record of pure functions, in the style of optax's `GradientTransformation`:
the sweep engine (`noisyjax.sweep`) expands a grid into runs, buckets and pads them, compiles one
vmapped chunk program per bucket, stores the chunks and labels the results, and asks the
experiment only for what differs between families. The synthetic two-layer CNN
(`noisyjax.synthetic.experiment.SYNTHETIC`) and the real-image networks
(`noisyjax.real.experiment.REAL`) are its two instances; docs/architecture.md adds a third.

A config class names its experiment with a class attribute `EXPERIMENT` (a key of
`EXPERIMENTS`), so a `Sweep` of that config is run by that experiment, with no other dispatch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

# Experiment name -> module holding its `EXPERIMENT`, imported on first use (a synthetic sweep
# never imports flax).
EXPERIMENTS = {
    "synthetic": "noisyjax.synthetic.experiment",
    "real": "noisyjax.real.experiment",
}
DEFAULT = "synthetic"  # sweeps written before the protocol existed record no kind


def one_bucket(cfg: Any, table: Any) -> list[tuple[Any, np.ndarray]]:
    """All runs in one compiled program (an experiment without shape axes)."""
    return [(cfg, np.arange(table.n_runs))]


class Experiment(NamedTuple):
    """A family of training runs the sweep engine can run.

    Required:
      name: recorded as the sweep's "kind" in config.json and results.nc (absent: synthetic).
      config_type: the frozen static config (closed over by the compiled program).
      hparams_type: the registered-pytree dataclass of swept scalars.
      make_run: bucket config -> run(inputs, shared) -> (metrics, snapshots), pure, unjitted;
        metrics: name -> array (trajectories lead with the time axis, per-sample outputs are
        named `sample_*` and end with the sample axis); snapshots: stage -> a NamedTuple.
      samples: bucket config -> the length of per-sample outputs (padded across buckets).
      bytes_per_run: bucket config -> estimated peak device memory of one run in flight.
      output_bytes: bucket config -> bytes of one run's outputs held for a chunk.
      snapshot_bytes: bucket config -> bytes of one run's stage snapshots on disk.
      stages: names a snapshot may have (the Orbax items of a chunk).
      time: the trajectories' time coordinate ("step" or "epoch").
    Optional (the defaults suit an experiment whose axes are all hyperparameters):
      run_inputs: (table, run indices, bucket config) -> the per-run pytree, leading run axis
        (default: the seeds and the hyperparameters as float32 arrays).
      shape_axes: config fields an axis may vary (integers): runs of different values are
        bucketed and padded by `buckets`.
      derived_axes: axis name -> the fields it sets (e.g. tau -> tau_plus, tau_minus), and
      derive: (derived axis values by name, columns by field) -> the columns they set.
      check: (base config, columns) -> None: cross-field rules of whole runs that neither the
        config nor the hyperparameters can check alone (raise `ConfigError`).
      prepare: base config -> plan facts (e.g. the data set's sizes): loads or checks what every
        run needs, before anything is written.
      buckets: (base config, table) -> [(bucket config, run indices)]: runs compiled together.
      shared: bucket config -> what every run of the bucket reads (replicated), or None.
      describe: bucket config -> the bucket's fields in the plan summary.
      variables: results name -> (long name, units, one-sentence description), or None for a
        name it does not know: the CF attributes of results.nc and the figures' axis labels.
    """

    name: str
    config_type: type
    hparams_type: type
    make_run: Callable[[Any], Callable[[Any, Any], tuple[dict, dict]]]
    samples: Callable[[Any], int]
    bytes_per_run: Callable[[Any], int]
    output_bytes: Callable[[Any], int]
    snapshot_bytes: Callable[[Any], int]
    stages: tuple[str, ...]
    time: str
    run_inputs: Callable[[Any, np.ndarray, Any], Any] | None = None
    shape_axes: tuple[str, ...] = ()
    derived_axes: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    derive: Callable[[dict, dict], dict] = lambda derived, columns: {}
    check: Callable[[Any, dict[str, np.ndarray]], None] = lambda cfg, columns: None
    prepare: Callable[[Any], dict[str, Any]] = lambda cfg: {}
    buckets: Callable[[Any, Any], list[tuple[Any, np.ndarray]]] = one_bucket
    shared: Callable[[Any], Any] = lambda cfg: None
    describe: Callable[[Any], dict[str, Any]] = lambda cfg: {}
    variables: Callable[[str], tuple[str, str, str] | None] = lambda name: None

    def inputs(self, table: Any, runs: np.ndarray, cfg: Any) -> Any:
        """The per-run inputs of `runs`: `run_inputs`, or seeds and float32 hyperparameters."""
        if self.run_inputs is not None:
            return self.run_inputs(table, runs, cfg)
        fields = {f: table.hp[f][runs].astype(np.float32) for f in self.hparam_fields}
        return table.seed[runs], self.hparams_type(**fields)

    @property
    def hparam_fields(self) -> tuple[str, ...]:
        return tuple(self.hparams_type.__dataclass_fields__)

    @property
    def axis_names(self) -> tuple[str, ...]:
        return self.hparam_fields + self.shape_axes + tuple(self.derived_axes)


def register(name: str, module: str) -> None:
    """Make the experiment `name` available: `module` (imported on first use) defines
    `EXPERIMENT`, and config classes naming it set `EXPERIMENT: ClassVar[str] = name`."""
    EXPERIMENTS[name] = module


def get(name: str) -> Experiment:
    """The experiment registered under `name`."""
    if name not in EXPERIMENTS:
        from noisyjax.errors import fail

        fail("kind", name, "one of " + ", ".join(EXPERIMENTS))
    return importlib.import_module(EXPERIMENTS[name]).EXPERIMENT


def of_config(cfg: Any) -> Experiment:
    """The experiment a static config belongs to (its class's `EXPERIMENT`)."""
    return get(getattr(type(cfg), "EXPERIMENT", DEFAULT))


def config_from_dict(cls: type, fields: Mapping[str, Any]) -> Any:
    """A frozen config rebuilt from its JSON form (`dataclasses.asdict` with lists for tuples)."""
    import dataclasses

    tuples = {f.name for f in dataclasses.fields(cls) if "tuple" in str(f.type)}
    return cls(**{k: tuple(v) if k in tuples else v for k, v in fields.items()})
