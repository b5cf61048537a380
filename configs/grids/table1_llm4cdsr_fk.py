r"""Table 1 for LLM4CDSR on LLMCDSR's Food-Kitchen: plain / + GCA_early / + GCA_stack x 5 seeds.

  python -m orthoalign.grid --grid=configs/grids/table1_llm4cdsr_fk.py \
      --root=runs/table1_llm4cdsr_fk
  python -m orthoalign.analysis.report --grid=runs/table1_llm4cdsr_fk \
      --out=docs/results/table1_llm4cdsr_fk

configs/llm4cdsr_fk.py (upstream schedule, TF-IDF text tables) with GCA_early = GCA[0] and
GCA_stack = GCA[0,1,2]; seeds 42, 0, 1, 2, 3 as replicas (15 runs). GCA unit: the bare
cross-attention cell (gca.ffn = 0; 0.13M parameters per position at d = 128). A GPU job.
"""

from configs import llm4cdsr_fk
from orthoalign.experiments.expand import Grid


def get_config():
  return llm4cdsr_fk.get_config()


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
