"""`python -m sweeps.grid --preset real-digits` end to end (tiny overrides), resume, bad input."""

import json

import numpy as np
import pytest

import noisyjax as nj
from noisyjax.real.checkpoints import load_real_stage, sweep_config
from noisyjax.real.datasets import load
from noisyjax.real.models import make_model, margin
from sweeps import grid
from tests.test_cli import cli

TINY = [
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
    "--set",
    "lr=0.05",
]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "sweep"
    result = cli(*TINY, "--out", str(out), "--vector-runs", "2")  # 2 chunks of 2 runs
    assert result.returncode == 0, result.stderr
    return out


def test_real_digits_writes_results_checkpoints_and_figures(real_run):
    names = {p.name for p in real_run.iterdir()}
    assert {"results.nc", "config.json", "stages"} <= names
    assert {"trajectories.png", "attributions.png"} <= names
    config = json.loads((real_run / "config.json").read_text())
    assert config["status"] == "complete" and config["sweep"]["kind"] == "real"
    ds = nj.load_sweep(real_run)
    assert ds["train_acc_noisy"].dims == ("tau", "seed", "epoch")
    assert ds["epoch"].values.tolist() == [0, 1, 2, 3]
    assert ds["sample_flipped"].dims == ("tau", "seed", "sample")
    flips = ds["sample_flipped"].sum("sample").values
    n = ds.sizes["sample"]
    assert flips[0].tolist() == [0, 0] and flips[1].tolist() == [round(0.2 * n)] * 2
    assert ds["t_cross"].isnull().all()  # never tracked on real images: missing


def test_final_checkpoint_reproduces_the_recorded_accuracies(real_run):
    cfg = sweep_config(real_run)
    snap = load_real_stage(real_run, "final", tau=0.2, seed=1)
    ds = nj.load_sweep(real_run).sel(tau=0.2, seed=1)
    assert int(snap.epoch) == 3
    np.testing.assert_array_equal(snap.flipped, ds["sample_flipped"].values)
    images = load(cfg)
    y_obs = np.where(snap.flipped, 1 - images.label_train, images.label_train)
    params = snap.variables["params"]
    logits = make_model(cfg).logits(params, {}, images.x_train, False)[0]
    correct = np.asarray(margin(logits, y_obs)) > 0
    assert correct[~snap.flipped].mean() == pytest.approx(
        float(ds["train_acc_clean"].isel(epoch=-1)), abs=1e-6
    )
    assert correct[snap.flipped].mean() == pytest.approx(
        float(ds["train_acc_noisy"].isel(epoch=-1)), abs=1e-6
    )


def test_resume_after_a_lost_chunk_gives_identical_results(real_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(real_run, copy)
    chunks = sorted(
        (p for p in (copy / "stages").iterdir() if p.name.isdigit()), key=lambda p: int(p.name)
    )
    assert len(chunks) == 2
    shutil.rmtree(chunks[1])
    (copy / "results.nc").unlink()
    result = cli(*TINY, "--out", str(copy), "--resume", "--vector-runs", "2")
    assert result.returncode == 0, result.stderr
    a, b = nj.load_sweep(real_run), nj.load_sweep(copy)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize(
    "args, field",
    [
        (["--axis", "tau=0.5"], "tau"),
        (["--set", "lr=0"], "lr"),
        (["--axis", "tau=0.1,0.6"], "tau"),
        (["--set", "epochs=-1"], "epochs"),
        (["--set", "batch_size=0"], "batch_size"),
        (["--set", "eta=0.1"], "--set"),
        (["--axis", "mu_norm=1,2"], "axis"),
        (["--set", "classes=3,3"], "classes"),
        (["--set", "tau_plus=0.3"], "--set"),  # tau is an axis of the preset
        (["--heatmap", "t1"], "--heatmap"),
    ],
)
def test_real_bad_input_is_one_line_exit_2_and_writes_nothing(args, field, tmp_path, capsys):
    out = tmp_path / "never"
    code = grid.main(["--preset", "real-digits", "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"{field}=" in err or f"{field} " in err, err
    assert not out.exists()


def test_missing_cifar_tarball_is_refused_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NOISYJAX_CIFAR", raising=False)
    out = tmp_path / "never"
    args = ["--preset", "real-cifar2", "--out", str(out)]
    code = grid.main([*args, "--set", f"cifar_path={tmp_path / 'absent.tar.gz'}"])
    err = capsys.readouterr().err
    assert code == 2 and "cifar_path=" in err and not out.exists()
    code = grid.main([*args, "--set", f"data_dir={tmp_path}", "--set", "download=false"])
    assert code == 2 and "cifar_path=" in capsys.readouterr().err and not out.exists()


def test_unwritable_out_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = grid.main(["--preset", "real-digits", "--out", str(blocker)])
    assert code == 2 and "--out" in capsys.readouterr().err
