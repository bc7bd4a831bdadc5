"""A sweep killed at any point (SIGKILL) resumes to identical results and checkpoints."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import noisyjax as nj
from noisyjax.synthetic.checkpoints import load_stage

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--preset", "tiny", "--no-progress", "--seeds", "4"]  # 16 runs: 2 chunks of 8
STAGES = ("t1", "t2", "t_best", "t_cross", "final")


def start(out, fault=None):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1"}  # 2 chunks of 8
    env.pop("NOISYJAX_FAULT", None)
    if fault:
        env["NOISYJAX_FAULT"] = fault
    cmd = [sys.executable, "-m", "sweeps.grid", *ARGS, "--out", str(out)]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(proc):
    stdout, stderr = proc.communicate(timeout=600)
    return proc.returncode, stderr


def resume(out):
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps.grid", *ARGS, "--out", str(out), "--resume"],
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert not list(out.rglob(".*.tmp")), "a cut-off write was left behind"


def assert_same_sweep(a, b):
    da, db = nj.load_sweep(a), nj.load_sweep(b)
    for name in list(db.data_vars) + list(db.coords):
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)
    for stage in STAGES:
        sa, sb = load_stage(a, stage), load_stage(b, stage)
        for field in sb._fields:
            np.testing.assert_array_equal(getattr(sa, field), getattr(sb, field), err_msg=stage)
    assert sorted(p.name for p in (a / "stages").iterdir()) == sorted(
        p.name for p in (b / "stages").iterdir()
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "sweep"
    code, err = finish(start(out))
    assert code == 0, err
    return out


@pytest.mark.parametrize(
    "fault", ["compile:1", "chunk:2", "checkpoint:1", "checkpoint:2", "results-write:1"]
)
def test_killed_at_a_point_then_resumed_equals_uninterrupted(fault, reference, tmp_path):
    out = tmp_path / "sweep"
    code, err = finish(start(out, fault))
    assert code == -signal.SIGKILL, err
    assert not (out / "results.nc").exists()
    if fault.startswith("results-write"):
        assert list(out.glob(".results.nc.*.tmp")), "expected the cut-off temporary file"
    resume(out)
    assert_same_sweep(out, reference)


def test_killed_at_a_random_moment_then_resumed(reference, tmp_path):
    out = tmp_path / "sweep"
    proc = start(out)
    time.sleep(4.0)  # somewhere in start-up, compilation or the first chunk
    proc.send_signal(signal.SIGKILL)
    code, _ = finish(proc)
    if code == 0:
        pytest.skip("the sweep finished before it could be killed")
    if not (out / "config.json").exists():  # killed before anything was written: a fresh start
        assert finish(start(out))[0] == 0
    else:
        resume(out)
    assert_same_sweep(out, reference)


def test_corrupted_checkpoint_and_results_are_detected_and_redone(reference, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    for path in (out / "stages" / "8" / "t1").rglob("*"):
        if path.is_file() and path.name != "commit_success.txt":
            path.write_bytes(b"\x00garbage")
    (out / "results.nc").write_bytes(b"not a netCDF file")
    with pytest.raises(nj.SweepDirError, match="results.nc does not match its checksum"):
        nj.load_sweep(out)
    (out / "results.nc").unlink()
    resume(out)
    assert_same_sweep(out, reference)
