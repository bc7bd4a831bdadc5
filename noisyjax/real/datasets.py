"""Binary image data sets and label flipping (docs/science.md section 8).

Shape letters: N images, H height, W width, C channels.

`load(cfg)` returns the same `Images` for every run of a sweep (host NumPy arrays, normalized
per channel with the training images' statistics, no augmentation); `flip_labels` draws one
run's flips from its key inside the compiled program, so runs differ only in their flips.

CIFAR-10 comes from the official python-version tarball: `cifar_path`, else $NOISYJAX_CIFAR,
else the cache directory (`data_dir`, $NOISYJAX_DATA, ~/.cache/noisyjax), where it is downloaded
once and checked against its published MD5 checksum.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from noisyjax.errors import fail
from noisyjax.real.config import RealConfig, RealHParams

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR_FILE = "cifar-10-python.tar.gz"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
DIGITS_TEST_FRACTION = 1 / 3
DIGITS_SPLIT_SEED = 0  # the train/test split is fixed: every run sees the same images


class Images(NamedTuple):
    """A binary data set: images and their true labels (0 or 1)."""

    x_train: np.ndarray  # (N, H, W, C) float32, normalized
    label_train: np.ndarray  # (N,) int32 in {0, 1}
    x_test: np.ndarray  # (N_test, H, W, C)
    label_test: np.ndarray  # (N_test,)


def load(cfg: RealConfig) -> Images:
    """The configured binary task, normalized per channel with training statistics."""
    if cfg.dataset == "digits":
        raw = digits_pair(cfg.classes)
    else:
        raw = read_cifar_tarball(cifar_source(cfg), cfg.classes)
    x_train, label_train = take_per_class(raw.x_train, raw.label_train, cfg.n_per_class)
    x_test, label_test = take_per_class(raw.x_test, raw.label_test, cfg.n_test_per_class)
    mean_C = x_train.mean(axis=(0, 1, 2))
    std_C = x_train.std(axis=(0, 1, 2)) + 1e-6
    return Images(
        ((x_train - mean_C) / std_C).astype(np.float32),
        label_train.astype(np.int32),
        ((x_test - mean_C) / std_C).astype(np.float32),
        label_test.astype(np.int32),
    )


def take_per_class(x: np.ndarray, label: np.ndarray, per_class: int) -> tuple:
    """The first `per_class` images of each class in file order (0: all)."""
    if per_class == 0:
        return x, label
    keep = np.concatenate([np.flatnonzero(label == k)[:per_class] for k in (0, 1)])
    keep.sort()
    return x[keep], label[keep]


def digits_pair(classes: tuple[int, int]) -> Images:
    """scikit-learn's bundled 8x8 digits (offline), two classes, a fixed stratified split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    train, test = [], []
    for k, digit in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(digits.target == digit))
        cut = int(round(len(idx) * DIGITS_TEST_FRACTION))
        test += [(i, k) for i in idx[:cut]]
        train += [(i, k) for i in idx[cut:]]
    images = digits.images.astype(np.float32)[..., None] / 16.0

    def gather(pairs):
        pairs = sorted(pairs)
        return images[[i for i, _ in pairs]], np.asarray([k for _, k in pairs], np.int32)

    return Images(*gather(train), *gather(test))


