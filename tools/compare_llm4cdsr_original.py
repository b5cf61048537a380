r"""Checks orthoalign's LLM4CDSR against the authors' PyTorch code: same weights and batch, float64.

  python tools/compare_llm4cdsr_original.py --original=/path/to/liuqidong07/LLM4CDSR-pytorch \
      --data=../shared/data/llmcdsr-food-kitchen

Needs torch (CPU is enough) and a checkout of the original code (`models/LLMCDSR.py` with
`LLM4CDSR(user_num, item_num_dict, device, args)`, `generators/data.py` with
`CDSRRegSeq2SeqDatasetUser` and `CDSREvalSeq2SeqDataset`); the original code is read from there,
never copied into orthoalign. The original's constructor reads its frozen tables from
`./data/<dataset>/handled/*.pkl`: this tool writes orthoalign's tables (and the user profiles of
the batch) there in a temporary folder and builds the model with that folder as working directory.

Config: configs/llm4cdsr_fk.py with dropout 0 and `model.missing_text="zero"` (upstream has no
trainable rows for items without text, so "learned" would give orthoalign parameters the original
lacks). Every trainable parameter of orthoalign's initialisation is perturbed by N(0, 0.02^2) (so
zero-initialised biases and the LayerNorm scales matter) and loaded into the original model by name,
strict. Both sides get the original's input windows (built by its own dataset classes, and compared
with orthoalign's), orthoalign's negatives and alpha-pool draws (checked to lie in the original's
sampling support), and the same user-profile vectors.

Compared: on 64 training rows, the rec, alpha (item-regularisation) and beta (user-guidance)
losses, the total loss and the gradient of every trainable tensor; on 256 test users, the
mixed-path, domain-path and total scores of the 1 + 100 frozen candidates and the ranks (the
original trainer's argsort(argsort(-logits))[:, 0] vs orthoalign's pessimistic rank; ties are
counted). Prints the largest differences; exits 1 if any exceeds 1e-9 (relative for gradients), an
input or draw differs from the original's, or a rank differs.
"""

import argparse
import os
import pickle
import sys
import tempfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import port_check  # tools/port_check.py (tools/ is on sys.path)

from orthoalign.datasets import splits

