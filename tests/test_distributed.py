"""Multi-process sweeps for real: two `python -m sweeps.grid --distributed` processes on loopback.

Each process is a separate Python with the CPU backend and 1 to 3 emulated devices
(`--xla_force_host_platform_device_count`); they meet through `jax.distributed.initialize` at a
coordinator on 127.0.0.1 and exchange chunks over gloo. The results must equal, bit for bit, a
plain single-process run on 1 device (the first case's own command without `--distributed`):
which process ran a chunk, how many devices there were and how big the chunks were must not
change any number. The vector width is fixed (`--vector-runs 2`), as the library's guarantee
is for a fixed width: it is the only batch size XLA sees, and XLA may round a vmapped
contraction differently for different batch sizes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import noisyjax as nj
from noisyjax.synthetic.checkpoints import load_stage

REPO = Path(__file__).resolve().parents[1]
SEEDS = 3
RUNS = 2 * 2 * SEEDS  # tiny: tau x n_snr2 = 2 x 2 cells, times seeds
VECTOR_RUNS = 2
ARGS = f"--preset tiny --no-progress --seeds {SEEDS} --vector-runs {VECTOR_RUNS}".split()
FIGURES = {"stage_phase.png", "stage_one_exists.png", "final_test_error.png", "trajectories.png"}
TIMEOUT_S = 240.0
SINGLE_CHUNK_RUNS = 4  # the reference run: 1 process, 1 device, 4 runs per chunk


def _env(devices: int) -> dict[str, str]:
    env = dict(os.environ)
    flags = [
        f
        for f in env.get("XLA_FLAGS", "").split()
        if not f.startswith("--xla_force_host_platform_device_count")
    ]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(commands: list[list[str]], devices: int, logs: Path) -> list[str]:
    """Start every command at once; return their stdouts. Any failure or timeout kills all."""
    logs.mkdir(parents=True, exist_ok=True)
    procs, files = [], []
    try:
        for i, cmd in enumerate(commands):
            out, err = open(logs / f"{i}.out", "w+"), open(logs / f"{i}.err", "w+")
            files += [out, err]
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=REPO,
                    env=_env(devices),
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                )
            )
        deadline, timed_out = time.monotonic() + TIMEOUT_S, False
        while any(p.poll() is None for p in procs):
            if any(p.returncode not in (None, 0) for p in procs):
                break  # one failed: the others would only wait for it
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.1)
    finally:
        for p in procs:  # on success all have exited; otherwise stop the rest
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in files:
            f.close()
    codes = [p.returncode for p in procs]
    if codes != [0] * len(procs):
        report = "\n".join(
            f"--- process {i} (exit {code}): {' '.join(cmd[2:])}\n"
            f"stdout:\n{(logs / f'{i}.out').read_text()[-3000:]}\n"
            f"stderr:\n{(logs / f'{i}.err').read_text()[-6000:]}"
            for i, (cmd, code) in enumerate(zip(commands, codes, strict=True))
        )
        why = f"timed out after {TIMEOUT_S:.0f} s" if timed_out else "failed"
        raise AssertionError(f"sweeps.grid {why} (exit codes {codes}, negative: killed):\n{report}")
    return [(logs / f"{i}.out").read_text() for i in range(len(procs))]


def _grid(out: Path, chunk_runs: int, *extra: str) -> list[str]:
    args = [*ARGS, "--chunk-runs", str(chunk_runs), "--out", str(out), *extra]
    return [sys.executable, "-m", "sweeps.grid", *args]


def _chunk_names(size: int) -> set[str]:
    """The chunk stores of a sweep cut into chunks of `size`: named by their first run."""
    return {str(start) for start in range(0, RUNS, size)}


def _stored_chunks(out: Path) -> set[str]:
    return {p.name for p in (out / "stages").iterdir() if p.name.isdigit()}


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """A plain single-process sweep (no --distributed) on 1 device, 4 runs per chunk."""
    root = tmp_path_factory.mktemp("single")
    (stdout,) = _run([_grid(root / "out", SINGLE_CHUNK_RUNS)], 1, root / "logs")
    assert f"wrote {root / 'out'}" in stdout
    assert _stored_chunks(root / "out") == _chunk_names(SINGLE_CHUNK_RUNS)
    return root / "out"


def _assert_same_results(got: xr.Dataset, want: xr.Dataset) -> None:
    """Data variables and coordinates identical, bit for bit; attributes may differ."""
    assert list(got.data_vars) == list(want.data_vars)
    assert set(got.coords) == set(want.coords)
    xr.testing.assert_identical(got.drop_attrs(), want.drop_attrs())
    for name in [*want.data_vars, *want.coords]:
        a, b = got[name].values, want[name].values
        assert (a.dtype, a.shape) == (b.dtype, b.shape), name
        if a.dtype.kind in "fiub":
            assert a.tobytes() == b.tobytes(), f"{name} differs in its bits"
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


# (devices per process, --chunk-runs): 2 groups of 2 vectorized runs on each device. The 12 runs
# are cut into chunks of chunk_runs and dealt round-robin to the 2 processes:
#   2 devices, 8: chunks 8, 4: one each; process 1 pads its 4 runs to 8 (4 devices in all).
#   3 devices, 12: a single chunk: process 1 runs nothing and only sends a placeholder.
CASES = [(2, 8), (3, 12)]


@pytest.mark.parametrize(
    ("devices", "chunk_runs"), CASES, ids=[f"{d}dev-chunk{c}" for d, c in CASES]
)
def test_two_processes_on_loopback_match_a_single_process_run(
    tmp_path, single, devices, chunk_runs
):
    out0, out1 = tmp_path / "out", tmp_path / "out-process1"
    port = _free_port()
    cluster = ("--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2")
    # Process 1 is pointed at its own --out: it must never create it (process 0 writes all).
    stdout0, stdout1 = _run(
        [
            _grid(out0, chunk_runs, *cluster, "--process-id", "0"),
            _grid(out1, chunk_runs, *cluster, "--process-id", "1"),
        ],
        devices,
        tmp_path / "logs",
    )
    assert f"wrote {out0}" in stdout0
    assert "wrote" not in stdout1
    assert not out1.exists(), "process 1 wrote files"

    expected = {"config.json", "results.nc", "stages"} | FIGURES
    assert {p.name for p in out0.iterdir()} == expected
    assert _stored_chunks(out0) == _chunk_names(chunk_runs)
    for name in FIGURES:
        assert (out0 / name).stat().st_size > 0, name

    config = json.loads((out0 / "config.json").read_text())
    env = config["environment"]
    assert config["status"] == "complete"
    assert (env["process_count"], env["local_device_count"], env["device_count"]) == (
        2,
        devices,
        2 * devices,
    )
    assert config["plan"]["runs"] == RUNS
    assert config["plan"]["chunks"] == len(_chunk_names(chunk_runs))
    assert config["plan"]["devices"] == devices  # each process plans for its local devices
    (bucket,) = config["plan"]["buckets"]
    assert (bucket["chunk_runs"], bucket["vector_runs"]) == (chunk_runs, VECTOR_RUNS)
    assert set(config["figures"]) == FIGURES

    got, want = nj.load_sweep(out0), nj.load_sweep(single)
    assert got.attrs["fingerprint"] == want.attrs["fingerprint"]
    attrs = [(int(ds.attrs["process_count"]), int(ds.attrs["device_count"])) for ds in (got, want)]
    assert attrs == [(2, 2 * devices), (1, 1)]
    assert (got.sizes["seed"], got.sizes["tau"], got.sizes["n_snr2"]) == (SEEDS, 2, 2)
    _assert_same_results(got, want)
    # Stage checkpoints: gathered to process 0, written once, equal to the single-process ones.
    for stage in ("t1", "t_best", "final"):
        a, b = load_stage(out0, stage), load_stage(single, stage)
        for field in a._fields:
            assert getattr(a, field).tobytes() == getattr(b, field).tobytes(), (stage, field)


REAL_ARGS = [
    "--preset",
    "real-digits",
    "--no-progress",
    "--seeds",
    "2",
    "--set",
    "epochs=3",
    "--set",
    "lr_milestones=2",
    "--set",
    "width=4",
    "--vector-runs",
    "1",
    "--chunk-runs",
    "1",
]  # 2 tau x 2 seeds = 4 runs, 4 chunks of 1 run: two chunks for each process


def test_real_image_sweep_on_two_processes_matches_one_process(tmp_path):
    """The real-image experiment runs on the same engine: --distributed works for it too."""
    from noisyjax.real.checkpoints import load_real_stage

    single, out0 = tmp_path / "single", tmp_path / "out"
    grid = [sys.executable, "-m", "sweeps.grid", *REAL_ARGS]
    _run([[*grid, "--out", str(single)]], 1, tmp_path / "logs-single")
    port = _free_port()
    cluster = ["--distributed", "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    _run(
        [
            [*grid, "--out", str(out0), *cluster, "--process-id", "0"],
            [*grid, "--out", str(tmp_path / "out-process1"), *cluster, "--process-id", "1"],
        ],
        1,
        tmp_path / "logs",
    )
    assert not (tmp_path / "out-process1").exists(), "process 1 wrote files"
    got, want = nj.load_sweep(out0), nj.load_sweep(single)
    assert int(got.attrs["process_count"]) == 2
    assert got.attrs["fingerprint"] == want.attrs["fingerprint"]
    _assert_same_results(got, want)
    assert _stored_chunks(out0) == _stored_chunks(single) == {"0", "1", "2", "3"}
    for stage in ("t1", "final"):
        a = load_real_stage(out0, stage, tau=0.2, seed=1)
        b = load_real_stage(single, stage, tau=0.2, seed=1)
        for x, y in zip(jax_leaves(a), jax_leaves(b), strict=True):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), stage


def jax_leaves(tree):
    import jax

    return jax.tree.leaves(tree)
