r"""REDUCED Table 1 for CDSRNP on Phone-Elec, sized for a 2-core CPU (about 30 minutes).

  python -m orthoalign.grid --grid=configs/grids/table1_cdsrnp_pe_cpu.py \
      --root=runs/table1_cdsrnp_pe_cpu
  python -m orthoalign.analysis.report --grid=runs/table1_cdsrnp_pe_cpu \
      --out=docs/results/cdsrnp/table1_cdsrnp_pe_cpu

configs/grids/table1_cdsrnp_pe.py reduced: 3 seeds (42, 0, 1) instead of 5, at most 6 epochs
instead of 30, and the sampled-softmax loss (100 negatives) instead of the full softmax over the
29k Elec items. A smoke-scale result, not the experiment: read it as such.
"""

from configs.grids import table1_cdsrnp_pe
from orthoalign.experiments.expand import Grid


def get_config():
  config = table1_cdsrnp_pe.get_config()
  config.model.loss = "sampled"
  config.train.max_epochs = 6
  return config


def get_grid():
  return Grid(
    blocks=[
      {
        "gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)},
        "seed": (42, 0, 1),
      }
    ],
    names={"gca.positions": "gca"},
  )
