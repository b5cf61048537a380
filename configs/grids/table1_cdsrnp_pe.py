r"""Table 1, CDSRNP (specification-level), IM-VAE's Phone-Elec: plain / GCA_early / GCA_stack x 5.

  python -m orthoalign.grid --grid=configs/grids/table1_cdsrnp_pe.py --root=runs/table1_cdsrnp_pe
  python -m orthoalign.analysis.report --grid=runs/table1_cdsrnp_pe \
      --out=docs/results/table1_cdsrnp_pe

configs/cdsrnp.py (full-softmax loss, 999 sampled evaluation negatives, at most 30 epochs) with
GCA_early = GCA[0] and GCA_stack = GCA[0,1,2]; seeds 42, 0, 1, 2, 3 as replicas (3 programs, 15
runs). Every metric is also reported for overlapped / non-overlapped and seen / unseen test users.
A GPU job (about 80 s per epoch and replica on a 2-core CPU). The reduced CPU version committed in
docs/results/cdsrnp/ ran with
  --set=model.loss=sampled --set=train.max_epochs=6 --only=... (see that README).
"""

from configs import cdsrnp
from orthoalign.experiments.expand import Grid


def get_config():
  return cdsrnp.get_config()


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
