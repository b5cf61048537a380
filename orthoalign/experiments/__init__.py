"""Experiment grids: expand a grid file into runs, train them locally or on SLURM, collect results.

Modules: expand (grid files -> points), commands (a point's training command), job (one training
attempt: lock, log, child), local (process pool), slurm (submitit job arrays), status (state on disk
and results as a DataFrame). The command line is orthoalign.grid.
"""
