"""Parsing of the command line's values: --set overrides, --max-memory sizes, --heatmap specs.

They work on any experiment's sweep (`noisyjax.sweep.Experiment`): the fields come from its
config and hyperparameter classes. Each function checks its input and raises
`noisyjax.ConfigError` with the project's one-line message (field, value, allowed values).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from noisyjax.errors import ConfigError, fail
from noisyjax.sweep import Sweep


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        fail("--max-memory", text, "a positive size such as 512M, 2G or 2147483648")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(float(match.group(1)) * scale[match.group(2).lower()])


def swept_fields(sweep: Sweep) -> set[str]:
    """Fields an axis sets, directly or through a derived axis, and the derived axes whose
    fields are swept."""
    exp = sweep.experiment
    swept = set(sweep.fields)
    for derived, targets in exp.derived_axes.items():
        if derived in swept:
            swept |= set(targets)
        elif set(targets) & swept:
            swept.add(derived)
    return swept


def apply_sets(sweep: Sweep, sets: list[str]) -> Sweep:
    """Apply --set FIELD=VALUE overrides to the static config or the hyperparameters; a derived
    field (tau, n_snr2) sets what its axis would, from the other settings.

    A field that an axis sets (directly, or through a derived axis) cannot also be --set: the
    axis would silently win.
    """
    exp = sweep.experiment
    config_fields = tuple(f.name for f in dataclasses.fields(sweep.cfg))
    swept = swept_fields(sweep)
    cfg_changes: dict = {}
    hp_changes: dict = {}
    derived: dict = {}
    for item in sets:
        field, sep, raw = item.partition("=")
        field, raw = field.strip(), raw.strip()
        if not sep or not raw:
            fail("--set", item, "FIELD=VALUE")
        if field in swept:
            fail("--set", field, "a field that no axis sweeps (use --axis to change the axis)")
        if field in exp.derived_axes:
            derived[field] = _number(field, raw)
        elif field in exp.hparam_fields:
            hp_changes[field] = _number(field, raw)
        elif field in config_fields:
            cfg_changes[field] = _typed(field, raw, type(getattr(sweep.cfg, field)))
        else:
            fail(
                "--set",
                field,
                f"a field of {type(sweep.cfg).__name__} or {exp.hparams_type.__name__}: "
                + ", ".join(config_fields + exp.hparam_fields + tuple(exp.derived_axes)),
            )
    cfg = dataclasses.replace(sweep.cfg, **cfg_changes)
    hp = dataclasses.replace(sweep.hp, **hp_changes)
    if derived:
        columns = dataclasses.asdict(hp) | {k: getattr(cfg, k) for k in exp.shape_axes}
        columns = {k: np.asarray([v]) for k, v in columns.items()}
        values = exp.derive({k: np.asarray([v]) for k, v in derived.items()}, columns)
        hp = dataclasses.replace(hp, **{k: float(v[0]) for k, v in values.items()})
    return dataclasses.replace(sweep, cfg=cfg, hp=hp)


def _number(field: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        fail(field, raw, "a number")


def _typed(field: str, raw: str, kind: type):
    if kind is tuple:  # comma-separated (snapshot_stages=t1,final): the config splits them
        return raw
    if kind is bool:
        if raw.lower() not in ("true", "false", "1", "0"):
            fail(field, raw, "true or false")
        return raw.lower() in ("true", "1")
    try:
        return kind(raw)
    except ValueError:
        fail(field, raw, f"a value of type {kind.__name__}")


def parse_heatmap(spec: str, sweep: Sweep) -> tuple[str, str, str]:
    """'VAR' or 'VAR:X:Y' -> (variable, x axis, y axis), the axes checked against the sweep's
    (the variable is checked against the planned outputs, `check_heatmap_vars`)."""
    names = [a.name for a in sweep.axes]
    var, *xy = spec.split(":")
    if not xy:
        xy = names[:2]
    if len(xy) != 2 or any(a not in names for a in xy) or xy[0] == xy[1]:
        fail(
            "--heatmap",
            spec,
            "VAR or VAR:X:Y with two different axes among "
            + (", ".join(names) or "(none: the sweep has fewer than two axes)"),
        )
    return var, xy[0], xy[1]


def check_heatmap_vars(variables: list[str], outputs: set[str]) -> None:
    """Every --heatmap variable must be a per-run output of the sweep (not a per-sample one)."""
    known = sorted(k for k in outputs if not k.startswith("sample_"))
    for var in variables:
        if var not in known:
            fail(
                "--heatmap",
                var,
                "a metric, stage time or transition metric: " + ", ".join(known),
            )


# Values no field accepts, by the type of its default: the constructor's refusal states what
# the field allows, so the help is read off the one place that checks it.
_PROBES = {bool: "?", int: -(2**40), float: float("nan"), str: "?", tuple: ("?",)}


def field_help(sweep: Sweep) -> list[str]:
    """One line per --set field of the sweep's experiment: name, type, default, allowed."""
    exp = sweep.experiment
    base_cfg, base_hp = type(sweep.cfg)(), exp.hparams_type()
    rows = []
    for obj, field in [(base_cfg, f.name) for f in dataclasses.fields(base_cfg)] + [
        (base_hp, f) for f in exp.hparam_fields
    ]:
        default = getattr(obj, field)
        kind = type(default)
        kind = float if kind is int and obj is base_hp else kind
        try:
            dataclasses.replace(obj, **{field: _PROBES.get(kind, "?")})
            allowed = "any " + kind.__name__
        except ConfigError as err:
            text = str(err)
            named = text.startswith(f"{field}=")
            allowed = text.split("allowed ", 1)[1] if named and "allowed " in text else "see docs"
        except (TypeError, ValueError):
            allowed = "see docs"
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        rows.append(f"{field:<18} {kind.__name__:<5} default {shown!s:<10} {allowed}")
    for derived, targets in exp.derived_axes.items():
        rows.append(f"{derived:<18} float sets {', '.join(targets)} (see docs/sweeps.md)")
    return rows
