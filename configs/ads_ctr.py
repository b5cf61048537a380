r"""Click prediction on the embedded ads scenario: a sparse ads domain (2 % clicks) helped by a
dwell-time and a likes domain, with one GCA cell per source into the ads stream.

  python -m orthoalign.main --config=configs/ads_ctr.py --workdir=runs/ads_ctr

Trains the click model (orthoalign/ctr/model.py) on 3,000 users' logs of 30 days
(datasets/ads_synthetic.py; docs/data.md), validates on the log's days 25-27 and tests on its
last 3 days, and prints logloss, AUC, GAUC and PCOC (predicted / observed click rate) for all
test impressions and for cold ones (no earlier click) and warm ones, and each cell's |cos(X,
X')|, |cos(X, Y)| and gate. Variants:
  --config.gca.positions='()'                 the plain multi-domain tower (no cell)
  --config.ctr.sources='("posts",)'            one source; '()' for the ads history alone
  --config.sweep.seeds='(0,1,2,3,4)'            five seeds as replicas of one program
  --config.ctr.downsample=0.2                  keep 20 % of the non-clicks in training
  --config.data.ads.cross_strength=0.0         no planted cross-domain preference
"""

from orthoalign.ctr import config as ctr_config


def get_config():
  config = ctr_config.default_config()
  config.ctr.source_len = 20
  config.model.dropout = 0.2
  config.train.update(max_epochs=8, early_stop_patience=2, batch_size=512, learning_rate=3e-3)
  return config
