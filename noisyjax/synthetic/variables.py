# ruff: noqa: E501  (a table of one-sentence descriptions)
"""What every variable and coordinate of a synthetic sweep's results.nc means: one table, read
by the store (CF attributes `long_name`, `units`, `description`; figures label axes with the
long names) and by docs/outputs.md (rendered from it by a test, so the two cannot drift).

Units follow CF where one exists: "1" for dimensionless numbers and fractions, "steps" for
gradient-descent steps. A transition probe `<marker>_<probe>` is described from its two parts.
"""

from __future__ import annotations

from noisyjax.synthetic import stages
from noisyjax.synthetic.config import TRANSITION_NAMES

# name: (long name, units, one-sentence description)
Entry = tuple[str, str, str]

TRAJECTORIES: dict[str, Entry] = {
    "train_loss": (
        "training loss",
        "1",
        "Mean logistic loss over the training set, observed labels.",
    ),
    "train_loss_clean": (
        "clean training loss",
        "1",
        "Mean logistic loss over the samples whose label was not flipped.",
    ),
    "train_loss_noisy": (
        "flipped training loss",
        "1",
        "Mean logistic loss over the flipped samples, on their observed (wrong) labels.",
    ),
    "train_acc": (
        "training accuracy",
        "1",
        "Fraction of training samples whose observed label is predicted.",
    ),
    "train_acc_clean": (
        "clean training accuracy",
        "1",
        "Fraction of clean samples whose label is predicted.",
    ),
    "train_acc_noisy": (
        "flipped training accuracy",
        "1",
        "Fraction of flipped samples whose observed (wrong) label is predicted: 1 when they are memorized.",
    ),
    "train_acc_noisy_true": (
        "flipped samples' true-label accuracy",
        "1",
        "Fraction of flipped samples whose true label is predicted.",
    ),
    "test_err": (
        "test error",
        "1",
        "Fraction of clean-label test samples misclassified (true labels).",
    ),
    "test_err_noisy_labels": (
        "test error on noisy labels",
        "1",
        "Fraction of test samples misclassified against labels flipped at the training rates.",
    ),
    "val_err": (
        "validation error",
        "1",
        "Fraction of validation samples misclassified against their true labels.",
    ),
    "val_err_noisy_labels": (
        "validation error on noisy labels",
        "1",
        "Fraction of validation samples misclassified against their flipped labels.",
    ),
    "gamma_max": (
        "signal coefficient gamma (max over filters)",
        "1",
        "Largest signal-learning coefficient gamma_{j,r} over the filters (docs/science.md).",
    ),
    "rho_bar_clean": (
        "clean noise memorization rho_bar",
        "1",
        "Mean over clean samples of the largest positive noise coefficient rho_bar_{j,r,i}.",
    ),
    "rho_bar_noisy": (
        "flipped noise memorization rho_bar",
        "1",
        "Mean over flipped samples of the largest positive noise coefficient rho_bar_{j,r,i}.",
    ),
    "rho_bar_clean_max": (
        "clean noise memorization (max)",
        "1",
        "Largest rho_bar_{j,r,i} over clean samples and filters.",
    ),
    "rho_bar_noisy_max": (
        "flipped noise memorization (max)",
        "1",
        "Largest rho_bar_{j,r,i} over flipped samples and filters.",
    ),
    "rho_under_min": (
        "negative noise coefficient rho_under (min)",
        "1",
        "Smallest negative noise coefficient rho_under_{j,r,i} over samples and filters.",
    ),
    "frac_clean_below_log2": (
        "clean samples below log 2",
        "1",
        "Fraction of clean samples whose loss is below log 2 (margin > 0).",
    ),
    "frac_noisy_above_log2": (
        "flipped samples above log 2",
        "1",
        "Fraction of flipped samples whose loss is above log 2 (still predicted with their true label).",
    ),
    "loss_auroc": (
        "AUROC of the per-sample loss",
        "1",
        "Probability that a flipped sample has a higher loss than a clean one (ties count 1/2).",
    ),
    "grad_signal_norm": (
        "signal part of the step",
        "1",
        "Norm of the gradient step's component along the signal mu.",
    ),
    "grad_noise_norm": (
        "noise part of the step",
        "1",
        "Norm of the gradient step's component in the span of the training noise vectors.",
    ),
}

MARKERS: dict[str, Entry] = {
    "t1": (
        "t1: clean samples fitted",
        "steps",
        "First step at which every clean training sample is fitted (margin > 0); missing if never.",
    ),
    "t_stage1": (
        "start of the Stage-I window",
        "steps",
        "First step of the Stage-I window: every clean sample fitted while at least 90% of the flipped samples still have loss above log 2 (true label predicted); missing if never.",
    ),
    "t_clean": (
        "t_clean: clean loss level reached",
        "steps",
        "First step with mean clean training loss below the configured level; missing if never.",
    ),
    "t_overtake": (
        "t_overtake: noise overtakes signal",
        "steps",
        "First step at which the flipped samples' mean max_r rho_bar exceeds max gamma; missing if never.",
    ),
    "t_cross_flipped": (
        "t_cross_flipped",
        "steps",
        "First step at which the step's component along the flipped samples' noise outgrows its signal component; missing if never.",
    ),
    "t_half_flipped": (
        "half of the flipped samples fitted",
        "steps",
        "First step from t1 on at which at least half of the flipped samples are fitted to their wrong label; missing if never.",
    ),
    "t_memorize": (
        "end of the Stage-I window",
        "steps",
        "End of the Stage-I window: first step after t_stage1 at which fewer than 90% of the flipped samples have loss above log 2; missing if never.",
    ),
    "t2": (
        "t2: all training samples fitted",
        "steps",
        "First step at which every training sample, flipped ones included, is fitted; missing if never.",
    ),
    "t_best": (
        "t_best: lowest test error",
        "steps",
        "Step with the fewest true-label test errors, the first on ties (the oracle early stop).",
    ),
    "t_cross": (
        "t_cross: noise step exceeds signal step",
        "steps",
        "First step at which the noise part of the gradient step exceeds its signal part; missing if never.",
    ),
}

