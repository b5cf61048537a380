r"""Checks orthoalign's SASRec against pmixer/SASRec.pytorch at 72ba89d: same weights, float64.

  python tools/compare_sasrec_original.py --original=/path/to/SASRec.pytorch   # checkout at 72ba89d

Needs torch (`pip install -e ".[text]"` brings it) and a checkout of pmixer/SASRec.pytorch at
72ba89d, whose `model.py` holds `SASRec(user_num, item_num, args)`; the original code is read from
there, never copied into orthoalign. One stream, as the original: orthoalign's `model.streams=mixed`
on a single catalogue of 60 items (domain B empty). Every parameter of orthoalign's initialisation
is perturbed and loaded into the original; dropout is 0. On 16 left-padded windows of length 10
(some shorter than the window) with fixed negatives: the features `log2feats`, the positive and
negative logits, the loss of `main.py` (BCE with logits on both, means over positions with a next
item, plus l2_emb times the item table's norm), the gradient of every parameter, and `predict`'s
scores of 20 candidates. Prints the largest differences; exits 1 if any exceeds 1e-9 (relative
for gradients). `--flip KEY=VALUE` changes one of orthoalign's model settings (e.g.
`--flip pre_ln=True`) to show that the check can fail.
"""

import argparse
import dataclasses
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import port_check  # tools/port_check.py (tools/ is on sys.path)

N_ITEMS, LENGTH, ROWS, D, BLOCKS, HEADS, L2_EMB = 60, 10, 16, 16, 2, 2, 0.01


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--original", required=True, help="checkout of pmixer/SASRec.pytorch at 72ba89d"
  )
  parser.add_argument("--flip", default="", help="KEY=VALUE: one orthoalign model setting changed")
  args = parser.parse_args()
  if not os.path.isfile(os.path.join(args.original, "model.py")):
    parser.error(f"--original={args.original}: no model.py there (a checkout at 72ba89d)")

  jax.config.update("jax_enable_x64", True)
  import torch  # optional dependency

  torch.set_default_dtype(torch.float64)
  sys.path.insert(0, args.original)
  from model import SASRec as TorchSASRec  # the original code

  sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from orthoalign.models import sasrec

  module = sasrec.module.SASRec(
    num_items_a=N_ITEMS,
    num_items_b=0,
    config=sasrec.Config(
      streams="mixed",
      width=D,
      blocks=BLOCKS,
      heads=HEADS,
      dropout=0.0,
      max_len=LENGTH,
      l2_emb=L2_EMB,
    ),
  )
  if args.flip:
    key, value = args.flip.split("=", 1)
    old = getattr(module.config, key)
    new = type(old)(value == "True" if value in ("True", "False") else value)
    module = module.clone(config=dataclasses.replace(module.config, **{key: new}))
    print(f"orthoalign's model.{key} flipped to {new!r}")

  rng = np.random.default_rng(0)
  lengths = rng.integers(2, LENGTH + 2, ROWS)
  seq, pos, neg = (np.zeros((ROWS, LENGTH), np.int64) for _ in range(3))
  for r, n in enumerate(lengths):  # inputs and next items of one user, left-padded
    items = rng.choice(np.arange(1, N_ITEMS + 1), size=n, replace=False)
    k = min(n - 1, LENGTH)
    seq[r, LENGTH - k :], pos[r, LENGTH - k :] = items[-k - 1 : -1], items[-k:]
    free = np.setdiff1d(np.arange(1, N_ITEMS + 1), items)
    neg[r, LENGTH - k :] = rng.choice(free, size=k)
  batch = {
    "seq": jnp.asarray(seq),
    "pos": jnp.asarray(pos),
    "row_valid": jnp.ones(ROWS, bool),
    "positions": jnp.zeros((ROWS, LENGTH), jnp.int32),
    "cand": jnp.asarray(rng.integers(1, N_ITEMS + 1, (ROWS, 20))),
  }
  init = lambda key: module.init({"params": key}, batch, train=False)["params"]
  params = port_check.perturbed_float64(init)
  hp = sasrec.loss.Hyper(module.config, num_items_a=N_ITEMS, num_items_b=0)

  model = TorchSASRec(
    ROWS,
    N_ITEMS,
    argparse.Namespace(
      device="cpu",
      hidden_units=D,
      maxlen=LENGTH,
      dropout_rate=0.0,
      num_blocks=BLOCKS,
      num_heads=HEADS,
    ),
  )
  state = {
    k: torch.tensor(np.ascontiguousarray(v))
    for k, v in torch_names(jax.tree_util.tree_map(np.asarray, params), BLOCKS).items()
  }
  model.load_state_dict(state, strict=True)
  print(
    f"parameters: original {sum(p.numel() for p in model.parameters()):,}, "
    f"orthoalign {sum(x.size for x in jax.tree_util.tree_leaves(params)):,}"
  )
  failures = []

  def report(what, value, limit=1e-9):
    print(f"{what:<52} {value:.3e}")
    if not value <= limit:
      failures.append(what)

  def loss(p):
    out = module.apply({"params": p}, batch, train=True)
    value, _ = sasrec.loss.loss_fn(
      module, hp, p, {}, batch, jax.random.key(0), negs={"m": jnp.asarray(neg)}
    )
    table = p["item_emb_m"]
    f = out["f_m"]
    logits = (jnp.sum(f * table[batch["pos"]], -1), jnp.sum(f * table[jnp.asarray(neg)], -1))
    return value, (f, logits)

  (value, (feats, (pos_l, neg_l))), grads = jax.value_and_grad(loss, has_aux=True)(params)
  model.train()
  pos_t, neg_t = model(None, seq, pos, neg)
  idx = np.where(pos != 0)
  bce = torch.nn.BCEWithLogitsLoss()
  loss_t = bce(pos_t[idx], torch.ones(len(idx[0]))) + bce(neg_t[idx], torch.zeros(len(idx[0])))
  for param in model.item_emb.parameters():  # main.py's l2_emb term
    loss_t += L2_EMB * torch.norm(param)
  loss_t.backward()
  with torch.no_grad():
    feats_t = model.log2feats(seq).numpy()
  valid = seq > 0
  report(
    "log2feats at valid positions: max |difference|",
    np.abs(feats_t - np.asarray(feats))[valid].max(),
  )
  report(
    "positive logits: max |difference|",
    np.abs(pos_t.detach().numpy() - np.asarray(pos_l))[idx].max(),
  )
  report(
    "negative logits: max |difference|",
    np.abs(neg_t.detach().numpy() - np.asarray(neg_l))[idx].max(),
  )
  report("loss: |difference|", abs(loss_t.item() - float(value)))
  ref = torch_names(jax.tree_util.tree_map(np.asarray, grads), BLOCKS)
  # Row 0: torch's padding_idx stops the lookups' gradient, and here every lookup of id 0 is
  # masked, so both hold only the l2_emb term's.
  worst = max(
    np.abs(p.grad.numpy() - ref[n]).max() / max(np.abs(ref[n]).max(), 1e-30)
    for n, p in model.named_parameters()
  )
  report(f"gradients ({len(ref)} tensors): max relative difference", worst)

  model.eval()
  with torch.no_grad():
    scores_t = model.predict(None, seq, np.array(batch["cand"])).numpy()
  out = sasrec.loss.eval_fn(module, hp, params, {}, params["item_emb_m"], batch)
  report(
    "predict: candidate scores, max |difference|",
    np.abs(scores_t - np.asarray(out.sampled_scores)).max(),
  )
  print("FAILED: " + ", ".join(failures) if failures else "all equal")
  return 1 if failures else 0


