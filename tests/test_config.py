"""Validation at the Python boundary: every bad value gets a one-line error naming the field."""

import math

import pytest

import noisyjax as nj

BAD_CONFIGS = [
    ({"n": 0}, "n=0"),
    ({"d": -3}, "d=-3"),
    ({"m": 2.5}, "m=2.5"),
    ({"steps": 0}, "steps=0"),
    ({"steps": 100, "log_every": 7}, "log_every=7"),
    ({"n_test": True}, "n_test=True"),
    ({"activation": "tanh"}, "activation='tanh'"),
    ({"optimizer": "lbfgs"}, "optimizer='lbfgs'"),
    ({"noise": "laplace"}, "noise='laplace'"),
    ({"flip": "sometimes"}, "flip='sometimes'"),
    ({"signal": "e2"}, "signal='e2'"),
    ({"dtype": "float16"}, "dtype='float16'"),
    ({"q": 1.0}, "q=1.0"),
    ({"leaky_slope": -0.1}, "leaky_slope=-0.1"),
    ({"optimizer": "sgd", "n": 10, "batch_size": 11}, "batch_size=11"),
    ({"engine": "sparse"}, "engine='sparse'"),
    ({"engine": "gram", "optimizer": "adam", "d": 2000}, "engine='gram'"),
    ({"engine": "wishart", "m": 20, "d": 40}, "d=40"),
    ({"init": "xavier"}, "init='xavier'"),
    ({"output_scale": "sum"}, "output_scale='sum'"),
    ({"n_val": -1}, "n_val=-1"),
    ({"bias": 1}, "bias=1"),
    ({"d": 1}, "d=1"),  # orthogonal noise needs a direction besides mu
    ({"optimizer": "adam", "n": 20, "d": 15}, "d=15"),
]


@pytest.mark.parametrize(("changes", "needle"), BAD_CONFIGS)
def test_bad_config_names_field_and_value(changes, needle):
    with pytest.raises(nj.ConfigError) as info:
        nj.Config(**changes)
    message = str(info.value)
    assert needle in message and "allowed" in message and "\n" not in message


BAD_HPARAMS = [
    ("tau_plus", 0.5),
    ("tau_minus", -0.01),
    ("tau_plus", math.nan),
    ("eta", 0.0),
    ("eta", math.inf),
    ("sigma_p", 0.0),
    ("sigma_0", -1.0),
    ("mu_norm", -2.0),
    ("relabel_rate", 0.7),
]


@pytest.mark.parametrize(("field", "value"), BAD_HPARAMS)
def test_bad_hparam_names_field_and_range(field, value):
    with pytest.raises(nj.ConfigError, match=f"^{field}=.*allowed"):
        nj.HParams(**{field: value})


def test_good_values_pass_and_config_is_hashable():
    cfg = nj.Config(n=10, d=5, m=2, steps=10, log_every=5)
    assert hash(cfg) == hash(nj.Config(n=10, d=5, m=2, steps=10, log_every=5))
    assert cfg.n_logs == 3
    nj.HParams(tau_plus=0.0, tau_minus=0.49, mu_norm=0.0)


def test_hparams_is_a_pytree_of_its_fields():
    import jax

    leaves = jax.tree.leaves(nj.HParams())
    assert len(leaves) == len(nj.synthetic.config.HPARAM_FIELDS)
