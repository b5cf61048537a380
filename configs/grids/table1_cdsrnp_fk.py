r"""Table 1, CDSRNP (specification-level), LLMCDSR's Food-Kitchen: plain/GCA_early/GCA_stack x 5.

  python -m orthoalign.grid --grid=configs/grids/table1_cdsrnp_fk.py --root=runs/table1_cdsrnp_fk
  python -m orthoalign.analysis.report --grid=runs/table1_cdsrnp_fk \
      --out=docs/results/table1_cdsrnp_fk

configs/cdsrnp.py on ../shared/data/llmcdsr-food-kitchen (a merged timeline, so GCA cells use the
causal cross-mask; A-only and B-only users in training, but every validation and test user is
overlapped: the non-overlapped rows of the report stay empty), 100 sampled evaluation negatives as
LLMCDSR's protocol; GCA_early = GCA[0], GCA_stack = GCA[0,1,2]; seeds 42, 0, 1, 2, 3 as replicas.
A GPU job.
"""

import ml_collections

from configs import cdsrnp
from orthoalign.experiments.expand import Grid


def get_config():
  config = cdsrnp.get_config()
  config.data.update(format="llmcdsr", path="../shared/data/llmcdsr-food-kitchen")
  config.data.reader_options = ml_collections.ConfigDict()
  config.eval.num_negatives = 100
  return config


def get_grid():
  return Grid(
    blocks=[
      {
        "gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)},
        "seed": (42, 0, 1, 2, 3),
      }
    ],
    names={"gca.positions": "gca"},
  )
