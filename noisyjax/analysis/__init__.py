"""Reading results back: seed statistics and fits (statistics), small-loss sample selection
(selection), early-stopping rules (early_stopping), the paper's predictions checked run by run
(predictions), and the figures (plots, theory_plots). Nothing here trains; everything reads an
xarray Dataset of a sweep's results."""

# The names of the former module noisyjax.analysis (now noisyjax.analysis.statistics).
from noisyjax.analysis.statistics import (
    LinearFit,
    exp_decay_fit,
    first_step_below,
    least_squares,
    loglog_fit,
    student_t_quantile,
)

__all__ = [
    "LinearFit",
    "exp_decay_fit",
    "first_step_below",
    "least_squares",
    "loglog_fit",
    "student_t_quantile",
]
