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
from tests.test_cli import (
    ROOT,
    TINY,
    assert_identical,
    assert_snapshots_identical,
    cli,
    data_of,
    finished_sweep,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return finished_sweep(tmp_path_factory, "reference", *TINY)


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
    # Usually inside the chunk loop ("after K of 2 chunks"); on a slow machine the signal may
    # land after the chunks, while results are written: one line with the same command.
    assert f"interrupted ({signal.Signals(sig).name})" in line, line
    assert " of 2 chunks" in line or "finish with:" in line, line
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


# A: runs are numbered in the order the axes were given; results.nc is sorted by axis value.


def unsorted_and_sorted(tmp_path):
    """The same 2 x 2 grid run twice through the Python API (`out` as a string): with both axes
    given in decreasing order, and in increasing order. 7.999999999999999 is the n SNR^2 a
    float computation gives for 8."""
    cfg = nj.Config(n=20, d=60, m=4, steps=8, log_every=4, n_test=50)
    hp = nj.HParams(eta=0.5, sigma_0=0.01)
    dirs = []
    for name, order in (("unsorted", -1), ("sorted", 1)):
        axes = (nj.Axis("tau", (0.1, 0.3)[::order]), nj.Axis("n_snr2", (2.0, 8 - 1e-15)[::order]))
        out = tmp_path / name
        nj.run_sweep(nj.plan(nj.Sweep("tiny", cfg, hp, axes, seeds=2)), str(out), progress=False)
        dirs.append(out)
    return dirs


def test_load_stage_finds_each_run_by_its_coordinates_whatever_the_axis_order(tmp_path):
    unsorted, ordered = unsorted_and_sorted(tmp_path)
    for stage in ("t1", "final"):
        a, b = nj.load_stage(unsorted, stage), nj.load_stage(ordered, stage)
        for field in a._fields:
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    for tau in (0.1, 0.3):
        for seed in (0, np.int64(1)):
            cell = {"tau": tau, "n_snr2": 8.0, "seed": seed}  # 8.0 finds 7.999999999999999
            a, b = nj.load_stage(unsorted, "t1", **cell), nj.load_stage(ordered, "t1", **cell)
            for field in a._fields:
                np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
            train_a, _, _, hp_a = nj.load_run_data(unsorted, **cell)
            train_b, _, _, hp_b = nj.load_run_data(ordered, **cell)
            np.testing.assert_array_equal(train_a.x, train_b.x)
            assert hp_a == hp_b and hp_a.tau_plus == tau
    # The probe that found the bug: tau=0.3 of the unsorted sweep returned the sorted tau=0.1.
    cell = {"n_snr2": 2.0, "seed": 0}
    assert not np.array_equal(
        nj.load_stage(unsorted, "t1", tau=0.3, **cell).w,
        nj.load_stage(ordered, "t1", tau=0.1, **cell).w,
    )


@pytest.mark.parametrize(
    "coords, message",
    [
        ({"tau": 0.2}, "tau=0.2 is invalid: allowed one of its values 0.1, 0.3 (to a relative"),
        ({"tau": "0.1"}, "tau='0.1' is invalid: allowed one of its values 0.1, 0.3"),
        ({"seed": 5}, "seed=5 is invalid: allowed one of its values 0, 1, 2, 3 ("),
        ({"eta": 0.5}, "coordinate 'eta' is invalid: allowed tau, n_snr2, seed"),
    ],
)
def test_a_coordinate_the_sweep_does_not_hold_is_refused_in_one_line(reference, coords, message):
    with pytest.raises(nj.ConfigError) as err:
        nj.load_stage(reference, "t1", **coords)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), err.value


def test_an_ambiguous_coordinate_value_is_refused():
    from noisyjax.sweep.store import match

    assert match("tau", [0.1, 0.3], 0.30000000000000004) == 1
    assert match("n", [20, 30], np.int64(30)) == 1
    with pytest.raises(nj.ConfigError, match=r"^tau=0.1 is invalid: allowed exactly one of"):
        match("tau", [0.1, 0.1 + 1e-12], 0.1)
    with pytest.raises(nj.ConfigError, match=r"^tau=inf is invalid"):
        match("tau", [0.1, 0.3], float("inf"))


# B: one flipped byte in ONE array data file of an item. Orbax keeps an item's small values
# inline in its b-tree nodes (which carry a CRC-32C of their own) and larger array chunks out of
# line, as the zstd frames of their zarr chunks, which nothing but the project's checksum checks.

SAMPLES = [*TINY, "--set", "log_samples=true"]  # per-sample losses: outputs with a large array
ZSTD = b"\x28\xb5\x2f\xfd"


@pytest.fixture(scope="module")
def samples_reference(tmp_path_factory):
    return finished_sweep(tmp_path_factory, "samples", *SAMPLES)


