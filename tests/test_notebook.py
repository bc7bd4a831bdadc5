"""Execute examples/colab_tpu.ipynb on CPU with the tiny preset, as CI does.

The notebook skips its installs when NOISYJAX_NOTEBOOK_CI=1; the kernel is started from a
kernel spec written here so that it runs this interpreter (and so this installed noisyjax),
whatever kernels the machine has registered. One slow test (NOISYJAX_SLOW_TESTS=1) runs the
install as a user would: a fresh virtual environment with only jax and the notebook runner,
noisyjax installed by the notebook from a checkout.
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "colab_tpu.ipynb"
KERNEL = "noisyjax-test"
FIGURES = ("stage_phase.png", "stage_one_exists.png", "final_test_error.png", "trajectories.png")


SLOW = os.environ.get("NOISYJAX_SLOW_TESTS") == "1"


def kernel_manager(spec_root: Path, python: str = sys.executable) -> KernelManager:
    """A kernel manager whose only kernel runs `python` (by default this interpreter)."""
    spec_dir = spec_root / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "noisyjax test",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(spec_root)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)


def test_notebook_is_stored_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs"


def test_notebook_runs_tiny_preset_on_cpu(tmp_path, monkeypatch):
    out = tmp_path / "sweep"
    monkeypatch.setenv("NOISYJAX_NOTEBOOK_CI", "1")
    monkeypatch.setenv("NOISYJAX_PRESET", "tiny")
    monkeypatch.setenv("NOISYJAX_OUT", str(out))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("NOISYJAX_SOURCE", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        km=kernel_manager(tmp_path / "kernels"),
        timeout=300,
        resources={"metadata": {"path": str(REPO)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    for name in FIGURES:
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete"
    assert config["environment"]["backend"] == "cpu"
    assert config["environment"]["matmul_precision"] == "highest"
    assert sorted(config["figures"]) == sorted(FIGURES)

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == len(FIGURES)
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "skipping installs" in text
    assert '"shape"' in text  # the --axis dry run printed its plan


def install_cell(nb) -> int:
    """The index of the install cell: the code cell that reads NOISYJAX_SOURCE."""
    return next(
        i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "NOISYJAX_SOURCE" in c.source
    )


@pytest.mark.parametrize(
    "source, message",
    [
        ("/nonexistent/path", "pip could not install noisyjax from /nonexistent/path"),
        ("", "No install source. Set NOISYJAX_SOURCE"),
        ("noisyjax", "'noisyjax' is neither an address nor a path"),  # never a name on PyPI
    ],
    ids=["missing-path", "no-source", "package-name"],
)
def test_a_failing_install_source_stops_the_notebook_at_the_install_cell(
    tmp_path, monkeypatch, source, message
):
    if not source and (
        Path("/content/noisyjax/pyproject.toml").exists() or list(Path("/content").glob("*.whl"))
    ):
        pytest.skip("an uploaded checkout or wheel in /content would be installed")
    monkeypatch.delenv("NOISYJAX_NOTEBOOK_CI", raising=False)
    monkeypatch.setenv("NOISYJAX_SOURCE", source)
    monkeypatch.setenv("NOISYJAX_PRESET", "tiny")
    monkeypatch.setenv("NOISYJAX_OUT", str(tmp_path / "sweep"))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        km=kernel_manager(tmp_path / "kernels"),
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with pytest.raises(nbclient.exceptions.CellExecutionError) as failure:
        client.execute()

    assert message in str(failure.value)
    ran = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count]
    assert ran == [install_cell(nb)], "Run all must stop at the install cell"
    later = [c for c in nb.cells[install_cell(nb) + 1 :] if c.cell_type == "code"]
    assert all(not c.outputs for c in later)
    errors = [o for o in nb.cells[install_cell(nb)].outputs if o.output_type == "error"]
    assert [o.ename for o in errors] == ["InstallFailed"]
    assert message in errors[0].evalue
    assert "What to do" in errors[0].evalue or "Set NOISYJAX_SOURCE" in errors[0].evalue
    assert not (tmp_path / "sweep").exists()


def venv_jax(python: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('jax'), m.version('jaxlib'))"
    return subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(
    not SLOW,
    reason="slow: makes a fresh virtual environment and downloads noisyjax's dependencies; "
    "set NOISYJAX_SLOW_TESTS=1 to run it (.ci/run does)",
)
def test_notebook_installs_from_the_checkout_in_a_fresh_environment(tmp_path, monkeypatch):
    # Only jax (this environment's version, which the project supports) and the notebook runner.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    jax = [f"{name}=={importlib.metadata.version(name)}" for name in ("jax", "jaxlib")]
    runner = ["nbclient", "ipykernel", "nbformat"]
    subprocess.run([python, "-m", "pip", "install", "--quiet", *jax, *runner], check=True)
    jax_before = venv_jax(python)

    # The checkout as a user uploads it (a copy: pip builds a checkout in place, so building
    # this worktree would leave build/ in it, and a stale build/lib would end up in the wheel).
    checkout = tmp_path / "noisyjax"
    skip = (".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(*skip, "checkpoints"))
    cwd = tmp_path / "cwd"  # not the checkout, so that the notebook imports the installed copy
    cwd.mkdir()
    out = tmp_path / "sweep"
    monkeypatch.delenv("NOISYJAX_NOTEBOOK_CI", raising=False)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("NOISYJAX_SOURCE", str(checkout))
    monkeypatch.setenv("NOISYJAX_PRESET", "tiny")
    monkeypatch.setenv("NOISYJAX_OUT", str(out))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        km=kernel_manager(tmp_path / "kernels", python=str(python)),
        timeout=1800,  # the install cell downloads and builds
        startup_timeout=300,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()

    for name in FIGURES:
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["status"] == "complete"
    assert config["environment"]["backend"] == "cpu"
    assert venv_jax(python) == jax_before, "the notebook must keep the environment's jax"

    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert f"installing noisyjax from {checkout}" in text
    assert "installed noisyjax" in text
    where = "import sweeps, noisyjax; print(sweeps.__file__, noisyjax.__file__)"
    files = subprocess.run(
        [python, "-c", where], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.split()
    assert all(Path(f).is_relative_to(venv) for f in files), files  # installed, not the checkout
