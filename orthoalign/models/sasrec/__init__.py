"""SASRec, the single-domain floor of CDSR papers, per domain ("dual") or on the merged timeline.

Faithful to the PyTorch port pmixer/SASRec.pytorch at 72ba89d (2021-06-09, `model.py` and
`main.py`; Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018): the block of
layers.SASRecBlock, which LLM4CDSR's and CDSRNP's encoders here use too:
  * inputs E[item] * sqrt(d) + P[slot], slot = 0..L-1 of the left-padded window (padding slots
    included, `model.positions="slot"`), embedding dropout, then padding tokens zeroed;
  * `model.blocks` blocks Q = LN(x); x = Q + MHA(Q, x, x) (causal mask, no key-padding mask);
    x = FFN(LN(x)) with FFN(h) = h + conv(ReLU(conv(h))) (1x1 convolutions, dropout after each);
    x *= valid; a last LayerNorm (eps 1e-8 everywhere);
  * training: at every position with a next item, BCE with logits on <f_t, E[pos_t]> (label 1) and
    on <f_t, E[neg_t]> (label 0), one negative per position drawn uniformly from the catalogue
    outside the user's items, each term a mean over those positions; plus `model.l2_emb` times
    the Frobenius norm (not its square) of the item table;
  * scores: <f_last, E[item]>, the item table tied to the input;
  * initialisation: xavier_normal_ on every >= 2-D parameter (the item and position tables, the
    attention in-projection and out-projection, the 1x1 convolutions), torch's defaults for the
    rest (LayerNorm 1/0, attention biases 0, convolution biases U(+-1/sqrt(d))).

`model.streams`:
  * "dual": one such SASRec per domain, nothing shared, each over its own domain's window
    (inputs/domain_windows.py) with its own item table (local ids). A GCA cell between the two
    streams is then the only path for cross-domain information: cells gca<p>_A (the A stream
    queries B) and gca<p>_B at p = 0 (after the embeddings) and p = i (after block i), under the
    causal mask in merged time. Loss = loss_A + loss_B. A case of domain D is scored by D's
    stream at its last position.
  * "mixed": one SASRec over the merged timeline (inputs/windows.py) with one table of both domains'
    items (global ids); negatives from the whole catalogue. No second stream, so no GCA cell.

Flags whose defaults reproduce 72ba89d: `model.positions` ("slot"; "item" = orthoalign's own
per-item index 1..n, 1 = the oldest item kept, 0 on padding, as inputs/domain_windows.py gives it;
pmixer's later code gives a valid slot its slot index + 1 instead, which agrees with "item" only
on a full window), `model.pre_ln` (False;
True = the textbook pre-LN block, pmixer's later `--norm_first`).

Deviations, named:
  * Windows: a dual stream's window holds the last `max_len` items of the domain including the
    last one (whose target is "none"), so it trains max_len - 1 positions where pmixer trains
    max_len once a history is longer than the window; the merged window is pmixer's.
  * pmixer never zeroes the item table's row 0 at 72ba89d (`padding_idx=0` only freezes it); it
    reaches no score or loss there or here, so here it is whatever the initialiser drew.
  * Optimiser: the trainer's Adam(W) with betas (0.9, 0.999); pmixer uses Adam(lr 1e-3, betas
    (0.9, 0.98)). Evaluation: the trainer's protocols, not pmixer's 100 popularity-free negatives.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import domain_windows
from orthoalign.inputs import windows
from orthoalign.models import baseline
from orthoalign.models.sasrec import config as config_lib
from orthoalign.models.sasrec.config import Config
from orthoalign.models.sasrec.loss import Hyper
from orthoalign.models.sasrec.loss import eval_fn
from orthoalign.models.sasrec.loss import loss_fn
from orthoalign.models.sasrec.module import SASRec

__all__ = ["Baseline", "Config"]

Array = jax.Array


class Baseline(baseline.Baseline):
  """SASRec bound to a dataset: per-domain or merged windows, one item table per stream.

  Raises (on construction):
    ConfigError: model.streams="mixed" on data without a merged timeline.
  """

  TITLE = "SASRec"
  Config = Config
  LABEL = config_lib.LABEL

  check = staticmethod(config_lib.validate)

  def __init__(self, ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict):
    super().__init__(ds, config)
    cfg = self.settings
    self.dual = cfg.streams == "dual"
    if not self.dual:
      baseline.require_merged_timeline(
        ds, config, "model.streams='mixed' reads the merged sequence"
      )
    gca = baseline.gca_settings(config)
    self.module = SASRec(ds.num_items_a, ds.num_items_b, cfg, gca.positions, gca.cell)
    self.hp = Hyper(config=cfg, num_items_a=ds.num_items_a, num_items_b=ds.num_items_b)

  def train_windows(self) -> dict[str, np.ndarray]:
    if self.dual:
      return domain_windows.train_windows(self.ds, self.settings.max_len)
    full = windows.train_windows(self.ds, self.settings.max_len)
    return {k: full[k] for k in ("seq", "pos", "positions", "hist", "user")}

  def eval_windows(self, split: splits.EvalSplit) -> dict[str, np.ndarray]:
    module = domain_windows if self.dual else windows
    return module.eval_windows(self.ds, split, self.settings.max_len)

  def loss(self, params, frozen, batch, rng, hparams=None):
    return loss_fn(self.module, self.hp, params, frozen, batch, rng, hparams)

  def tables(self, params: Any, frozen: Any) -> Array:
    del frozen
    if self.dual:  # concatenated once per evaluation, not per batch of scores (train.item_shards)
      return jnp.concatenate([params["item_emb_a"], params["item_emb_b"][1:]])
    return params["item_emb_m"]

  def score(self, params, frozen, tables, batch):
    return eval_fn(self.module, self.hp, params, frozen, tables, batch)
