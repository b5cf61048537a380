r"""LLM4CDSR on LLMCDSR's Food-Kitchen files with the upstream schedule (plain baseline).

  python -m orthoalign.main --config=configs/llm4cdsr_fk.py --workdir=/tmp/orthoalign/llm4cdsr_fk

Data: ../shared/data/llmcdsr-food-kitchen (user-level split; item titles -> TF-IDF + SVD text
tables, the light substitute for the authors' LLM embeddings; `data.text_emb=minilm` with the
`text` extra). Upstream settings (reference/baselines.md §2.4): max_len 200, at most 200 epochs,
early-stopping patience 20, hidden 128, 2 blocks, 1 head, dropout 0.5, Adam lr 1e-3, batch 128,
100 sampled negatives, alpha = beta = 0.1 (upstream's defaults; it gives no Food-Kitchen values),
alpha items from the prefix without its last item (model.reg_pool="inputs"), items without a title
with their own trainable rows (model.missing_text="learned"; orthoalign/models/llm4cdsr/).
A GPU job: on a 2-core CPU one epoch takes hours (README.md "Real data").
"""

from configs import llm4cdsr


def get_config():
  config = llm4cdsr.get_config()
  config.data.update(format="llmcdsr", path="../shared/data/llmcdsr-food-kitchen", text_emb="tfidf")
  config.model.update(max_len=200, width=128, blocks=2, heads=1, dropout=0.5)
  config.train.update(
    max_epochs=200, early_stop_patience=20, learning_rate=1e-3, batch_size=128, checkpoint_every=1
  )  # epochs are long here: lose none on an interrupt
  config.gca.positions = ()
  return config