def torch_names(p: dict, blocks: int) -> dict[str, np.ndarray]:
  """orthoalign's single-stream SASRec parameter tree -> the original's state_dict."""
  out = {
    "item_emb.weight": p["item_emb_m"],
    "pos_emb.weight": p["pos_emb_m"],
    "last_layernorm.weight": p["last_ln_m"]["scale"],
    "last_layernorm.bias": p["last_ln_m"]["bias"],
  }
  for i in range(blocks):
    b = p[f"block_m{i + 1}"]
    out.update(
      {
        f"attention_layernorms.{i}.weight": b["attn_ln"]["scale"],
        f"attention_layernorms.{i}.bias": b["attn_ln"]["bias"],
        f"attention_layers.{i}.in_proj_weight": b["attn"]["in_proj_kernel"].T,
        f"attention_layers.{i}.in_proj_bias": b["attn"]["in_proj_bias"],
        f"attention_layers.{i}.out_proj.weight": b["attn"]["out_proj"]["kernel"].T,
        f"attention_layers.{i}.out_proj.bias": b["attn"]["out_proj"]["bias"],
        f"forward_layernorms.{i}.weight": b["ffn_ln"]["scale"],
        f"forward_layernorms.{i}.bias": b["ffn_ln"]["bias"],
      }
    )
    for conv in ("conv1", "conv2"):
      out[f"forward_layers.{i}.{conv}.weight"] = b["ffn"][conv]["kernel"].T[:, :, None]
      out[f"forward_layers.{i}.{conv}.bias"] = b["ffn"][conv]["bias"]
  return {k: np.array(v) for k, v in out.items()}


if __name__ == "__main__":
  sys.exit(main())
