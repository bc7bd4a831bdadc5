"""Test settings: CPU only, float64 available, strict dtype and rank promotion."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


# The quick subset (`python -m pytest -m quick`, about 3 minutes on 2 cores): the float64 oracle,
# the engines' agreement, the configuration and command-line checks of bad input, and one
# kill-and-resume. A test is in it when its node id starts with one of these.
QUICK = (
    "tests/test_oracle.py::",
    "tests/test_config.py::",
    "tests/test_imports.py::",
    "tests/test_engines.py::test_gram_equals_dense_in_float64",
    "tests/test_cli.py::test_bad_input_one_line_exit_2_nothing_written",
    "tests/test_faults.py::test_killed_at_a_point_then_resumed_equals_uninterrupted[checkpoint:2]",
)


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if item.nodeid.startswith(QUICK):
            item.add_marker(pytest.mark.quick)
