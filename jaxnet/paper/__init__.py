"""`jaxnet reproduce`: the desynchronous-learning paper's three claims, rerun from one command.

Wycoff, Dillavou, Stern, Liu & Durian, "Desynchronous learning in a physics-driven learning
network", J. Chem. Phys. 156, 144903 (2022). Each claim is one or two sweeps whose configs ship
in `jaxnet/configs/reproduce/` (at paper scale, `full`); `SCALES` shrinks them for `quick` (a
2-core CPU in minutes) and `smoke` (seconds: checks the pipeline, its numbers mean nothing).
Everything runs on the sweep engine, so an interrupted reproduction resumes where it stopped.
The analysis reads the sweeps' tables, writes the figures, `claims.json` (every number the
report quotes, with the configuration it came from) and `report.md`.

Modules: `reproduction` (the claims' configs and scales, `reproduce`: runs the sweeps, hands
their tables on, writes the files), `analysis` (the numbers, from the tables), `figures` (the
plots), `report` (the prose of `report.md`, from the numbers), `words` (the one rule that
says "lower", "the same" or "higher") and `differences` (where simulation and paper differ,
from the configs that ran).
"""

from .reproduction import (
    CLAIMS as CLAIMS,
    PAPER as PAPER,
    SCALES as SCALES,
    TRAJECTORIES as TRAJECTORIES,
    analyze_cl_vs_gd as analyze_cl_vs_gd,
    analyze_claim1 as analyze_claim1,
    analyze_claim2 as analyze_claim2,
    analyze_claim3 as analyze_claim3,
    config_path as config_path,
    reproduce as reproduce,
)
