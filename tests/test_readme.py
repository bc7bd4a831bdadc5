"""The README's two quickstart commands, and CI running exactly the test one."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_COMMAND = 'pip install -e ".[test]" && python -m pytest -n 2'
MAIN_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && python -m sweeps.grid"
)


def test_readme_has_both_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    assert MAIN_COMMAND in readme and TEST_COMMAND in readme
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert TEST_COMMAND in ci


def test_default_preset_is_documented():
    from sweeps.presets import DEFAULT, PRESETS

    readme = (ROOT / "README.md").read_text()
    assert f"`{DEFAULT}` (default)" in readme
    for name in PRESETS:
        assert f"`{name}`" in readme, name


def test_the_jax_stack_floors_are_the_versions_ci_installs():
    import re

    pyproject = (ROOT / "pyproject.toml").read_text()
    floors = (ROOT / ".ci" / "floors.txt").read_text()
    pinned = dict(re.findall(r"^([\w-]+)==([\w.]+)$", floors, re.M))
    assert set(pinned) == {"jax", "jaxlib", "flax", "optax", "orbax-checkpoint"}
    for name, version in pinned.items():
        assert f'"{name}>={version}"' in pyproject, name
    assert "--constraint .ci/floors.txt" in (ROOT / ".ci" / "run").read_text()