PROBES: dict[str, Entry] = {name: TRAJECTORIES[name] for name in stages.PROBES}

PER_RUN: dict[str, Entry] = {
    "stage_one_exists": (
        "Stage I exists",
        "1",
        "Whether the Stage-I window [t_stage1, t_memorize) is non-empty.",
    ),
    "stage_one_length": (
        "length of the Stage-I window",
        "steps",
        "t_memorize - t_stage1 (to the end of training if the window never closed); 0 without a window.",
    ),
    "markers_vacuous": (
        "markers vacuous",
        "1",
        "Whether the run has no clean or no flipped training sample, so that its stage markers say nothing.",
    ),
    "best_test_err": (
        "lowest test error",
        "1",
        "The lowest true-label test error over the evaluated steps (at t_best).",
    ),
    "diverged": ("diverged", "1", "Whether the loss became non-finite during training."),
    "diverged_step": (
        "step of divergence",
        "steps",
        "First step with a non-finite loss; missing if the run never diverged.",
    ),
    "flip_rate_realized": (
        "realized flip rate",
        "1",
        "Fraction of training labels actually flipped.",
    ),
    "tau_plus_realized": (
        "realized tau_plus",
        "1",
        "Fraction of the class +1 training labels actually flipped.",
    ),
    "tau_minus_realized": (
        "realized tau_minus",
        "1",
        "Fraction of the class -1 training labels actually flipped.",
    ),
    "sample_loss": (
        "per-sample training loss",
        "1",
        "Logistic loss of each training sample on its observed label, per logged step (NaN on padding).",
    ),
    "sample_margin": (
        "per-sample training margin",
        "1",
        "y_obs f of each training sample, per logged step: positive when its observed label is predicted (NaN on padding).",
    ),
    "sample_flipped": ("flipped sample", "1", "Whether each training sample's label was flipped."),
    "sample_label": (
        "observed training label",
        "1",
        "The label each training sample is trained on (+1 or -1; flipped where sample_flipped).",
    ),
}

COORDINATES: dict[str, Entry] = {
    "seed": (
        "random seed",
        "1",
        "The run's seed: data, initialization and flips are drawn from it.",
    ),
    "step": (
        "gradient-descent step",
        "steps",
        "Training step at which the trajectories are logged.",
    ),
    "sample": (
        "training sample",
        "1",
        "Index of the training sample (padded to the sweep's largest n).",
    ),
    "eta": ("learning rate eta", "1", "Step size of gradient descent."),
    "tau": ("noise rate tau", "1", "Symmetric label-noise rate: tau_plus = tau_minus = tau."),
    "tau_plus": ("noise rate tau_plus", "1", "Probability that a label +1 is flipped to -1."),
    "tau_minus": ("noise rate tau_minus", "1", "Probability that a label -1 is flipped to +1."),
    "mu_norm": ("signal strength ||mu||", "1", "Norm of the signal vector mu."),
    "sigma_p": ("noise scale sigma_p", "1", "Standard deviation of the noise patch's entries."),
    "sigma_0": (
        "initialization scale sigma_0",
        "1",
        "Standard deviation of the initial filter entries.",
    ),
    "relabel_rate": (
        "relabelling rate",
        "1",
        "Per-step flip probability of label-noise gradient descent.",
    ),
    "n_snr2": (
        "n SNR^2",
        "1",
        "n ||mu||^2 / (sigma_p^2 d): the signal-to-noise ratio that decides the stages.",
    ),
    "n": ("training samples n", "1", "Number of training samples."),
    "d": ("dimension d", "1", "Dimension of each patch."),
    "m": ("filters per class m", "1", "Number of filters per output class."),
}


def describe(name: str) -> Entry | None:
    """(long name, units, description) of a results variable or coordinate; None if unknown."""
    for table in (TRAJECTORIES, MARKERS, PER_RUN, COORDINATES):
        if name in table:
            return table[name]
    for marker in sorted(TRANSITION_NAMES, key=len, reverse=True):  # t_cross before t_cross_...
        probe = name.removeprefix(marker + "_")
        if probe != name and probe in PROBES:
            long_name, units, text = PROBES[probe]
            what = text[0].lower() + text[1:]
            return (f"{long_name} at {marker}", units, f"At {marker}: {what}")
    return None


def markdown() -> str:
    """The tables of docs/outputs.md (a test keeps the page equal to this)."""
    parts = []
    for title, table in (
        ("Trajectories (over `step`)", TRAJECTORIES),
        ("Stage markers (steps; missing if never reached)", MARKERS),
        ("Per-run outputs", PER_RUN),
        ("Coordinates", COORDINATES),
    ):
        rows = [
            f"| `{name}` | {long} | {units} | {text} |"
            for name, (long, units, text) in table.items()
        ]
        parts.append(
            f"### {title}\n\n| name | long_name | units | description |\n|---|---|---|---|\n"
            + "\n".join(rows)
        )
    probes = ", ".join(f"`{p}`" for p in PROBES)
    parts.append(
        "### Transition probes\n\n`<marker>_<probe>` is the probe's value at the marker (NaN if the "
        f"marker was never reached), for every marker above and every probe among {probes}; its "
        'attributes read "<probe\'s long name> at <marker>".'
    )
    return "\n\n".join(parts) + "\n"
