r"""CDSRNP (specification-level reimplementation) + GCA_early on IM-VAE's open-world Phone-Elec.

  python -m orthoalign.main --config=configs/cdsrnp.py --workdir=/tmp/orthoalign/cdsrnp_pe

CDSRNP has no public code: orthoalign implements the specification in reference/cdsrnp.md
(models/cdsrnp/; `model.label` says so in every results row). No parity with the paper's numbers
is claimed. The plain baseline, GCA_stack, and the FiLM adaptive layer:
  --config.gca.positions='()'    --config.gca.positions='(0,1,2)'    --config.model.adapt=film
KL weights as replicas of one compiled program: --config.sweep.model.beta='(0.01,0.1,1.0)'.
A minute-long look on the embedded synthetic data: --config.data.format=synthetic
--config.eval.num_negatives=100 --config.train.max_epochs=3.

Data: ../shared/data/imvae-phone-elec (domain A = Phone, B = Elec; docs/data.md): its test set has
non-overlapped (single-domain) users, which CDSRNP exists for; results are split into overlapped /
non-overlapped and seen / unseen test users (docs/metrics.md). There is no merged timeline, so GCA
cells see the whole other-domain history (models/cdsrnp/). Validation: 10 % of the training
users, seeded (data.reader_options). Evaluation: 999 sampled negatives (the Cao / AMID protocol)
plus the full catalog.

Model keys and their defaults: `Config` in orthoalign/models/cdsrnp/config.py (width 64,
window 20, 2 causal blocks, dropout 0.2, 32 support users, beta 1, full-softmax loss). Training:
Adam lr 1e-3 and batch 128 (C2DSR: lr 1e-3, batch 256, weight decay 5e-4), at most 30 epochs with
patience 5. On a 2-core CPU one epoch takes about 80 s with the full-softmax loss (29k Elec items;
--config.model.loss=sampled is cheaper), 2026-11-30.
"""

import ml_collections

from configs import base


def get_config():
  config = base.get_config(
    "cdsrnp"
  )  # model keys: orthoalign/models/cdsrnp/config.py default_config
  config.data.update(format="imvae", path="../shared/data/imvae-phone-elec")
  config.data.reader_options = ml_collections.ConfigDict(dict(valid_fraction=0.1, valid_seed=0))
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.max_epochs = 30
  config.train.early_stop_patience = 5
  config.eval.num_negatives = 999
  config.eval.batch_size = 256
  config.sweep.seeds = (42,)
  # GCA_early: one position right after the embeddings.
  config.gca.positions = (0,)
  return config
