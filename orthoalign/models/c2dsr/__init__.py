"""C2DSR (Cao et al., CIKM 2022, "Contrastive Cross-Domain Sequential Recommendation").

Reproduces `cjx96/C2DSR` at f23f18a (C2DSR_src/model/C2DSR.py, model/GNN.py, model/trainer.py,
utils/GraphMaker.py, utils/loader.py, train_rec.py defaults). Three item tables (merged, A, B),
each passed through a graph convolution: the merged table over the graph of consecutive items of
the training sequences, the A and B tables over the graph of consecutive same-domain items (both
over one `adj_single`); each convolution averages its input and its layers' outputs, a layer being
`adj @ dropout(h) + bias`. Three SASRec encoders of the pmixer kind (layers.SASRecBlock: causal,
no key-padding mask, residual on the normalised query, LayerNorm eps 1e-8) read
`(conv[item] + table[item]) * sqrt(d) + position` over the merged window and the in-place A and B
windows (the other domain's slots padding). Training (`train_batch`): over the last 10 slots,
cross-entropy of lin_X(h_m) and lin_Y(h_m) against the next item ("share"), of lin_X(h_m + h_a)
against the next A item and lin_Y(h_m + h_b) against the next B item ("own"), each with a lin_PAD
logit appended and averaged over all B x 10 slots with the untargeted ones as 0; plus the
infomax: bilinear discriminators D_X(mean h_a, mean h_m) against D_X(mean h_a, the merged encoder
on the sequence whose A items are replaced by random A items), likewise D_Y, BCE with logits;
loss = 0.7 (the four cross-entropies) + 0.3 (the two infomax terms). Scores: lin_X(h_m[last] +
h_a[last A slot]) over the A items (likewise B).

Reproduced details: the loader's training rows (inputs.py): a row without an A or a B target is
skipped; the last item of the domain other than the final target's is dropped from its domain's
window (it is still the target of the item before it); positions count forwards per window; the
merged graph and the single-domain graph count repeated transitions (GraphMaker's duplicate test
reads a `real_adj` that is never filled); torch initialisations (item and position tables N(0,1)
with zero padding rows that get no gradient, the blocks' torch defaults, graph biases and weights
U(+-1/sqrt(d)), discriminators xavier_uniform_ and zero bias); the graph convolution's dropout on
the whole table; evaluation's slot of a domain's last item falls back to the last slot (index -1)
when the window has none.

Quirks of the original, flags whose defaults reproduce it (config.py):
  * `gcn_weight="unused"`: GraphConvolution creates its `weight` (counted in the parameters) and
    never applies it: the convolution is `adj @ x + bias`. "applied": `adj @ (x @ weight) + bias`.
  * `final_b0_off_by_one=True`: the loader tests a B final target with `> source_item_num`, so a
    sequence ending in B item 0 gives neither domain encoder its final target and drops both
    domains' last items.
  * `corruption="fixed"`: the corrupted sequences are drawn once, when the data is read, and reused
    every epoch; "per_step" draws them on device at every step.

Deviations (named):
  * Windows: a sequence longer than the window keeps its most recent max_len items (training) or
    max_len - 1 (evaluation history); the original's data never are longer and its loader would
    fail on them (positions past the table). On leave-one-out data the graphs are built from each
    user's train part (all but the last two items), the original's from its training file.
  * The last partial training batch is padded and masked; the original fills it with the epoch's
    first rows. Rows are reshuffled every epoch by the trainer (the original shuffles once).
  * Optimiser: the trainer's Adam with betas (0.9, 0.999); upstream's Adam has betas (0.9, 0.98)
    (lr 1e-3, no weight decay passed, no gradient clipping, as configs/c2dsr.py).
  * Evaluation candidates are orthoalign's frozen sets (999 items of the target's domain that the
    history does not hold, `eval.num_negatives`) instead of 999 drawn with replacement at load time
    that may repeat and include history items; ties count by `eval.ties` (upstream counts a
    negative only when it beats the target by more than 1e-5). Best epochs are chosen per run by
    `train.select_metric` (upstream reports, per domain, the test metrics at that domain's best
    validation MRR).

GCA (not in the original): cells `gca<p>_A` / `gca<p>_B` update the A and B encoders at p = 0
(after the embedding) or p = i (after block i), querying the other domain's encoder
(`gca.kv="other"`) or the merged encoder ("mixed") under a causal mask on merged time; the
corrupted-sequence pass of the merged encoder has no cell.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.models import baseline
from orthoalign.models.c2dsr import config as config_lib
from orthoalign.models.c2dsr import inputs
from orthoalign.models.c2dsr.config import Config
from orthoalign.models.c2dsr.loss import eval_fn
from orthoalign.models.c2dsr.loss import loss_fn
from orthoalign.models.c2dsr.loss import tables
from orthoalign.models.c2dsr.module import C2DSR

__all__ = ["Baseline", "Config"]


class Baseline(baseline.Baseline):
  """C2DSR bound to a dataset: its training rows, item graphs and windows.

  Raises (on construction):
    ConfigError: data without a merged timeline.
    DataError: data with no training sequence the loader keeps.
  """

  TITLE = "C2DSR"
  Config = Config
  GCA_KV = config_lib.GCA_KV
  REPLICA_HPARAMS = config_lib.REPLICA_HPARAMS

  check = staticmethod(config_lib.validate)

  def __init__(self, ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict):
    super().__init__(ds, config)
    cfg = self.settings
    baseline.require_merged_timeline(ds, config, "its windows interleave both domains")
    _, sequences = inputs.train_sequences(ds)
    merged, single = inputs.item_graphs(sequences, ds.num_items_a)
    gca = baseline.gca_settings(config)
    self.module = C2DSR(
      ds.num_items_a,
      ds.num_items_b,
      cfg,
      {"merged": merged, "single": single},
      gca.positions,
      gca.kv,
      gca.cell,
    )
    self._train = inputs.train_windows(ds, cfg.max_len, cfg.corrupt_seed, cfg.final_b0_off_by_one)
    if not len(self._train["user"]):
      raise errors.DataError(
        "no training sequence has a next item in both domains, so C2DSR has no row to train on "
        "(the original's loader skips such rows); expected sequences with items of both domains",
        key=f"dataset {ds.name!r} (data.path={config.data.path!r})",
      )
    self.notes = (
      f"C2DSR: {len(self._train['user'])} of {len(sequences)} training sequences have a target in "
      f"both domains (the others are skipped, as the original's loader); item graphs of "
      f"{len(merged.rows)} merged and {len(single.rows)} same-domain transitions",
    )
    if gca.positions:
      y = "the other domain's encoder" if gca.kv == "other" else "the merged encoder"
      self.notes += (f"GCA cells gca<p>_A / gca<p>_B: X = the A / B encoder; Y = {y}",)

  def train_windows(self) -> dict[str, np.ndarray]:
    return self._train

  def eval_windows(self, split: splits.EvalSplit) -> dict[str, np.ndarray]:
    return inputs.eval_windows(self.ds, split, self.settings.max_len)

  def loss(self, params, frozen, batch, rng, hparams=None):
    return loss_fn(self.module, params, frozen, batch, rng, hparams)

  def tables(self, params, frozen):
    return tables(self.module, params, frozen)

  def score(self, params, frozen, tables, batch):
    return eval_fn(self.module, params, frozen, tables, batch)
