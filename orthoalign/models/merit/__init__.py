"""MERIT (Bian et al., ACM MM 2025, "Multi-Domain Enhancement via Residual Interwoven Transfer").

Reproduces `DiMarzioBian/MERIT` at 932ebee5d6aa06e1121687c36974a86bab7bccef (models/MERIT.py,
models/attention.py, models/ffn.py, models/utils/*, models/data/dataloader.py and evaluation.py,
trainer.py, main.py; settings of demo.sh). ABXI's successor by the same author, on the same data
and protocol. One item table `ei` (inputs and output scores) and a position table `ep`; three
streams over the left-padded merged window: the merged stream M and in-place A and B streams (the
window with the other domain's slots zeroed). Each gets its own causal self-attention block
LN(h + Dropout(MHA(h))) * mask and a 3-output MoE-FFN (a shared and three own SwiGLU experts, a
2-way softmax gate per output) that emits the stream itself and a transfer stream to each other
stream. Then residual cross-attention with the gate fixed at 1, LN(X + Dropout(MHA(q=X, k=v=Y))):
the A stream attends to [M->A ; B->A] (`CrossAttention2`), B to [M->B ; A->B], M to A->M + B->M
(`CrossAttention`), each followed by a SwiGLU FeedForward. Training: InfoNCE (temperature 0.75)
at every position, the merged loss of h_M against the next item (128 A + 128 B negatives) plus the
domain loss of h_A + h_B + stop_gradient(h_M) against the next item of the input's domain (128
negatives of the target's domain); each loss is loss_A + loss_B, per-sequence means over positions.
Evaluation: score = <h_M(last) + h_stream(slot), e_item> with the stream per `model.eval_stream`.

Reproduced details: no key-padding mask (padding slots are zero vectors whose keys and values are
the in-projection bias); no attention-probability dropout; dropout sampled separately on every
branch; LayerNorm eps 1e-5; the padding row ep[0] gets no gradient (torch's padding_idx), though
under the original positions it is the A stream's only position feature; initialisation (Linear
N(0, 0.02), zero bias, also the attention out-projection and the gates; in-projection
xavier-uniform, zero bias; embeddings trunc-normal(0, 0.02, +-0.04) including the padding rows;
LayerNorm 1/0); positions count backwards (most recent = 1). `--n_attn` is parsed by the original
but never read (one block per stream), so there is no `blocks` key; `drop_emb` is defined, unused.

Quirks of the original, flags whose defaults reproduce it (config.py):
  * `positions="rotated"`: the original's masks are named against its id ranges (`mask_a` holds
    the B items) and its position indices rotate between the streams: M is indexed by the A-item
    positions (B tokens get ep[0]), the A stream by the B-item positions (0 at every A token, so
    ep[0]) and the B stream by the merged positions. "own" gives each stream its own.
  * `ecaf_mask="top_left"`: `CrossAttention2` builds a [L, 3L] mask for 2L keys; torch drops a mask
    passed with `is_causal=True` when no key-padding mask and no weights are asked for (checked with
    torch 2.13; the original pins 2.2.1, where the mismatched mask would otherwise raise, so its
    runs took this path too), and scaled_dot_product_attention's causal mask is top-left, so
    query t sees slots 0..t of the first key/value block only: the other domain's transfer (B->A,
    A->B) is never attended, and the experts that produce it get no gradient. "per_block" lets
    query t see slots 0..t of both blocks.
  * `eval_stream="swapped"`: `cal_rank` adds the original's `h_a` for an A target, read at the slot
    of the last A item; that `h_a` holds the B items and is masked to zero there, so an A target
    is scored by h_M alone (likewise B) unless the window has no item of the target's domain.
    "own" reads the target domain's stream at its last item.
  * `neg_b_off_by_one=True`: `idx_all_b = arange(n_item_a, n_item + 1)` lets the last A item (id nA)
    be drawn as a B negative (training, as ABXI v2).

Deviations (named):
  * Training negatives are drawn on device (`negatives.sample_distinct_excluding`), per position
    as the original (fresh draws at every non-pad position, the merged and the domain loss drawing
    independently); all draws avoid the whole train-part history (the original's B pool avoids
    only its B items, so id nA can be drawn there even when seen).
  * Evaluation candidates are orthoalign's frozen sets (999 of the target's domain minus the
    history) instead of a fresh draw at every evaluation.
  * A sequence with no position of a domain adds 0 to that domain's loss (the original divides by
    zero: `cal_norm_mask` gives NaN); rows with < 2 training items are not trained on.
  * Ranks count ties against the target (the original in its favour; negligible for float
    scores); best-epoch selection is strict (`>`), the original's `>=`.

GCA (not in the original): cells `gca<p>_A` / `gca<p>_B` at p = 0 (after the embedding) or 1
(after the self-attention blocks) update the A and B streams, querying the other domain's stream
(`gca.kv="other"`) or the merged stream ("mixed") under a causal mask on merged time. MERIT's own
cross-attentions report the same alignment statistics (X = the query stream, X' = the attention
output before the gate) as cells `ecaf_A`, `ecaf_B` and `caf_M` (module.NATIVE_CELLS names each Y);
`model.caf_gate="learned"` replaces their fixed gate 1 by gca.gate / gca.act / gca.gate_init.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.models import baseline
from orthoalign.models.infonce import catalog_scoring
from orthoalign.models.merit import config as config_lib
from orthoalign.models.merit import inputs
from orthoalign.models.merit.config import Config
from orthoalign.models.merit.loss import Hyper
from orthoalign.models.merit.loss import eval_fn
from orthoalign.models.merit.loss import loss_fn
from orthoalign.models.merit.module import MERIT
from orthoalign.models.merit.module import NATIVE_CELLS

__all__ = ["Baseline", "Config"]


class Baseline(baseline.Baseline):
  """MERIT bound to a dataset: its merged windows, one item table `ei`.

  Raises (on construction):
    ConfigError: data without a merged timeline, or a model.n_neg that some user's history leaves
      too few items of a domain for.
  """

  TITLE = "MERIT"
  Config = Config
  GCA_KV = config_lib.GCA_KV
  REPLICA_HPARAMS = config_lib.REPLICA_HPARAMS
  EVAL_SETTINGS = ("eval_stream",)
  NATIVE_CELLS = tuple(NATIVE_CELLS)

  check = staticmethod(config_lib.validate)

  @staticmethod
  def learned_gates(config: ml_collections.ConfigDict) -> bool:
    return bool(tuple(config.gca.positions)) or config.model.caf_gate == "learned"

  def __init__(self, ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict):
    super().__init__(ds, config)
    cfg = self.settings
    baseline.require_merged_timeline(ds, config, "its streams are the merged window")
    gca = baseline.gca_settings(config)
    gate = None
    if cfg.caf_gate == "learned":
      gate = {k: gca.cell[k] for k in ("gate", "act", "gate_init")}
    self.module = MERIT(
      ds.num_items_a, ds.num_items_b, cfg, gca.positions, gca.kv, gca.cell, caf_gate=gate
    )
    self.hp = Hyper(cfg, ds.num_items_a, ds.num_items_b, catalog_scoring(cfg.neg_scoring))
    self._train = inputs.train_windows(ds, cfg.len_max)
    self.hp.check_pools(self._train["hist"], "MERIT")
    seen = "" if cfg.ecaf_mask == "per_block" else ", of which only the first block is attended"
    cells = "; ".join(
      f"{k} ({v}{seen if k.startswith('ecaf') else ''})" for k, v in NATIVE_CELLS.items()
    )
    self.notes = (f"MERIT's own cross-attentions report the alignment statistics as cells {cells}",)
    if gca.positions:
      y = "the other domain's stream" if gca.kv == "other" else "the merged stream"
      self.notes += (f"GCA cells gca<p>_A / gca<p>_B: X = the A / B stream; Y = {y}",)

  def train_windows(self) -> dict[str, np.ndarray]:
    return self._train

  def eval_windows(self, split: splits.EvalSplit) -> dict[str, np.ndarray]:
    return inputs.eval_windows(self.ds, split, self.settings.len_max)

  def loss(self, params, frozen, batch, rng, hparams=None):
    return loss_fn(self.module, self.hp, params, frozen, batch, rng, hparams)

  def tables(self, params, frozen):
    del frozen
    return params["ei"]

  def score(self, params, frozen, tables, batch):
    return eval_fn(self.module, params, frozen, tables, batch)
