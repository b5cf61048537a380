"""ABXI (Bian et al., WWW 2025) in Flax Linen, with GCA insertion points.

Reproduces the authors' v2 code as of v2.1 (`DiMarzioBian/ABXI`, commit 72e52c9; the versions read
are `models/ABXI.py`, `main.py` and `models/data/dataloader.py` at 3239e14, `models/encoders.py`,
`models/layers.py`, `models/utils/initialization.py` and `models/data/evaluation.py` at 24faf77,
`models/utils/position.py` at 5ec87b5, `trainer.py` at 10075a4; see reference/baselines.md §1).
One item table `ei` (inputs and output scores), reversed positions, ONE shared causal attention
block for the merged (x) and domain (a, b) sequences, a shared SwiGLU FFN with per-sequence domain
LoRA (dLoRA) and LayerNorm, an invariant projector with invariant LoRA (iLoRA) carrying x into each
domain, domain projectors, and the per-position mix `h = h_A * m_A + h_B * m_B` by the target's
domain. InfoNCE (temperature 0.75) at every position against 128 A + 128 B negatives that avoid the
user's train-part items; objective loss_A + loss_B.

GCA (not in the original): cells `gca<p>_A` / `gca<p>_B` at p = 0 (after the embedding), 1 (after
the attention block) or 2 (after the FFN/LoRA stage) update the A and B streams, querying the other
domain's stream (`gca.kv="other"`) or the merged stream (`"mixed"`) under a causal mask on merged
time (`inputs/abxi_windows.py` defines the times of aligned and evaluation tokens).

Reproduced details: no key-padding mask (padding tokens are zero vectors whose keys/values are the
in-projection bias); attention-probability dropout 0; dropout sampled separately on every branch;
LayerNorm eps 1e-5 on masked inputs (`LN(x * m)` leaves the LN bias at masked slots until the final
mix); at evaluation the FFN/LoRA stage runs on the last position with mask 1; initialisation
(Linear N(0, 0.02) and zero bias, also the attention out-projection; attention in-projection
xavier-uniform with zero bias; embeddings trunc-normal(0, 0.02, +-0.04) including the pad row;
LoRA A = randn/50, B = 0; LayerNorm 1/0). Positions count backwards (most recent = 1); in training
the aligned domain sequences have interior gaps, so a token's position also counts the later
same-domain targets of the sequence (the original's behaviour).

Quirks of the original, flags whose defaults are the v2.1 behaviour:
  * `neg_b_off_by_one=True`: v2's `idx_all_b = arange(n_item_a, n_item + 1)` lets the last A item
    (id nA) be drawn as a B negative (v1: `n_item_a + 1`).
  * `eval_domain_seq="inplace"`: at evaluation `trainer.evaluate_batch` builds seq_a / seq_b by
    zeroing the other domain's items of seq_x slot for slot. When the last input item is a B item,
    seq_a's last slot is padding, its attention output is masked to 0 and the A stream reaches the
    final mix only as LayerNorm biases (likewise for B). "compact" gives each stream the prefix's
    own-domain items, left-padded, as reference/baselines.md describes the evaluation inputs.
    With GCA this matters more: a cell leaves padding queries as they are (models/gca.py), so in
    place, a *switch* case (last input from the other domain: 36.7 % of abxi-afk's test cases) gets
    nothing from any GCA cell: the stream it is scored on never queried the other domain. This is
    kept as the faithful default, since the slot holds no item to query with; the metrics are
    reported per case group `switch` / `stay` (inputs/eval_cases.py), `build` prints the share,
    and `compact` (or `python -m orthoalign.evaluate --set=model.eval_domain_seq=compact`) lets GCA
    reach every case whose own stream has seen the other domain.

Deviations (named):
  * Training negatives are drawn on device (`negatives.sample_distinct_excluding`: vectorised
    rejection, exactly the original's uniform draw without replacement unless more than 32 of 160
    candidates are rejected, chance < 1e-25 on Food-Kitchen), per position as the original (a fresh
    128 A + 128 B at every non-pad position). All draws avoid the whole train-part history (the
    original's B pool avoids only its B items, so id nA can be drawn there even when seen).
  * Evaluation candidates are orthoalign's frozen sets (`inputs.candidates.frozen`, the target's
    domain minus the history) instead of a fresh draw at every evaluation (which, in the original,
    has the same off-by-one for B targets).
  * Ranks: the trainer counts ties against the target, ABXI in its favour (negligible for float
    scores); best-epoch selection is strict (`>`), ABXI's is `>=`.
  * Users whose train part has < 2 items are not trained on (ABXI's data has none).
  * `model.mask_padding_keys=True` (off by default) keeps padding slots out of the self-attention
    keys, which the original lets take part in every softmax; with it, `train.length_buckets` cuts
    each batch to the shortest bucket that holds its rows (`inputs/abxi_windows.crop_windows`:
    the windows are left-padded and positions count backwards, so only padding goes).
"""

