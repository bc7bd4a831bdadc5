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


PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
NEEDS_A_SWEEP = ("--resume", "--replot", "--summary", ".py:", "real-cifar2", "--help")


def shell_commands(page: str) -> list[list[str]]:
    """The `python -m sweeps.grid` commands of a page's bash blocks (continuation lines joined,
    comments dropped)."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / page).read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["python", "-m", "sweeps.grid"]:
                commands.append(words[3:])
    return commands


def test_every_sweep_command_of_the_docs_plans(tmp_path, capsys):
    """Every documented command is accepted and planned (as --dry-run: the sweeps themselves run
    in their presets' own tests); those that need a finished sweep or a data file are run by
    the tests of those features, and real-cifar2 needs the CIFAR-10 tarball."""
    planned = 0
    for page in PAGES:
        for args in shell_commands(page):
            if any(flag in word for word in args for flag in NEEDS_A_SWEEP):
                continue
            out = ["--out", str(tmp_path / f"dry{planned}")] if "--out" not in args else []
            code = grid.main([*args, *out, "--dry-run"] if "--dry-run" not in args else args)
            assert code == 0, (page, args, capsys.readouterr().err)
            planned += 1
    assert planned >= 10


def run_block(source: str, replace: dict[str, str]) -> dict:
    for old, new in replace.items():
        assert old in source, old
        source = source.replace(old, new)
    scope: dict = {}
    exec(compile(source, "<docs>", "exec"), scope)  # noqa: S102 (the docs' own snippet)
    return scope


def test_the_python_snippets_of_readme_stages_and_architecture_run(tmp_path, monkeypatch):
    out = tmp_path / "phase"
    args = ["--preset", "stage-phase", "--axis", "tau=0.1,0.2", "--axis", "n_snr2=8", "--seeds"]
    assert grid.main([*args, "2", "--set", "steps=20", "--no-progress", "--out", str(out)]) == 0
    (readme,) = python_blocks("README.md")
    scope = run_block(readme, {"steps=600": "steps=20", '"checkpoints/mine"': repr(str(out))})
    assert scope["metrics"]["train_acc_noisy"].shape == (5,) and "t1" in scope["ds"]
    (stages,) = python_blocks("docs/stages.md")
    scope = run_block(stages, {'"checkpoints/stage-phase-..."': repr(str(out))})
    assert scope["snap"].w.shape[0] == 2 and scope["margins"].shape[-1] == scope["cfg"].n
    (architecture,) = python_blocks("docs/architecture.md")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    scope = run_block(architecture, {'"checkpoints/lin"': repr(str(tmp_path / "lin"))})
    assert scope["ds"]["train_acc_noisy"].sizes["tau"] == 3
