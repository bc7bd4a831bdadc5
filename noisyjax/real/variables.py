# ruff: noqa: E501  (a table of one-sentence descriptions)
"""What every variable and coordinate of a real-image sweep's results.nc means. The stage
markers, their probes and the shared trajectories have the synthetic sweeps' names and meanings
(`noisyjax.synthetic.variables`), counted in epochs instead of steps."""

from __future__ import annotations

from noisyjax.synthetic import variables as synthetic

Entry = synthetic.Entry

OWN: dict[str, Entry] = {
    "epoch": (
        "epoch",
        "epochs",
        "Training epoch at which the trajectories are logged (0: before training).",
    ),
    "test_acc": ("test accuracy", "1", "Fraction of test images classified with their true label."),
    "test_err": ("test error", "1", "Fraction of test images misclassified (true labels)."),
    "train_loss_median": (
        "median training loss",
        "1",
        "Median cross-entropy loss over the training images, observed labels.",
    ),
    "train_loss_clean_median": (
        "median clean training loss",
        "1",
        "Median loss over the clean training images.",
    ),
    "train_loss_noisy_median": (
        "median flipped training loss",
        "1",
        "Median loss over the flipped training images, on their observed labels.",
    ),
    "sample_loss_final": (
        "per-image final training loss",
        "1",
        "Loss of each training image on its observed label after the last epoch.",
    ),
    "lr": ("learning rate", "1", "Initial learning rate of SGD with momentum."),
    "weight_decay": ("weight decay", "1", "L2 coefficient added to the gradient."),
    "tau_plus": (
        "noise rate tau_plus",
        "1",
        "Probability that a label of the first class is flipped.",
    ),
    "tau_minus": (
        "noise rate tau_minus",
        "1",
        "Probability that a label of the second class is flipped.",
    ),
    "sample": ("training image", "1", "Index of the training image."),
    "diverged": ("diverged", "1", "Whether the loss became non-finite during training."),
}


def describe(name: str) -> Entry | None:
    """(long name, units, description) of a results variable or coordinate; None if unknown."""
    if name in OWN:
        return OWN[name]
    found = synthetic.describe(name)
    if found is None:
        return None
    long_name, units, text = found
    text = text.replace("steps", "epochs").replace("step", "epoch")
    return long_name.replace("step", "epoch"), "epochs" if units == "steps" else units, text
