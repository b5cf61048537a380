r"""Table 1 for LLM4CDSR on ABXI's Food-Kitchen files (abxi-afk, ID embeddings) x 5 seeds.

  python -m orthoalign.grid --grid=configs/grids/table1_llm4cdsr_afk.py \
      --root=runs/table1_llm4cdsr_afk
  python -m orthoalign.analysis.report --grid=runs/table1_llm4cdsr_afk \
      --out=docs/results/table1_llm4cdsr_afk

abxi-afk has no item text, so LLM4CDSR runs "w/o LLM" (trainable ID embeddings; the user-guidance
loss needs text and is off); add `--set data.titles=...` with LLMCDSR's title files for text
tables (docs/data.md). configs/llm4cdsr_afk.py (the upstream schedule: max_len 200, 200 epochs,
patience 20), with ABXI's evaluation protocol (999 sampled negatives) so the numbers sit beside
ABXI's.
GCA_early = GCA[0], GCA_stack = GCA[0,1,2]; GCA unit: bare cross-attention (gca.ffn = 0).
"""

from configs import llm4cdsr_afk
from orthoalign.experiments.expand import Grid


def get_config():
  config = llm4cdsr_afk.get_config()
  config.eval.num_negatives = 999
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
