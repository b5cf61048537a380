r"""Table 1 on synthetic data, with and without a planted cross-domain signal (LLM4CDSR).

  python -m orthoalign.grid --grid=configs/grids/synthetic_table1_llm4cdsr.py \
      --root=runs/synthetic_table1_llm4cdsr
  python -m orthoalign.analysis.report --grid=runs/synthetic_table1_llm4cdsr \
      --out=docs/results/synthetic/table1_llm4cdsr

Plain LLM4CDSR / + GCA_early (GCA[0]) / + GCA_stack (GCA[0,1,2]) x cross-domain strength lambda
(data.synthetic.cross_strength: 0 = the domains are independent, 1 = the default planted signal) =
6 programs, each with 5 seeds as replicas (30 runs). GCA unit: the bare cross-attention cell
(gca.ffn = 0), sigmoid scalar gate initialised at 0 (alpha = 0.5). Sizes:
configs/synthetic_small.py.
"""

from configs import synthetic_small
from orthoalign.experiments.expand import Grid


def get_config():
  config = synthetic_small.get_config()
  config.eval.track_test = True  # per-epoch test metrics in history.jsonl (trajectories)
  return config


def get_grid():
  return Grid(
    blocks=[
      {
        "data.synthetic.cross_strength": {"0": 0.0, "1": 1.0},
        "gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)},
        "seed": (0, 1, 2, 3, 4),
      }
    ],
    names={"data.synthetic.cross_strength": "lambda", "gca.positions": "gca"},
  )