def zstd_frames(item):
    """(file, start, end) of every zstd frame in the out-of-line data files of an Orbax item,
    largest first. A data file can hold several frames, in the order its writer threads ran."""
    frames = []
    for path in sorted(item.glob("ocdbt.process_0/d/*")):
        data = path.read_bytes()
        if data[:4] != ZSTD:
            continue
        starts = [m.start() for m in re.finditer(re.escape(ZSTD), data)]
        frames += [(path, s, e) for s, e in zip(starts, [*starts[1:], len(data)])]
    return sorted(frames, key=lambda f: (f[1] - f[2], str(f[0]), f[1]))


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def damage_one_array_file(out, reference, step, name):
    """Flip one byte in the middle of one out-of-line zstd frame of item `name`, choosing the
    largest frame whose damage Orbax restores, without an error, to different arrays: a silent
    corruption. (Not every frame will do: a flipped byte can land in a chunk's padding or in a
    frame that Orbax does not read, and which frame sits where changes from run to run.) Its
    manifests, b-tree nodes and metadata stay as they were."""
    for path, start, end in zstd_frames(out / "stages" / str(step) / name):
        flip_byte(path, (start + end) // 2)
        try:
            if not orbax_restores_equal(out, reference, step, name):
                return
        except Exception:  # noqa: BLE001 - a damage Orbax notices is not the case under test
            pass
        flip_byte(path, (start + end) // 2)  # undo, try the next frame
    raise AssertionError(f"no single flipped byte of stages/{step}/{name} changes what it holds")


def orbax_restores_equal(a, b, step, name):
    """Whether Orbax alone (no checksum) restores item `name` of chunk `step` of two sweep
    directories to equal arrays; an error if it cannot read either."""
    import orbax.checkpoint as ocp

    from noisyjax.sweep import store
    from noisyjax.synthetic.config import STAGE_NAMES

    trees = []
    for directory in (a, b):
        mngr = store.manager(directory, STAGE_NAMES, read_only=True)
        restored = mngr.restore(step, args=ocp.args.Composite(**{name: ocp.args.StandardRestore()}))
        trees.append(as_numpy(restored[name]))
        mngr.close()
    return all(np.array_equal(trees[0][k], trees[1][k], equal_nan=True) for k in trees[0])


def as_numpy(tree):
    return {k: np.asarray(v) for k, v in dict(tree).items()}


def redone_lines(stderr):
    return [line for line in stderr.splitlines() if "redoing chunk" in line]


@pytest.mark.parametrize("item", ["t1", "outputs"])
def test_one_flipped_byte_in_one_array_file_is_caught_by_the_checksum(
    samples_reference, tmp_path, item
):
    out = tmp_path / "sweep"
    shutil.copytree(samples_reference, out)
    # Orbax reads the damaged item without an error: only the project's checksum can catch it.
    damage_one_array_file(out, samples_reference, 8, item)
    if item != "outputs":  # load_stage reads snapshots (outputs are read on resume)
        with pytest.raises(nj.SweepDirError) as err:
            nj.load_stage(out, item)
        assert f"stages/8/{item} does not match its checksum" in str(err.value)
        assert "\n" not in str(err.value)
    result = cli(*SAMPLES, "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    assert redone_lines(result.stderr) == [
        f"redoing chunk 8: stages/8/{item} does not match its checksum"
    ], result.stderr
    assert_identical(data_of(out), data_of(samples_reference))
    assert_snapshots_identical(out, samples_reference)


# I: the Python API refuses what it cannot use in the project's one line, never a raw error.

SMALL = nj.Sweep("t", nj.Config(n=8, d=20, m=2, steps=4, log_every=2, n_test=8), nj.HParams())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chunk_runs": "4"}, "chunk_runs='4' is invalid: allowed an integer >= 1"),
        ({"chunk_runs": 4.0}, "chunk_runs=4.0 is invalid: allowed an integer >= 1"),
        ({"chunk_runs": True}, "chunk_runs=True is invalid: allowed an integer >= 1"),
        ({"vector_runs": "8"}, "vector_runs='8' is invalid: allowed an integer >= 1"),
        ({"max_memory": float("nan")}, "max_memory=nan is invalid: allowed a positive finite"),
        ({"max_memory": float("inf")}, "max_memory=inf is invalid: allowed a positive finite"),
        ({"max_memory": "8G"}, "max_memory='8G' is invalid: allowed a positive finite"),
        ({"max_memory": True}, "max_memory=True is invalid: allowed a positive finite"),
        ({"max_memory": 0}, "max_memory=0 is invalid: allowed a positive finite"),
    ],
)
def test_plan_arguments_of_the_wrong_type_are_refused_in_one_line(kwargs, message):
    with pytest.raises(nj.ConfigError) as err:
        nj.plan(SMALL, **kwargs)
    assert str(err.value).startswith(message), err.value


def test_plan_accepts_numpy_integers_and_float_sizes():
    plan = nj.plan(SMALL, chunk_runs=np.int64(2), vector_runs=np.int32(1), max_memory=2.0**33)
    assert plan.buckets[0].chunk_runs == 2 and plan.max_memory == 2**33


