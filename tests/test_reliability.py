"""What the environment and a careless user do to a sweep (docs/reliability.md): a second writer,
SIGINT and SIGTERM, a corrupted store, a plan that cannot fit, values a float32 run cannot hold,
and the small holes of the command line. Each test fails on the code before these guards."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import noisyjax as nj
import noisyjax.real
from sweeps import grid
from tests.test_cli import ROOT, TINY, assert_identical, assert_snapshots_identical, cli, data_of


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "sweep"
    result = cli(*TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def start(out):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_NUM_CPU_DEVICES": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps.grid", *TINY, "--out", str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def errors(stderr: str) -> list[str]:
    """The lines the CLI printed itself (absl and JAX warnings aside)."""
    return [line for line in stderr.splitlines() if line.startswith("sweeps.grid:")]


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_second_writer_is_refused_and_a_signal_ends_in_one_line(reference, tmp_path, sig, code):
    out = tmp_path / "sweep"
    proc = start(out)
    wait_for(out / "config.json", proc)
    second = cli(*TINY, "--out", str(out), "--resume")
    assert second.returncode == 2
    (line,) = errors(second.stderr)
    assert f"is being written by process {proc.pid} on " in line, second.stderr
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, stderr
    (line,) = errors(stderr)
    assert f"interrupted ({signal.Signals(sig).name}) after " in line and " of 2 chunks" in line
    assert line.endswith(f"--out {out} --resume"), line
    resumed = cli(*TINY, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_identical(data_of(out), data_of(reference))


def test_a_flipped_byte_in_a_snapshot_is_refused_by_load_stage_and_redone_by_resume(
    reference, tmp_path
):
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    files = [
        p for p in (out / "stages" / "8" / "t1").rglob("*") if p.is_file() and p.stat().st_size > 64
    ]
    data_files = [p for p in files if "metadata" not in p.name and p.suffix != ".json"]
    assert data_files
    for path in data_files:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    with pytest.raises(nj.SweepDirError, match="rerun the sweep with --resume"):
        nj.load_stage(out, "t1")
    (out / "results.nc").unlink()
    result = cli(*TINY, "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert_identical(data_of(out), data_of(reference))
    assert_snapshots_identical(out, reference)


def test_written_files_honour_the_umask(reference):
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("results.nc", "config.json"):
        assert (reference / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "d=100000000"], r"max_memory=.*estimated peak, \d+ GiB"),
        (["--vector-runs", "100000"], "estimated peak"),
        (["--chunk-runs", "1000000000000"], "estimated peak"),
        (["--seeds", "1000000000"], "runs=4000000000 is invalid: allowed at most 10,000,000"),
        (["--set", "sigma_p=1e-46"], r"sigma_p=1e-46 is invalid: allowed 0 or a magnitude"),
        (["--set", "eta=1e39"], r"eta=1e\+39 is invalid: allowed 0 or a magnitude"),
        (["--axis", "n_snr2=1e308"], r"n_snr2=1e\+308 is invalid: it sets mu_norm=inf"),
        (["--preset", ""], "--preset='' is invalid"),
        (["--out", ""], "--out: '' is invalid: allowed a directory path"),
    ],
)
def test_plans_and_values_that_cannot_run_are_refused_in_one_line(args, message, tmp_path, capsys):
    out = tmp_path / "never"
    argv = [
        "--preset",
        "tiny",
        "--no-progress",
        *(["--out", str(out)] if "--out" not in args else []),
    ]
    assert grid.main([*argv, *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("sweeps.grid: error: ")
    assert re.search(message, line), line
    assert not out.exists()


def test_hparams_of_the_python_api_are_checked_in_the_runs_dtype():
    with pytest.raises(nj.ConfigError, match="eta="):
        nj.plan(nj.Sweep("t", nj.Config(), nj.HParams(eta=1e39)))
    sweep = nj.Sweep("t", nj.Config(n=8, d=20, m=2, steps=4, log_every=2, n_test=8), nj.HParams())
    assert nj.plan(sweep).table.n_runs == 1
    assert np.isfinite(nj.plan(sweep).table.hp["eta"]).all()


def test_a_flipped_byte_in_results_is_refused_by_load_sweep(reference, tmp_path):
    out = tmp_path / "sweep"
    shutil.copytree(reference, out)
    data = bytearray((out / "results.nc").read_bytes())
    data[len(data) // 2] ^= 0x01
    (out / "results.nc").write_bytes(bytes(data))
    with pytest.raises(nj.SweepDirError, match="results.nc does not match its checksum"):
        nj.load_sweep(out)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: nj.HParams(eta=np.array(-0.5)), "eta=-0.5"),
        (lambda: nj.HParams(tau_plus=np.array(0.9)), "tau_plus=0.9"),
        (lambda: nj.HParams(eta="0.1"), "eta='0.1'"),
        (lambda: nj.HParams(eta=None), "eta=None"),
        (lambda: nj.HParams(eta=np.array([0.1, np.nan])), "eta=nan"),
        (lambda: nj.HParams(eta=np.ones(3), sigma_0=np.full(4, 0.01)), "hparams shapes="),
        (lambda: nj.real.RealHParams(lr=np.array([0.1, -1.0])), "lr=-1.0"),
    ],
)
def test_hparams_built_in_python_are_checked_at_construction(make, field):
    with pytest.raises(nj.ConfigError, match="^" + re.escape(field) + ".* is invalid: allowed"):
        make()


def test_hparams_leaves_that_are_not_concrete_pass_through():
    """Pytree unflattening builds HParams of tracers and abstract shapes: never checked."""
    import jax

    hp = nj.HParams(eta=np.full(3, 0.1), sigma_0=np.full((2, 1), 0.01))
    shapes = jax.eval_shape(lambda h: jax.tree.map(lambda v: v * 2.0, h), hp)
    assert shapes.eta.shape == (3,)
    assert jax.jit(lambda h: h.eta[None, :] * h.sigma_0)(hp).shape == (2, 3)
