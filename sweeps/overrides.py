"""Parsing of the command line's values: --set overrides, --max-memory sizes, --heatmap specs.

Each function checks its input and raises `noisyjax.ConfigError` with the project's one-line
message (field, value, allowed values).
"""

from __future__ import annotations

import dataclasses
import re

from noisyjax.config import HPARAM_FIELDS, Config, fail
from noisyjax.grid import Sweep

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(Config))


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        fail("--max-memory", text, "a positive size such as 512M, 2G or 2147483648")
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    return int(float(match.group(1)) * scale[match.group(2).lower()])


def apply_sets(sweep: Sweep, sets: list[str]) -> Sweep:
    """Apply --set FIELD=VALUE overrides to the static config or the hyperparameters.

    A field that an axis sets (directly, or through the derived tau and n_snr2 axes) cannot also
    be --set: the axis would silently win.
    """
    from noisyjax.grid import DERIVED_AXES

    swept = {a.name for a in sweep.axes}
    for derived, targets in DERIVED_AXES.items():
        if derived in swept:
            swept |= set(targets)
    swept |= {"tau"} if {"tau_plus", "tau_minus"} & swept else set()
    cfg_changes: dict = {}
    hp_changes: dict = {}
    for item in sets:
        field, sep, raw = item.partition("=")
        field, raw = field.strip(), raw.strip()
        if not sep or not raw:
            fail("--set", item, "FIELD=VALUE")
        if field in swept:
            fail("--set", field, "a field that no axis sweeps (use --axis to change the axis)")
        if field == "tau":
            hp_changes["tau_plus"] = hp_changes["tau_minus"] = _number(field, raw)
        elif field in HPARAM_FIELDS:
            hp_changes[field] = _number(field, raw)
        elif field in CONFIG_FIELDS:
            cfg_changes[field] = _typed(field, raw, type(getattr(Config(), field)))
        else:
            fail(
                "--set",
                field,
                "a field of Config or HParams: "
                + ", ".join(CONFIG_FIELDS + HPARAM_FIELDS + ("tau",)),
            )
    return dataclasses.replace(
        sweep, cfg=sweep.cfg.replace(**cfg_changes), hp=sweep.hp.replace(**hp_changes)
    )


def _number(field: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        fail(field, raw, "a number")


def _typed(field: str, raw: str, kind: type):
    if kind is tuple:  # comma-separated names (snapshot_stages=t1,final): Config splits them
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
    """'VAR' or 'VAR:X:Y' -> (variable, x axis, y axis), checked against the sweep's axes."""
    from noisyjax.metrics import METRIC_NAMES
    from noisyjax.stages import PROBES, TRANSITIONS

    names = [a.name for a in sweep.axes]
    var, *xy = spec.split(":")
    known = set(METRIC_NAMES) | set(TRANSITIONS) | {f"{t}_{p}" for t in TRANSITIONS for p in PROBES}
    known |= {
        "stage_one_exists",
        "best_test_err",
        "tau_plus_realized",
        "tau_minus_realized",
        "flip_rate_realized",
        "diverged",
        "diverged_step",
    }
    known.discard("step")
    if var not in known:
        fail(
            "--heatmap",
            var,
            "a metric, stage time or transition metric: " + ", ".join(sorted(known)),
        )
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