def read_cifar_tarball(path: Path, classes: tuple[int, int]) -> Images:
    """Two classes of the official python-version CIFAR-10 tarball, as (N, 32, 32, 3) in [0, 1].

    Each batch is a pickled dict with b"data" (N, 3072) uint8, channel-major rows, and
    b"labels".
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [n for n in CIFAR_TRAIN + (CIFAR_TEST,) if n not in members]
            if missing:
                fail("cifar_path", str(path), f"a CIFAR-10 python tarball (missing {missing[0]})")

            def batch(name: str) -> tuple[np.ndarray, np.ndarray]:
                entry = pickle.load(tar.extractfile(members[name]), encoding="bytes")
                data = np.asarray(entry[b"data"], np.uint8).reshape(-1, 3, 32, 32)
                return data.transpose(0, 2, 3, 1), np.asarray(entry[b"labels"], np.int64)

            train = [batch(n) for n in CIFAR_TRAIN]
            test = batch(CIFAR_TEST)
    except (tarfile.TarError, OSError, pickle.UnpicklingError, KeyError, EOFError) as err:
        fail("cifar_path", str(path), f"a readable CIFAR-10 python tarball ({type(err).__name__})")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return Images(*_binary(x_train, y_train, classes), *_binary(*test, classes))


def _binary(x: np.ndarray, y: np.ndarray, classes: tuple[int, int]) -> tuple:
    keep = np.isin(y, classes)
    return x[keep].astype(np.float32) / 255.0, (y[keep] == classes[1]).astype(np.int32)


def cache_dir(cfg: RealConfig) -> Path:
    root = cfg.data_dir or os.environ.get("NOISYJAX_DATA") or Path.home() / ".cache" / "noisyjax"
    return Path(root)


def cifar_source(cfg: RealConfig) -> Path:
    """The CIFAR-10 tarball to read: given path, $NOISYJAX_CIFAR, the cache, or a download.

    Raises the project's ConfigError (field cifar_path) when it is nowhere and cannot be fetched.
    """
    given = cfg.cifar_path or os.environ.get("NOISYJAX_CIFAR", "")
    if given:
        if not Path(given).is_file():
            fail("cifar_path", given, f"an existing {CIFAR_FILE} (the official python version)")
        return Path(given)
    cached = cache_dir(cfg) / CIFAR_FILE
    if cached.is_file() and md5(cached) == CIFAR_MD5:
        return cached
    allowed = (
        f"a local {CIFAR_FILE} (--set cifar_path=PATH or NOISYJAX_CIFAR=PATH), or "
        f"network access to download it into {str(cache_dir(cfg))!r}"
    )
    if not cfg.download:
        fail("cifar_path", given, allowed + " with download=true")
    return download(CIFAR_URL, cached, CIFAR_MD5, allowed)


def download(url: str, target: Path, checksum: str, allowed: str) -> Path:
    """Fetch `url` into `target` (renamed into place only after its MD5 matches)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            shutil.copyfileobj(response, out)
        if md5(Path(tmp)) != checksum:
            fail("cifar_path", "", allowed + f" (the download from {url} failed its checksum)")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError) as err:
        fail("cifar_path", "", allowed + f" (download failed: {type(err).__name__}; offline?)")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def md5(path: Path) -> str:
    """The file's MD5 as hex (the checksum CIFAR-10's authors publish)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def flip_labels(key: jax.Array, label_N: jax.Array, hp: RealHParams, cfg: RealConfig) -> jax.Array:
    """One run's flip mask (N,) bool: label 1 flips with tau_plus, label 0 with tau_minus.

    "exact" swaps exactly round(tau n) labels chosen uniformly (docs/science.md section 8, the
    authors' code), per class when class_conditional; "bernoulli" flips each independently.
    The uniform scores come from `key` alone, so for one seed a lower tau flips a subset of
    the samples a higher tau flips.
    """
    dtype = jnp.float32
    score_N = jax.random.uniform(key, label_N.shape, dtype)
    one_N = label_N == 1
    tau_N = jnp.where(one_N, jnp.asarray(hp.tau_plus, dtype), jnp.asarray(hp.tau_minus, dtype))
    if cfg.flip == "bernoulli":
        return score_N < tau_N
    if not cfg.class_conditional:
        count = jnp.round(jnp.asarray(hp.tau_plus, dtype) * label_N.shape[0])
        return _rank(score_N) < count
    count_N = jnp.where(
        one_N,
        jnp.round(tau_N * jnp.sum(one_N).astype(dtype)),
        jnp.round(tau_N * jnp.sum(~one_N).astype(dtype)),
    )
    # Rank within the own class: the other class's scores are pushed past every own score.
    rank_N = jnp.where(
        one_N, _rank(jnp.where(one_N, score_N, 2.0)), _rank(jnp.where(one_N, 2.0, score_N))
    )
    return rank_N < count_N


def _rank(score_N: jax.Array) -> jax.Array:
    """0-based rank of each score (float, for comparison with float counts)."""
    return jnp.argsort(jnp.argsort(score_N)).astype(score_N.dtype)
