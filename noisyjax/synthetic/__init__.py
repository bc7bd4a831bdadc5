"""The synthetic experiment: a two-layer ReLU CNN trained on signal-plus-noise data with flipped
labels (docs/science.md), run by the sweep engine through `noisyjax.synthetic.experiment`."""
