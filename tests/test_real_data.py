"""Real-image data: the CIFAR-10 tarball reader (on a generated tarball in the official format),
the download cache and its checksum, the digits task, and label flipping."""

import io
import pickle
import tarfile

import jax
import numpy as np
import pytest

from noisyjax.errors import ConfigError
from noisyjax.real import datasets
from noisyjax.real.config import RealConfig, RealHParams
from noisyjax.real.datasets import cifar_source, digits_pair, flip_labels, read_cifar_tarball

PER_BATCH = 30  # images per generated batch: 3 of each CIFAR class


def write_cifar_tarball(path, per_batch=PER_BATCH, seed=0):
    """A small tarball in the official python format: pickled dicts with b"data" (N, 3072)
    uint8 rows in channel-major order and b"labels", under cifar-10-batches-py/."""
    rng = np.random.default_rng(seed)
    contents = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            labels = [int(v) for v in np.tile(np.arange(10), per_batch // 10)]
            data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
            contents[name] = (data, labels)
            entry = {b"batch_label": name.encode(), b"labels": labels, b"data": data}
            payload = pickle.dumps(entry)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        meta = pickle.dumps({b"label_names": [b"airplane", b"automobile"] + [b"x"] * 8})
        info = tarfile.TarInfo("cifar-10-batches-py/batches.meta")
        info.size = len(meta)
        tar.addfile(info, io.BytesIO(meta))
    return contents


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    path = tmp_path_factory.mktemp("cifar") / datasets.CIFAR_FILE
    return path, write_cifar_tarball(path)


def test_cifar_reader_keeps_two_classes_in_file_order_and_pixel_layout(tarball):
    path, contents = tarball
    images = read_cifar_tarball(path, (0, 1))
    assert images.x_train.shape == (5 * 6, 32, 32, 3) and images.x_test.shape == (6, 32, 32, 3)
    assert images.label_train.tolist() == [0, 1] * 15
    data, labels = contents["data_batch_1"]
    first_automobile = data[labels.index(1)]
    # Row layout: channel c, row h, column w at c * 1024 + h * 32 + w.
    for c, h, w in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:
        expected = first_automobile[c * 1024 + h * 32 + w] / 255.0
        assert images.x_train[1, h, w, c] == pytest.approx(expected)
    swapped = read_cifar_tarball(path, (1, 0))  # the first class listed is label 0
    assert swapped.label_train.tolist() == [1, 0] * 15


def test_load_normalizes_per_channel_and_takes_per_class(tarball):
    path, _ = tarball
    cfg = RealConfig(dataset="cifar2", classes=(0, 1), model="vgg11", cifar_path=str(path))
    images = datasets.load(cfg.replace(n_per_class=4, n_test_per_class=2))
    assert images.x_train.shape[0] == 8 and np.bincount(images.label_train).tolist() == [4, 4]
    assert images.x_test.shape[0] == 4
    full = datasets.load(cfg)
    np.testing.assert_allclose(full.x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(full.x_train.std(axis=(0, 1, 2)), 1.0, atol=1e-3)
    assert full.x_train.dtype == np.float32


def test_missing_or_broken_tarball_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NOISYJAX_CIFAR", raising=False)
    cfg = RealConfig(dataset="cifar2", classes=(0, 1), model="vgg11")
    with pytest.raises(ConfigError, match="cifar_path="):
        cifar_source(cfg.replace(cifar_path=str(tmp_path / "absent.tar.gz")))
    with pytest.raises(ConfigError, match="cifar_path=.*download=true"):
        cifar_source(cfg.replace(data_dir=str(tmp_path / "cache"), download=False))
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not a tarball")
    with pytest.raises(ConfigError, match="cifar_path="):
        read_cifar_tarball(broken, (0, 1))
    monkeypatch.setenv("NOISYJAX_CIFAR", str(tmp_path / "nowhere.tar.gz"))
    with pytest.raises(ConfigError, match="nowhere"):
        cifar_source(cfg)


def test_download_is_checked_against_its_checksum(tarball, tmp_path):
    path, _ = tarball
    url = path.as_uri()  # urllib reads file:// URLs: no network needed
    target = tmp_path / "cache" / datasets.CIFAR_FILE
    with pytest.raises(ConfigError, match="checksum"):
        datasets.download(url, target, "0" * 32, "a good file")
    assert not target.exists() and not list(target.parent.glob(".*.tmp"))
    assert datasets.download(url, target, datasets.md5(path), "a good file") == target
    assert target.read_bytes() == path.read_bytes()
    with pytest.raises(ConfigError, match="download failed"):
        datasets.download((tmp_path / "gone.tgz").as_uri(), tmp_path / "x.tgz", "0", "a file")


def test_cached_tarball_is_used_only_when_its_checksum_matches(tarball, tmp_path, monkeypatch):
    path, _ = tarball
    monkeypatch.delenv("NOISYJAX_CIFAR", raising=False)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / datasets.CIFAR_FILE).write_bytes(path.read_bytes())
    cfg = RealConfig(dataset="cifar2", model="vgg11", classes=(0, 1), data_dir=str(cache))
    with pytest.raises(ConfigError):  # not the official file: not trusted, and no download
        cifar_source(cfg.replace(download=False))
    monkeypatch.setattr(datasets, "CIFAR_MD5", datasets.md5(path))
    assert cifar_source(cfg.replace(download=False)) == cache / datasets.CIFAR_FILE


def test_digits_pair_is_a_fixed_disjoint_balanced_split():
    a, b = digits_pair((3, 8)), digits_pair((3, 8))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape[1:] == (8, 8, 1)
    assert abs(a.label_train.mean() - 0.5) < 0.05 and abs(a.label_test.mean() - 0.5) < 0.05
    train_rows = {x.tobytes() for x in a.x_train}
    assert len(a.label_test) == pytest.approx(len(a.label_train) / 2, abs=3)
    assert sum(x.tobytes() in train_rows for x in a.x_test) <= 2  # (duplicated digits aside)


def flips(cfg, tau_plus, tau_minus, label, seed=0):
    hp = RealHParams(tau_plus=np.float32(tau_plus), tau_minus=np.float32(tau_minus))
    return np.asarray(jax.jit(flip_labels, static_argnums=3)(jax.random.key(seed), label, hp, cfg))


def test_exact_flips_swap_round_tau_n_and_nest_across_tau():
    label = np.asarray([0] * 60 + [1] * 41, np.int32)
    cfg = RealConfig(flip="exact")
    f20, f30 = flips(cfg, 0.2, 0.2, label), flips(cfg, 0.3, 0.3, label)
    assert f20.sum() == round(0.2 * 101) and f30.sum() == round(0.3 * 101)
    assert np.all(f30[f20])  # same seed: the lower rate flips a subset
    assert not np.array_equal(f20, flips(cfg, 0.2, 0.2, label, seed=1))
    conditional = flips(cfg.replace(class_conditional=True), 0.1, 0.4, label)
    assert conditional[label == 1].sum() == round(0.1 * 41)
    assert conditional[label == 0].sum() == round(0.4 * 60)
    assert flips(cfg, 0.0, 0.0, label).sum() == 0


def test_bernoulli_flips_have_the_class_rates():
    label = np.asarray([0, 1] * 5000, np.int32)
    f = flips(RealConfig(flip="bernoulli", class_conditional=True), 0.1, 0.3, label)
    assert f[label == 1].mean() == pytest.approx(0.1, abs=0.015)
    assert f[label == 0].mean() == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"classes": (3, 3)}, "classes"),
        ({"classes": (3, 11)}, "classes"),
        ({"model": "vgg11"}, "model"),  # digits are 8x8
        ({"epochs": 0}, "epochs"),
        ({"batch_size": -1}, "batch_size"),
        ({"lr_milestones": (5, 2)}, "lr_milestones"),
        ({"flip": "sometimes"}, "flip"),
        ({"dataset": "mnist"}, "dataset"),
        ({"snapshot_stages": "t_cross"}, "snapshot_stages"),
    ],
)
def test_bad_config_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=f"^{field}="):
        RealConfig(**changes)


def test_bad_hparams_name_the_field():
    with pytest.raises(ConfigError, match="^tau_plus=0.5 is invalid"):
        RealHParams(tau_plus=0.5)
    with pytest.raises(ConfigError, match="^lr="):
        RealHParams(lr=0.0)
