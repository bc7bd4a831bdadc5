"""`python -m noisyjax`: the same command as `python -m sweeps.grid` (and `noisyjax`)."""

from sweeps.grid import console

if __name__ == "__main__":
    console()
