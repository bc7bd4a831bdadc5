"""Execute examples/colab_tpu.ipynb on CPU with the tiny preset, as CI does.

The notebook skips its installs when NOISYJAX_NOTEBOOK_CI=1; the kernel is started from a
kernel spec written here so that it runs this interpreter (and so this installed noisyjax),
whatever kernels the machine has registered.
"""

import json
import sys
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "colab_tpu.ipynb"
KERNEL = "noisyjax-test"
FIGURES = ("stage_phase.png", "stage_one_exists.png", "final_test_error.png", "trajectories.png")


def kernel_manager(spec_root: Path) -> KernelManager:
    """A kernel manager whose only kernel runs sys.executable."""
    spec_dir = spec_root / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
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