def test_axes_and_seeds_accept_numpy_numbers_and_refuse_bools_and_strings():
    axis = nj.Axis("n", (np.int64(20), np.int64(30)))
    assert axis.values == (20, 30) and all(type(v) is int for v in axis.values)
    assert nj.Axis("tau", (np.float32(0.25),)).values == (0.25,)
    sweep = nj.Sweep("t", SMALL.cfg, SMALL.hp, (axis,), seeds=np.int64(2))
    assert sweep.seeds == 2 and type(sweep.seeds) is int
    assert nj.plan(sweep).table.n_runs == 4  # the fingerprint's JSON holds them
    for values in ((True,), ("0.1",), (float("nan"),)):
        with pytest.raises(nj.ConfigError, match=r"^axis tau=.* is invalid: allowed finite"):
            nj.Axis("tau", values)
    for seeds in (True, "2", 2.0, np.float64(2.0)):
        with pytest.raises(nj.ConfigError, match=r"^seeds=.* is invalid: allowed an integer >= 1"):
            nj.Sweep("t", SMALL.cfg, SMALL.hp, seeds=seeds)


def test_a_chunk_xla_says_will_not_fit_is_split_not_attempted(tmp_path, monkeypatch, capsys):
    import dataclasses

    import jax

    from noisyjax.sweep import execute

    sweep = nj.Sweep(
        "split", nj.Config(n=10, d=30, m=2, steps=20, n_test=40), nj.HParams(), (), seeds=8
    )
    devices = jax.local_devices()[:1]
    plan = nj.plan(sweep, chunk_runs=4, vector_runs=2, devices=devices)
    whole = nj.run_sweep(plan, tmp_path / "whole", progress=False)

    def runs_in(compiled):  # XLA's count made proportional to the runs of the chunk
        return 10**6 * jax.tree.leaves(compiled.args_info)[0].shape[1]

    monkeypatch.setattr(execute, "xla_bytes", runs_in)
    monkeypatch.setattr(jax, "local_devices", lambda *a, **k: devices)
    small = dataclasses.replace(plan, max_memory=3 * 10**6)  # 4 runs: over; 2 runs fit
    split = nj.run_sweep(small, tmp_path / "split", progress=False)
    notes = [line for line in capsys.readouterr().err.splitlines() if "split into" in line]
    assert [n.rsplit(" ", 1)[-1] for n in notes] == ["2"]
    for name in whole.data_vars:  # fewer runs per program, the same runs: the same bits
        np.testing.assert_array_equal(split[name].values, whole[name].values, err_msg=name)
    pairs = nj.plan(sweep, chunk_runs=2, vector_runs=2, devices=devices)
    tiny = dataclasses.replace(pairs, max_memory=10**6)  # not even one group of 2 runs fits
    with pytest.raises(nj.ConfigError, match="at least XLA's own count"):
        nj.run_sweep(tiny, tmp_path / "never", progress=False)


def test_a_full_disk_ends_in_one_line_and_resume_finishes_the_sweep(reference, tmp_path):
    """A 400 KiB file system fills up during the first chunk's write (a mount needs root: the
    test is skipped without it)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        out = disk / "sweep"
        full = cli(*TINY, "--out", str(out))
        assert full.returncode == 1, full.stderr
        (line,) = errors(full.stderr)
        assert full.stderr.count("\n") == 2, full.stderr  # the plan line, then the error
        assert "No space left on device" in line and line.endswith(f"--out {out} --resume")
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        resumed = cli(*TINY, "--out", str(out), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        assert_identical(data_of(out), data_of(reference))
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_signal_whose_exception_was_dropped_still_ends_the_sweep_at_the_next_chunk(
    tmp_path, monkeypatch
):
    """Python drops an exception raised inside a garbage-collection callback or a finalizer,
    so a SIGINT landing there used to let the sweep run to the end and exit 0 (seen once on
    CI). The CLI's handler also records the signal, and the chunk loop raises it again."""
    from noisyjax.sweep import runner

    cfg = nj.Config(n=12, d=30, m=2, steps=10, log_every=5, n_test=20)
    sweep = nj.Sweep("latch", cfg, nj.HParams(), (nj.Axis("tau", (0.1, 0.2)),), seeds=2)
    plan = nj.plan(sweep, vector_runs=2, chunk_runs=2)
    assert plan.n_chunks == 2
    monkeypatch.setattr(runner, "received", ["SIGINT"])  # as if its exception had been dropped
    with pytest.raises(runner.SweepInterrupted, match=r"\(SIGINT\) after 1 of 2 chunks"):
        runner.run_sweep(plan, tmp_path / "sweep", progress=False)
    monkeypatch.setattr(runner, "received", [])
    done = runner.run_sweep(plan, tmp_path / "sweep", resume=True, progress=False)
    assert done["test_err"].notnull().all()