from __future__ import annotations

from typing import Any

import ml_collections
import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import abxi_windows
from orthoalign.inputs import eval_cases
from orthoalign.models import baseline
from orthoalign.models.abxi import config as config_lib
from orthoalign.models.abxi.config import Config
from orthoalign.models.abxi.loss import Hyper
from orthoalign.models.abxi.loss import eval_fn
from orthoalign.models.abxi.loss import loss_fn
from orthoalign.models.abxi.module import ABXI
from orthoalign.models.infonce import catalog_scoring

__all__ = ["Baseline", "Config"]


class Baseline(baseline.Baseline, baseline.LengthBuckets):
  """ABXI bound to a dataset: its merged and aligned domain windows, one item table `ei`.

  Raises (on construction):
    ConfigError: data without a merged timeline, or a model.n_neg that some user's history leaves
      too few items of a domain for.
  """

  TITLE = "ABXI"
  Config = Config
  GCA_KV = config_lib.GCA_KV
  REPLICA_HPARAMS = config_lib.REPLICA_HPARAMS
  EVAL_SETTINGS = ("eval_domain_seq",)

  check = staticmethod(config_lib.validate)

  def __init__(self, ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict):
    super().__init__(ds, config)
    cfg = self.settings
    baseline.require_merged_timeline(ds, config, "its mixed stream is the merged sequence")
    gca = baseline.gca_settings(config)
    self.module = ABXI(ds.num_items_a, ds.num_items_b, cfg, gca.positions, gca.kv, gca.cell)
    self.hp = Hyper(cfg, ds.num_items_a, ds.num_items_b, catalog_scoring(cfg.neg_scoring))
    self._train = abxi_windows.train_windows(ds, cfg.len_max)
    self.hp.check_pools(self._train["hist"], "ABXI")
    if gca.positions and cfg.eval_domain_seq == "inplace":
      switch = eval_cases.case_groups(ds, splits.eval_split(ds, "test")).get("group/switch")
      if switch is not None and len(switch):
        self.notes = (
          f"ABXI: in-place evaluation layout (model.eval_domain_seq): {int(switch.sum())} of "
          f"{len(switch)} test cases ({switch.mean():.1%}) are switch cases, whose target-domain "
          "stream ends in padding; the GCA cells cannot reach them (metrics per group 'switch' / "
          "'stay'; the compact layout gives that slot the stream's last own item)",
        )

  def train_windows(self) -> dict[str, np.ndarray]:
    return self._train

  def eval_windows(self, split: splits.EvalSplit) -> dict[str, np.ndarray]:
    cfg = self.settings
    return abxi_windows.eval_windows(self.ds, split, cfg.len_max, cfg.eval_domain_seq)

  def loss(self, params, frozen, batch, rng, hparams=None):
    return loss_fn(self.module, self.hp, params, frozen, batch, rng, hparams)

  def tables(self, params, frozen):
    del frozen
    return params["ei"]

  def score(self, params, frozen, tables, batch):
    return eval_fn(self.module, params, frozen, tables, batch)

  def lengths(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
    return abxi_windows.window_lengths(arrays)

  def crop(self, batch: dict[str, Any], length: int) -> dict[str, Any]:
    return abxi_windows.crop_windows(batch, length)
