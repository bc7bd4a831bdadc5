"""`python -m sweeps.grid` end to end: outputs, resume, dry run, and every bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import noisyjax as nj
from sweeps import grid

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--no-progress", "--seeds", "4"]  # 16 runs: 2 chunks of 8


def cli(*args, env=None, cwd=ROOT, pin_one_device=True):
    """Run the CLI in a fresh interpreter (as a user would). The CLI makes every CPU core a JAX
    device; tests pin one device (chunk counts below assume it) unless `env` sets a count."""
    pinned = (
        {"JAX_NUM_CPU_DEVICES": "1"} if pin_one_device and "XLA_FLAGS" not in (env or {}) else {}
    )
    full_env = {**os.environ, "JAX_PLATFORMS": "cpu", **pinned, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "sweeps.grid", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=600,
    )


def data_of(directory):
    ds = nj.load_sweep(directory)
    return {name: ds[name].values for name in list(ds.data_vars) + list(ds.coords)}


def assert_snapshots_identical(a_dir, b_dir, stages=("t1", "t2", "t_best", "t_cross", "final")):
    from noisyjax.synthetic.checkpoints import load_stage

    for stage in stages:
        a, b = load_stage(a_dir, stage), load_stage(b_dir, stage)
        for field in a._fields:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=stage)


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def finished_sweep(tmp_path_factory, name, *args):
    """A sweep run to the end by the CLI (for module fixtures); its directory."""
    out = tmp_path_factory.mktemp(name) / "sweep"
    result = cli(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return finished_sweep(tmp_path_factory, "tiny", *TINY)


def test_tiny_preset_writes_results_config_and_figures(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {
        "results.nc",
        "config.json",
        "stages",
        "stage_phase.png",
        "trajectories.png",
        "final_test_error.png",
    } <= names
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["status"] == "complete"
    assert set(config["timing"]) == {"compile_s", "run_s"}
    assert config["environment"]["device_count"] >= 1 and config["environment"]["versions"]["jax"]
    ds = nj.load_sweep(tiny_run)
    assert ds["train_acc_noisy"].dims == ("tau", "n_snr2", "seed", "step")
    assert ds["tau_plus_realized"].dims == ("tau", "n_snr2", "seed")
    assert not any(p.name.endswith(".tmp") for p in tiny_run.rglob("*"))


def test_eight_devices_and_another_chunk_size_give_identical_results(tiny_run, tmp_path):
    out = tmp_path / "eight"
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    result = cli(*TINY, "--out", str(out), "--chunk-runs", "16", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "config.json").read_text())["environment"]["device_count"] == 8
    assert_identical(data_of(out), data_of(tiny_run))
    # Checkpoints written by 8 devices read back here, on one, equal to the 1-device run's.
    assert_snapshots_identical(out, tiny_run)


def test_cores_as_devices_by_default_give_identical_results(tiny_run, tmp_path):
    out = tmp_path / "cores"
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    result = cli(*TINY, "--out", str(out), env=env, pin_one_device=False)
    assert result.returncode == 0, result.stderr
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    devices = json.loads((out / "config.json").read_text())["environment"]["device_count"]
    assert devices == (cores if cores and cores > 1 else 1)
    assert_identical(data_of(out), data_of(tiny_run))
    assert_snapshots_identical(out, tiny_run)


def test_resume_redoes_lost_and_corrupt_chunks_with_identical_results(tiny_run, tmp_path):
    import shutil

    out = tmp_path / "resumed"
    shutil.copytree(tiny_run, out)
    # An interruption before the end: no results.nc, one chunk corrupted, figures gone.
    (out / "results.nc").unlink()
    for png in out.glob("*.png"):
        png.unlink()
    chunks = sorted(
        (p for p in (out / "stages").iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    assert len(chunks) == 2
    # One chunk's outputs corrupted (a flipped byte in every data file: caught by its
    # checksum), the other chunk's store lost: both must be redone.
    for path in (chunks[0] / "outputs").rglob("*"):
        if path.is_file() and path.stat().st_size > 64 and "metadata" not in path.name:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
    shutil.rmtree(chunks[1])
    result = cli(*TINY, "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert_identical(data_of(out), data_of(tiny_run))
    assert_snapshots_identical(out, tiny_run)
    assert sorted(p.name for p in (out / "stages").iterdir()) == sorted(
        p.name for p in (tiny_run / "stages").iterdir()
    )
    assert (out / "stage_phase.png").exists()


def test_dry_run_writes_nothing(tmp_path):
    out = tmp_path / "dry"
    result = cli(*TINY, "--out", str(out), "--dry-run", "--axis", "d=50,60")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["runs"] == 32 and summary["buckets"][0]["d"] == 60
    assert not out.exists()


def test_list_presets():
    result = cli("--list-presets")
    assert result.returncode == 0
    assert "stage-phase" in result.stdout and "tiny" in result.stdout


BAD_INPUTS = [
    (["--preset", "nope"], "--preset='nope'"),
    (["--set", "colour=3"], "--set='colour'"),
    (["--set", "sigma_0=-1"], "sigma_0=-1.0"),
    (["--set", "n=-4"], "n=-4"),
    (["--set", "eta=abc"], "eta='abc'"),
    (["--axis", "tau=0.1,0.5"], "tau=0.5"),
    (["--axis", "tau"], "axis='tau'"),
    (["--axis", "tau=lin:0:0.4"], "axis tau='lin:0:0.4'"),
    (["--axis", "bogus=1,2"], "axis='bogus'"),
    (["--axis", "n=10.5"], "axis n="),
    (["--seeds", "0"], "--seeds=0"),
    (["--seeds", "-2"], "--seeds=-2"),
    (["--chunk-runs", "0"], "--chunk-runs=0"),
    (["--max-memory", "lots"], "--max-memory='lots'"),
    (["--resume"], "has no config.json"),
    (["--process-id", "1"], "need --distributed"),
    (["--engine", "warp"], "engine='warp' is invalid: allowed one of 'dense'"),
    (["--preset", "no_such_file.py:f"], "an existing file"),
    (["--no-axis", "eta"], "--no-axis='eta'"),
    (["--set", "eta=nan"], "eta=nan"),
    (["--set", "sigma_p=inf"], "sigma_p=inf"),
    (["--axis", "eta=0.1,nan"], "axis eta='0.1,nan'"),
    (["--set", "label_noise_gd=maybe"], "label_noise_gd='maybe'"),
    (["--set", "steps=10.5"], "steps='10.5'"),
    (["--set", "log_every=7"], "log_every=7"),
    (["--axis", "tau_plus=0.1,0.2"], "axis tau"),  # conflicts with the preset's tau axis
    (["--axis", "d=range:100:50:10"], "axis d"),
    (["--set", "snapshot_stages=t1,t7"], "snapshot_stages"),
    (["--heatmap", "nonsense"], "--heatmap='nonsense'"),
    (["--vector-runs", "0"], "--vector-runs=0"),
    (["--axis", "n=inf"], "axis n='inf'"),
    (["--axis", "tau=range:0:0.4:0"], "axis tau='range:0:0.4:0'"),
    (["--set", "tau=0.1"], "--set='tau'"),  # the preset sweeps tau: the axis would win
    (["--distributed", "--num-processes", "0"], "--num-processes=0"),
    (["--distributed", "--num-processes", "2", "--process-id", "2"], "--process-id=2"),
    (["--heatmap", "step"], "--heatmap='step'"),
    (["--set", "optimizer=adam", "--set", "d=10"], "d=10"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_INPUTS)
def test_bad_input_one_line_exit_2_nothing_written(args, needle, tmp_path, capsys):
    out = tmp_path / "out"
    code = grid.main([*TINY, "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists()


def test_out_that_is_a_file_or_unwritable(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    assert grid.main([*TINY, "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err and a_file.read_text() == "keep me"
    assert grid.main([*TINY, "--out", str(a_file / "sweep")]) == 2  # under a file
    assert "not writable" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        assert grid.main([*TINY, "--out", str(locked / "sweep")]) == 2
        assert "not writable" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_existing_output_and_foreign_resume_are_refused(tiny_run, capsys):
    before = (tiny_run / "config.json").read_text()
    assert grid.main([*TINY, "--out", str(tiny_run)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert grid.main([*TINY, "--out", str(tiny_run), "--resume", "--set", "steps=80"]) == 2
    assert "different sweep" in capsys.readouterr().err
    assert (tiny_run / "config.json").read_text() == before


def test_cli_process_exit_code_and_single_line(tmp_path):
    result = cli("--preset", "nope", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "axes",
    [
        # a third axis the preset's figures do not plot, and values out of order
        ["--axis", "eta=0.5,0.3", "--axis", "tau=0.3,0.1,0.2"],
        ["--axis", "n_snr2=4"],  # a single value
    ],
    ids=["extra-and-unsorted-axes", "single-value"],
)
def test_any_axes_end_with_every_figure_and_a_complete_sweep(tmp_path, axes):
    out = tmp_path / "sweep"
    done = cli("--preset", "tiny", "--no-progress", "--set", "steps=8", "--out", str(out), *axes)
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete" and "figures_skipped" not in config
    expected = {"stage_phase.png", "stage_one_exists.png", "final_test_error.png"}
    assert expected | {"trajectories.png"} == set(config["figures"])
    assert all((out / name).stat().st_size > 0 for name in config["figures"])
    ds = nj.load_sweep(out)
    for name in ("tau", "n_snr2", "eta"):
        if name in ds.dims:
            assert np.all(np.diff(ds[name].values) > 0), name  # sorted whatever the input order
    if "eta" in ds.dims:
        assert "drawn at eta=0.3" in done.stderr


def test_unsorted_axis_keeps_each_run_at_its_own_coordinates(tmp_path):
    out = tmp_path / "sweep"
    args = ("--preset", "tiny", "--no-progress", "--set", "steps=8", "--seeds", "1")
    assert cli(*args, "--axis", "tau=0.3,0.1", "--out", str(out)).returncode == 0
    assert cli(*args, "--axis", "tau=0.1,0.3", "--out", str(tmp_path / "b")).returncode == 0
    a, b = nj.load_sweep(out), nj.load_sweep(tmp_path / "b")
    np.testing.assert_array_equal(a["tau_plus"].values, b["tau_plus"].values)
    np.testing.assert_array_equal(a["t1"].values, b["t1"].values)
    np.testing.assert_array_equal(a["train_loss"].values, b["train_loss"].values)


def test_failing_figure_code_costs_the_figures_not_the_sweep(tmp_path, capsys):
    from noisyjax.sweep.runner import draw_figures

    def broken(ds, out):
        raise TypeError("cannot draw this\nsecond line")

    drawn, skipped = draw_figures(broken, None, tmp_path)
    assert drawn == [] and skipped == "TypeError: cannot draw this"
    assert capsys.readouterr().err.count("\n") == 1  # one warning line


def test_resume_with_only_out_finishes_the_sweep_config_json_recorded(tmp_path):
    import shutil

    args = ["--preset", "tiny", "--no-progress", "--set", "steps=20", "--axis", "n=20,30"]
    out = tmp_path / "mine"
    assert cli(*args, "--out", str(out)).returncode == 0
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "results.nc").unlink()
    shutil.rmtree(sorted((copy / "stages").glob("[0-9]*"), key=lambda p: int(p.name))[-1])
    result = cli("--out", str(copy), "--resume", "--no-progress")  # no --set, no --axis
    assert result.returncode == 0, result.stderr
    assert_identical(data_of(copy), data_of(out))
    assert (copy / "stage_phase.png").exists()


def test_no_axis_removes_a_preset_axis_so_its_field_can_be_set(capsys):
    argv = ["--preset", "tiny", "--no-axis", "n_snr2", "--set", "mu_norm=7", "--dry-run"]
    assert grid.main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["dims"] == ["tau", "seed"] and plan["runs"] == 2 * 2
    assert grid.main(["--preset", "tiny", "--no-axis", "eta", "--dry-run"]) == 2
    assert "--no-axis='eta' is invalid" in capsys.readouterr().err


def test_no_axis_then_set_runs_a_single_setting_of_ones_own(capsys):
    argv = ["--preset", "tiny", "--no-axis", "n_snr2", "--no-axis", "tau", "--set", "tau=0.3"]
    assert grid.main([*argv, "--set", "mu_norm=7", "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["dims"] == ["seed"]
    # Every run and dry run states the grid, the runs, memory and disk before it costs anything.
    assert captured.err.startswith("tiny: seed 2 = 2 runs in 1 chunks") and "disk ~" in captured.err


def test_a_preset_of_ones_own_from_a_file(tmp_path, capsys):
    source = tmp_path / "my_presets.py"
    source.write_text(
        "import noisyjax as nj\n"
        "def mine():\n"
        "    cfg = nj.Config(n=10, d=40, m=2, steps=20, log_every=10, n_test=50)\n"
        "    return nj.Sweep('mine', cfg, nj.HParams(), (nj.Axis('tau', (0.0, 0.2)),), 1)\n"
        "def broken():\n"
        "    return 42\n"
    )
    assert grid.main(["--preset", f"{source}:mine", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["preset"] == "mine"
    out = tmp_path / "out"
    for name, needle in (("broken", "returning a Sweep"), ("absent", "a function 'absent'")):
        assert grid.main(["--preset", f"{source}:{name}", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and not out.exists(), err


def test_replot_and_summary_read_a_finished_sweep_back(tiny_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    for png in copy.glob("*.png"):
        png.unlink()
    assert grid.main(["--replot", str(copy)]) == 0
    config = json.loads((copy / "config.json").read_text())
    assert sorted(config["figures"]) == sorted(p.name for p in copy.glob("*.png")) != []
    assert grid.main(["--summary", str(copy)]) == 0
    import pandas as pd

    table = pd.read_csv(copy / "summary.csv")
    ds = nj.load_sweep(copy)
    row = table[(table.variable == "best_test_err") & (table.tau == float(ds.tau[0]))]
    row = row[row.n_snr2 == float(ds.n_snr2[0])].iloc[0]
    seeds = ds.best_test_err.isel(tau=0, n_snr2=0).values
    assert row.seeds == len(seeds) == 4
    assert row["mean"] == pytest.approx(seeds.mean())
    from scipy import stats

    half = stats.t.ppf(0.975, 3) * seeds.std(ddof=1) / 2
    assert row.ci_high - row["mean"] == pytest.approx(half, abs=1e-6)
    never = table[table.variable == "t2"]  # never-reached stage times are no values
    assert (never.seeds <= 4).all()
    window = table[table.variable == "t_memorize"].set_index(["tau", "n_snr2"]).seeds
    reached = ds.t_memorize.notnull().sum("seed").to_series()
    assert reached.min() < 4  # the tiny sweep has windows that never close
    assert (window.sort_index() == reached.sort_index()).all()
    assert grid.main(["--replot", str(tmp_path / "absent")]) == 2
    assert "has no results.nc" in capsys.readouterr().err


def test_help_lists_presets_and_fields_and_version_is_given(capsys):
    with pytest.raises(SystemExit) as done:
        grid.main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "presets (default: stage-phase)" in text and "kou2023-grid" in text
    assert "tau_plus           float default 0.2        a finite number in [0, 0.5)" in text
    assert "activation         str   default relu       one of 'relu'" in text
    assert "python -m sweeps.grid --replot" in text  # the examples
    with pytest.raises(SystemExit):
        grid.main(["--version"])
    assert capsys.readouterr().out.startswith("noisyjax ")


def test_resume_with_other_flags_names_the_differing_fields(tiny_run, capsys):
    argv = [*TINY, "--out", str(tiny_run), "--resume", "--set", "steps=80", "--set", "eta=0.3"]
    assert grid.main(argv) == 2
    err = capsys.readouterr().err
    assert "cfg.steps: recorded 40, given 80" in err and "hp.eta: recorded" in err, err


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"JAX_NUM_CPU_DEVICES": "abc"}, "JAX_NUM_CPU_DEVICES='abc' is invalid"),
        ({"JAX_NUM_CPU_DEVICES": "0"}, "JAX_NUM_CPU_DEVICES='0' is invalid"),
        ({"JAX_PLATFORMS": "cuda"}, "JAX cannot start JAX_PLATFORMS='cuda'"),
    ],
)
def test_an_environment_jax_cannot_start_in_ends_in_one_line(env, needle, tmp_path):
    result = cli("--preset", "tiny", "--out", str(tmp_path / "x"), env=env, pin_one_device=False)
    assert result.returncode == 2 and needle in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "x").exists()


def test_paths_that_cannot_be_a_sweep_directory_end_in_one_line(tmp_path, capsys):
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere" / "x")
    for out, needle in (
        (Path("/proc/noisyjax-test"), "cannot be used"),
        (tmp_path / ("x" * 300), "cannot be used (File name too long)"),
        (dangling, "dangling link"),
    ):
        assert grid.main([*TINY, "--out", str(out), "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "nowhere").exists()


def test_resume_refuses_a_broken_layout(tiny_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    shutil.rmtree(copy / "stages")
    (copy / "stages").write_text("not a directory")
    assert grid.main([*TINY, "--out", str(copy), "--resume"]) == 2
    assert "stages is not a directory" in capsys.readouterr().err


def test_a_signal_outside_the_chunk_loop_ends_in_one_line(monkeypatch, capsys):
    from sweeps import cli as cli_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "run", interrupted)
    assert grid.main(["--preset", "tiny"]) == 130
    err = capsys.readouterr().err
    assert err == "sweeps.grid: interrupted (SIGINT) before the sweep started\n"


def test_python_m_noisyjax_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "noisyjax", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0 and result.stdout.startswith("noisyjax ")


def test_results_describe_themselves(tiny_run):
    import netCDF4
    import xarray as xr

    from noisyjax.sweep.store import rounded
    from sweeps.presets import PRESETS

    ds = nj.load_sweep(tiny_run)
    for name in ds.variables:
        attrs = ds[name].attrs
        assert attrs.get("long_name") and attrs.get("description") and "units" in attrs, name
    assert ds.attrs["Conventions"] == "CF-1.10" and "sweeps.grid" in ds.attrs["history"]
    assert isinstance(ds.attrs["device_count"], np.integer) and ds.attrs["x64"] == 0
    # A never-reached marker is stored as the fill value and decodes as missing.
    raw = xr.open_dataset(tiny_run / "results.nc", engine="h5netcdf", mask_and_scale=False)
    assert (raw.t_memorize.values == -1).any(), "the tiny sweep has windows that never close"
    for t in nj.TRANSITION_NAMES:
        np.testing.assert_array_equal(np.isnan(ds[t].values), raw[t].values == -1, err_msg=t)
        assert int(raw[t].attrs["_FillValue"]) == -1
    # Booleans are CF flags in the file and booleans again when read back.
    assert raw.stage_one_exists.dtype == np.int8 and ds.stage_one_exists.dtype == bool
    assert raw.stage_one_exists.attrs["flag_meanings"] == "false true"
    # Coordinates as the grid was given: the default preset's log axis holds 8.0 exactly.
    default, _ = PRESETS["stage-phase"]()
    n_snr2 = next(a for a in default.axes if a.name == "n_snr2")
    assert 8.0 in [rounded(v) for v in n_snr2.values] and 8.0 not in n_snr2.values
    assert ds.sel(n_snr2=8.0).t1.sizes["seed"] == 4
    with netCDF4.Dataset(tiny_run / "results.nc") as nc:  # the reference library reads it
        assert nc["t_memorize"][:].mask.any()
        assert nc["stage_one_exists"].flag_meanings == "false true"