_TRAIN_ROWS = 64
_EVAL_USERS = 256
_DATASET = "fk"  # the folder name the original's data/<dataset>/handled wants
_LLM_FILE, _USER_FILE = "itm_emb", "usr_profile_emb"


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--original", required=True, help="checkout of liuqidong07/LLM4CDSR-pytorch")
  parser.add_argument(
    "--data", default="../shared/data/llmcdsr-food-kitchen", help="LLMCDSR's Food-Kitchen files"
  )
  args = parser.parse_args()

  jax.config.update("jax_enable_x64", True)
  import torch  # optional dependency

  torch.set_default_dtype(torch.float64)
  sys.path.insert(0, os.path.abspath(args.original))
  from generators import data as torch_data  # the authors' code
  from models import LLMCDSR as torch_llmcdsr  # noqa: N811

  # The project root, for `configs` when run as `python tools/compare_llm4cdsr_original.py`.
  sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import llm4cdsr_fk
  from orthoalign.datasets import load as data_load
  from orthoalign.metrics import ranking
  from orthoalign.models import llm4cdsr
  from orthoalign.models import negatives
  from orthoalign.train import task as task_lib

  cfg = llm4cdsr_fk.get_config()
  cfg.data.path = args.data
  cfg.model.dropout = 0.0
  cfg.model.missing_text = "zero"  # upstream has no rows for items without text
  ds = data_load.load(cfg.data)
  task = task_lib.bind(ds, cfg)
  na, nb, m = ds.num_items_a, ds.num_items_b, cfg.model
  params = port_check.perturbed_float64(task.model.init)
  frozen = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), task.model.frozen)
  tables = {k: np.asarray(v) for k, v in frozen["frozen"].items()}
  failures = []

  def report(what: str, value: float, limit: float = 1e-9) -> None:
    print(f"{what:<58} {value:.3e}")
    if not value <= limit:
      failures.append(what)

  # -- inputs: the original's dataset classes on the same sequences (local ids + domain flags) ---
  # Half the rows from users with both domains among their inputs, so the alpha loss has pairs.
  hist, last = task.train_data["hist"], task.train_data["pos"][:, -1]
  both = (((hist > 0) & (hist <= na)).sum(1) > (last <= na)) & ((hist > na).sum(1) > (last > na))
  pick = np.random.default_rng(0)
  rows = np.sort(
    np.concatenate(
      [
        pick.choice(np.nonzero(both)[0], _TRAIN_ROWS // 2, replace=False),
        pick.choice(np.nonzero(~both)[0], _TRAIN_ROWS - _TRAIN_ROWS // 2, replace=False),
      ]
    )
  )
  batch = {k: jnp.asarray(v[rows]) for k, v in task.train_data.items()}
  batch["user_profile"] = batch["user_profile"].astype(jnp.float64)
  batch["row_valid"] = jnp.ones(_TRAIN_ROWS, bool)
  prefix_len = splits.train_lengths(ds)
  train_seqs = [ds.sequence(u)[: prefix_len[u]] for u in np.asarray(batch["user"])]
  ev = {k: jnp.asarray(v[:_EVAL_USERS]) for k, v in task.eval_data["test"].items()}
  split = splits.eval_split(ds, "test")
  assert np.array_equal(split.users[:_EVAL_USERS], np.asarray(ev["user"]))
  eval_seqs = [
    np.append(ds.sequence(u)[:n], t)
    for u, n, t in zip(
      split.users[:_EVAL_USERS], split.input_len[:_EVAL_USERS], split.targets[:_EVAL_USERS]
    )
  ]
  ns = argparse.Namespace(aug_seq=False, aug_seq_len=0)
  item_num = {"0": na, "1": nb}
  np.random.seed(0)  # the original's own (replaced) negative draws
  train_set = torch_data.CDSRRegSeq2SeqDatasetUser(
    ns, *_local(train_seqs, na), item_num, m.max_len, 1
  )
  t_in = _collate([train_set[i] for i in range(_TRAIN_ROWS)], train_set.var_name)
  eval_set = torch_data.CDSREvalSeq2SeqDataset(
    ns, *_local(eval_seqs, na), item_num, m.max_len, cfg.eval.num_negatives
  )
  e_in = _collate([eval_set[i] for i in range(_EVAL_USERS)], eval_set.var_name)

  diff = sum(
    int((t_in[o] != np.asarray(batch[p])).sum())
    for o, p in (
      ("seq", "seq"),
      ("pos", "pos"),
      ("positions", "positions"),
      ("seqA", "seq_a"),
      ("posA", "pos_a"),
      ("positionsA", "positions_a"),
      ("seqB", "seq_b"),
      ("posB", "pos_b"),
      ("positionsB", "positions_b"),
    )
  )
  for d, name in ((0, "a"), (1, "b")):  # the original pairs mixed and domain positions in order
    idx = np.asarray(batch[f"mix_idx_{name}"])
    for r in range(_TRAIN_ROWS):
      mine = idx[r][idx[r] >= 0]
      theirs = np.nonzero(t_in["domain_mask"][r] == d)[0]
      diff += 0 if np.array_equal(mine, theirs) else 1
  report(f"training windows ({_TRAIN_ROWS} rows): entries differing", float(diff), 0)
  is_b = np.asarray(ev["domain"]) == 1
  cand, cand_dom = np.asarray(ev["cand"]), np.asarray(ev["cand_dom"])
  diff = sum(
    int((e_in[o] != np.asarray(ev[p])).sum())
    for o, p in (("seq", "seq"), ("positions", "positions"))
  )
  for name, sel in (("A", ~is_b), ("B", is_b)):  # the non-target stream is never scored upstream
    diff += int((e_in[f"seq{name}"][sel] != np.asarray(ev[f"seq_{name.lower()}"])[sel]).sum())
    diff += int(
      (e_in[f"positions{name}"][sel] != np.asarray(ev[f"positions_{name.lower()}"])[sel]).sum()
    )
    diff += int((e_in[f"pos{name}"][sel] != cand_dom[sel, 0]).sum())
  diff += int((e_in["pos"] != cand[:, 0]).sum() + (e_in["target_domain"] != is_b).sum())
  report(f"evaluation windows ({_EVAL_USERS} users): entries differing", float(diff), 0)

  # -- orthoalign: loss and gradients through task.model.loss; its draws, reproduced for torch ---
  rng = jax.random.key(3)
  (loss, metrics), grads = jax.jit(
    jax.value_and_grad(lambda p: task.model.loss(p, frozen, batch, rng), has_aux=True)
  )(params)
  hp = llm4cdsr.loss.Hyper(task.model.module.config, na, nb)
  _, r_neg, r_reg = jax.random.split(rng, 3)  # as loss_fn splits its rng
  negs = {
    k: np.asarray(v) for k, v in llm4cdsr.loss.sample_train_negatives(r_neg, batch, hp).items()
  }
  hist = batch["hist"]
  pool = llm4cdsr.loss.reg_pool_mask(batch, hp.config.reg_pool)
  ka, kb = jax.random.split(r_reg)
  reg_a, found_a = negatives.sample_from_rows(ka, hist, pool & (hist <= na))
  reg_b, found_b = negatives.sample_from_rows(kb, hist, pool & (hist > na))
  pair = np.asarray(found_a & found_b)
  reg_a, reg_b = np.where(pair, reg_a, 0), np.where(pair, reg_b, 0)
  report(
    "draws outside the original's sampling support",
    float(_outside_support(train_seqs, t_in, negs, reg_a, reg_b, na, nb)),
    0,
  )

  # -- the original model, built from pickles of orthoalign's tables ---------------------------
  with tempfile.TemporaryDirectory() as tmp:
    handled = os.path.join(tmp, "data", _DATASET, "handled")
    os.makedirs(handled)
    for name, table in (
      (f"{_LLM_FILE}_all", tables["global_table"]),
      (f"{_LLM_FILE}_A_pca128", tables["table_a"]),
      (f"{_LLM_FILE}_B_pca128", tables["table_b"]),
    ):
      with open(os.path.join(handled, name + ".pkl"), "wb") as f:
        pickle.dump(table[1:], f)  # row i = item i + 1
    with open(os.path.join(handled, _USER_FILE + ".pkl"), "wb") as f:
      pickle.dump(np.asarray(batch["user_profile"]), f)  # row i = training row i
    cwd = os.getcwd()
    os.chdir(tmp)  # the original opens ./data/...
    try:
      model = torch_llmcdsr.LLM4CDSR(
        _TRAIN_ROWS,
        item_num,
        "cpu",
        argparse.Namespace(
          dataset=_DATASET,
          llm_emb_file=_LLM_FILE,
          user_emb_file=_USER_FILE,
          global_emb=True,
          local_emb=True,
          freeze_emb=m.freeze_global,
          hidden_size=m.width,
          max_len=m.max_len,
          dropout_rate=0.0,
          trm_num=m.blocks,
          num_heads=m.heads,
          alpha=m.alpha,
          beta=m.beta,
          tau=m.tau,
          tau_reg=m.tau_reg,
        ),
      )
    finally:
      os.chdir(cwd)
  state = torch_names(jax.tree_util.tree_map(np.asarray, params))
  state.update(frozen_names(tables, np.asarray(batch["user_profile"])))
  model.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
  trainable = {n for n, p in model.named_parameters() if p.requires_grad}
  count = sum(p.numel() for p in model.parameters() if p.requires_grad)
  print(
    f"trainable parameters: original {count:,} in {len(trainable)} tensors, orthoalign "
    f"{sum(x.size for x in jax.tree_util.tree_leaves(params)):,} in "
    f"{len(jax.tree_util.tree_leaves(params))} tensors"
  )
  ref = torch_names(jax.tree_util.tree_map(np.asarray, grads))
  if set(ref) != trainable:
    print(
      f"  names only in orthoalign: {sorted(set(ref) - trainable)}; only in the original: "
      f"{sorted(trainable - set(ref))}"
    )
    failures.append("trainable parameter names")

  # -- training: the original's forward (loss terms captured at its loss modules) --------------
  tensor = lambda x: torch.tensor(np.asarray(x)).long()
  t_batch = {k: tensor(v) for k, v in t_in.items()}
  for k, name in (("neg", "neg"), ("negA", "neg_a"), ("negB", "neg_b")):
    t_batch[k] = tensor(np.where(t_in[k.replace("neg", "pos")] > 0, negs[name], 0))
  t_batch.update(
    reg_A=tensor(reg_a[:, None]), reg_B=tensor(reg_b[:, None]), user_id=torch.arange(_TRAIN_ROWS)
  )
  terms = {}
  for name in ("reg_loss_func", "user_loss_func"):
    getattr(model, name).register_forward_hook(
      lambda mod, inp, out, name=name: terms.__setitem__(name, out.item())
    )
  model.train()
  loss_t = model(**t_batch)
  loss_t.backward()
  with torch.no_grad():
    rec_t = torch_llmcdsr.LLM4CDSR_base.forward(model, **t_batch).item()
  report("rec loss: |difference|", abs(rec_t - float(metrics["rec_loss"])))
  report(
    "alpha (item regularisation) loss: |difference|",
    abs(terms["reg_loss_func"] - float(metrics["reg_loss"])),
  )
  report(
    "beta (user guidance) loss: |difference|",
    abs(terms["user_loss_func"] - float(metrics["user_loss"])),
  )
  report("total loss: |difference|", abs(loss_t.item() - float(loss)))
  print(
    f"  (losses: rec {rec_t:.6f}, alpha {terms['reg_loss_func']:.6f} on {int(pair.sum())} "
    f"pairs, beta {terms['user_loss_func']:.6f}, total {loss_t.item():.6f})"
  )
  rel = {
    n: np.abs(p.grad.numpy() - ref[n]).max() / max(np.abs(ref[n]).max(), 1e-30)
    for n, p in model.named_parameters()
    if p.requires_grad and n in ref
  }
  worst = max(rel, key=rel.get)
  report(f"gradients ({len(rel)} tensors): max relative difference", rel[worst])
  print(f"  (largest in {worst})")

  # -- evaluation: the original's predict on the frozen candidates -----------------------------

  @jax.jit
  def evaluate(params, ev):
    """eval_fn's sampled scores, and its two paths' parts from the module's final features."""
    t_tables = task.model.tables(params, frozen)
    enc = task.model.module.apply({"params": params, **frozen}, ev, train=False)
    mix_t, a_t, b_t, _ = t_tables  # the 4th: the domain table by global id
    f_dom = jnp.where(is_b[:, None], enc["f_b"][:, -1], enc["f_a"][:, -1])
    dom_rows = jnp.where(
      is_b[:, None, None], b_t[jnp.minimum(cand_dom, nb)], a_t[jnp.minimum(cand_dom, na)]
    )
    return (
      task.model.score(params, frozen, t_tables, ev).sampled_scores,
      jnp.einsum("bd,bcd->bc", enc["f_m"][:, -1], mix_t[cand]),
      jnp.einsum("bd,bcd->bc", f_dom, dom_rows),
    )

  scores, mixed, domain = (np.asarray(x) for x in evaluate(params, ev))
  e_batch = {k: tensor(v) for k, v in e_in.items()}
  e_batch["neg"] = tensor(cand[:, 1:])
  for name, sel in (("A", ~is_b), ("B", is_b)):  # other-domain rows: any valid id
    e_batch[f"neg{name}"] = tensor(np.where(sel[:, None], cand_dom[:, 1:], 1))
  for suffix in ("", "A", "B"):  # as CDSRTrainer.eval
    e_batch[f"item_indices{suffix}"] = torch.cat(
      [e_batch[f"pos{suffix}"].unsqueeze(1), e_batch[f"neg{suffix}"]], dim=1
    )
  model.eval()
  with torch.no_grad():
    logits = model.predict(**e_batch)
    rank_t = torch.argsort(torch.argsort(-logits))[:, 0].numpy()
    logits = logits.numpy()
    mixed_t = _path_scores(model, e_batch, "AB", "", np.ones_like(is_b))
    dom_t = np.zeros_like(mixed_t)
    dom_t[~is_b] = _path_scores(model, e_batch, "A", "A", ~is_b)
    dom_t[is_b] = _path_scores(model, e_batch, "B", "B", is_b)
  report("evaluation mixed-path scores: max |difference|", np.abs(mixed_t - mixed).max())
  report("evaluation domain-path scores: max |difference|", np.abs(dom_t - domain).max())
  report("evaluation scores (eval_fn vs predict): max |difference|", np.abs(logits - scores).max())
  higher, equal, _ = (np.asarray(x) for x in ranking.sampled_counts(jnp.asarray(scores)))
  ties_t = int((logits[:, 1:] == logits[:, :1]).any(1).sum())
  report(
    f"evaluation ranks: users differing of {len(rank_t)}",
    float((rank_t != higher + equal).sum()),
    0,
  )
  print(
    f"  (users with a tie at the target: orthoalign {int((equal > 0).sum())}, original "
    f"{ties_t}; mean rank {rank_t.mean():.2f})"
  )
  print("FAILED: " + ", ".join(failures) if failures else "all equal")
  return 1 if failures else 0


def _local(seqs: list[np.ndarray], na: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Global-id sequences -> the original's (local ids, domain flags) lists."""
  dom = [(s > na).astype(np.int64) for s in seqs]
  return [np.where(d == 1, s - na, s).astype(np.int64) for s, d in zip(seqs, dom)], dom


def _collate(items: list[tuple], names: list[str]) -> dict[str, np.ndarray]:
  """The original's per-row tuples -> {var_name: stacked array}, as its DataLoader collates."""
  return {n: np.stack([np.asarray(it[i]) for it in items]) for i, n in enumerate(names)}


def _outside_support(
  seqs: list[np.ndarray],
  t_in: dict[str, np.ndarray],
  negs: dict[str, np.ndarray],
  reg_a: np.ndarray,
  reg_b: np.ndarray,
  na: int,
  nb: int,
) -> int:
  """Negatives and alpha items that the original's samplers could not have drawn.

  Original (generators/data_utils.py truncate_padding, generators/data.py): a mixed negative is
  random_neq(1, nA) or random_neq(nA+1, nA+nB) by the domain of the input item, avoiding the whole
  sequence; a domain negative is random_neq(1, n_d) avoiding that domain's window items; the alpha
  items come from data[index][:-1], one of each domain, or none when a domain is missing there.
  """
  bad = 0
  for r, s in enumerate(seqs):
    valid = t_in["pos"][r] > 0
    neg = negs["neg"][r][valid]
    in_b = t_in["seq"][r][valid] > na
    lo, hi = np.where(in_b, na + 1, 1), np.where(in_b, na + nb, na)
    bad += int(((neg < lo) | (neg >= hi) | np.isin(neg, s)).sum())
    for d, name, n, off in ((0, "A", na, 0), (1, "B", nb, na)):
      valid = t_in[f"pos{name}"][r] > 0
      neg = negs[f"neg_{name.lower()}"][r][valid]
      window = s[-len(t_in["seq"][r]) - 1 :]
      own = window[(window > na) == bool(d)] - off
      bad += int(((neg < 1) | (neg >= n) | np.isin(neg, own)).sum())
    inputs = s[:-1]
    has_both = (inputs <= na).any() and (inputs > na).any()
    if has_both:
      bad += int(reg_a[r] not in inputs[inputs <= na]) + int(reg_b[r] not in inputs[inputs > na])
    else:
      bad += int(reg_a[r] != 0 or reg_b[r] != 0)
  return bad


def _path_scores(
  model: Any, batch: dict[str, Any], domain: str, suffix: str, rows: np.ndarray
) -> np.ndarray:
  """One path's candidate scores of `rows`, as the original's `predict` computes them."""
  sel = lambda x: x[np.nonzero(rows)[0]]
  feats = model.log2feats(
    sel(batch[f"seq{suffix}"]), sel(batch[f"positions{suffix}"]), domain=domain
  )[:, -1, :]
  items = model._get_embedding(sel(batch[f"item_indices{suffix}"]), domain=domain)
  return items.matmul(feats.unsqueeze(-1)).squeeze(-1).numpy()


def torch_names(p: dict) -> dict[str, np.ndarray]:
  """orthoalign's LLM4CDSR parameter tree -> the original's state_dict names and layouts."""
  out = {
    "pos_emb.weight": p["pos_emb_m"]["embedding"],
    "pos_embA.weight": p["pos_emb_a"]["embedding"],
    "pos_embB.weight": p["pos_emb_b"]["embedding"],
  }
  for ours, theirs in (("adapter", "adapter"), ("user_adapter", "user_adapter")):
    for i in (0, 1):
      out[f"{theirs}.{i}.weight"] = p[f"{ours}_{i}"]["kernel"].T
      out[f"{theirs}.{i}.bias"] = p[f"{ours}_{i}"]["bias"]
  for s, backbone in (("m", "backbone"), ("a", "backboneA"), ("b", "backboneB")):
    for i in range(2):
      blk, pre = p[f"block_{s}{i + 1}"], f"{backbone}"
      out[f"{pre}.attention_layernorms.{i}.weight"] = blk["attn_ln"]["scale"]
      out[f"{pre}.attention_layernorms.{i}.bias"] = blk["attn_ln"]["bias"]
      out[f"{pre}.attention_layers.{i}.in_proj_weight"] = blk["attn"]["in_proj_kernel"].T
      out[f"{pre}.attention_layers.{i}.in_proj_bias"] = blk["attn"]["in_proj_bias"]
      out[f"{pre}.attention_layers.{i}.out_proj.weight"] = blk["attn"]["out_proj"]["kernel"].T
      out[f"{pre}.attention_layers.{i}.out_proj.bias"] = blk["attn"]["out_proj"]["bias"]
      out[f"{pre}.forward_layernorms.{i}.weight"] = blk["ffn_ln"]["scale"]
      out[f"{pre}.forward_layernorms.{i}.bias"] = blk["ffn_ln"]["bias"]
      for conv in ("conv1", "conv2"):  # Conv1d(k=1) weight: [out, in, 1]
        out[f"{pre}.forward_layers.{i}.{conv}.weight"] = blk["ffn"][conv]["kernel"].T[:, :, None]
        out[f"{pre}.forward_layers.{i}.{conv}.bias"] = blk["ffn"][conv]["bias"]
    out[f"{backbone}.last_layernorm.weight"] = p[f"last_ln_{s}"]["scale"]
    out[f"{backbone}.last_layernorm.bias"] = p[f"last_ln_{s}"]["bias"]
  return {k: np.array(v) for k, v in out.items()}


def frozen_names(tables: dict[str, np.ndarray], profiles: np.ndarray) -> dict[str, np.ndarray]:
  """The original's frozen tables (already read from the pickles) under their state_dict names."""
  return {
    "item_emb_llm.weight": tables["global_table"],
    "item_embA.weight": tables["table_a"],
    "item_embB.weight": tables["table_b"],
    "user_emb_llm.weight": profiles,
  }


if __name__ == "__main__":
  sys.exit(main())
