"""Runnable snippets of the docs, executed as a user would run them (at shortened sizes)."""

import re
from pathlib import Path

import numpy as np

import noisyjax as nj
from sweeps import grid

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)


def test_the_preset_of_ones_own_in_sweeps_md_runs(tmp_path, capsys):
    source = next(b for b in python_blocks("docs/sweeps.md") if "def small_phase" in b)
    (tmp_path / "my_presets.py").write_text(source)
    out = tmp_path / "small"
    argv = ["--preset", f"{tmp_path / 'my_presets.py'}:small_phase", "--out", str(out)]
    assert grid.main([*argv, "--set", "steps=20", "--seeds", "1", "--no-progress"]) == 0
    ds = nj.load_sweep(out)
    assert ds.stage_one_length.shape == (4, 3, 1)
    assert (out / "stage_one_length.png").stat().st_size > 0
    assert np.isin(ds.tau.values, (0.0, 0.1, 0.2, 0.3)).all()


def test_outputs_md_renders_the_variables_table_of_the_code():
    from noisyjax.synthetic import variables

    page = (ROOT / "docs" / "outputs.md").read_text()
    assert page.endswith(variables.markdown()), "regenerate the tables from variables.markdown()"
