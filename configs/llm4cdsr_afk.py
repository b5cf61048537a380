r"""LLM4CDSR on ABXI's Food-Kitchen files (abxi-afk) with the upstream schedule (plain baseline).

  python -m orthoalign.main --config=configs/llm4cdsr_afk.py --workdir=runs/llm4cdsr_afk

Data: ../shared/data/abxi-afk (7,144 users, 11,837 Food + 16,258 Kitchen items, leave-one-out on
the merged timeline). The files carry no item text, so by default the model runs "w/o LLM":
trainable ID embeddings on all three streams, and the user-guidance (beta) loss, which needs text,
is off. With LLMCDSR's titles attached the frozen text tables come back:
  --config.data.titles='("../shared/data/llmcdsr-food-kitchen/text_A.json",
                         "../shared/data/llmcdsr-food-kitchen/text_B.json")'
                         --config.data.text_emb=tfidf
Those titles cover about 64% of the Food and 97% of the Kitchen items; `model.missing_text`
(default "learned") gives every item without one its own trainable row
(orthoalign/models/llm4cdsr/).

Upstream settings (reference/baselines.md §2.4), as configs/llm4cdsr_fk.py: max_len 200, at most
200 epochs, early-stopping patience 20, hidden 128, 2 blocks, 1 head, dropout 0.5, Adam lr 1e-3,
batch 128, 100 sampled negatives, alpha = beta = 0.1 (upstream gives no Food-Kitchen values; 0.1 /
0.1 is its Amazon Cloth-Sport script, the Amazon pair closest to this one). Plain baseline: no GCA
(add --config.gca.positions='(0,)' for GCA_early). Cost: README.md "Real data".
"""

from configs import llm4cdsr_fk


def get_config():
  config = llm4cdsr_fk.get_config()  # the upstream schedule and model settings
  config.data.update(format="abxi", path="../shared/data/abxi-afk", text_emb="none")
  return config
