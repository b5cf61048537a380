r"""Checks orthoalign's MERIT against the authors' PyTorch code: same weights, same batch, float64.

  python tools/compare_merit_original.py --original=/path/to/DiMarzioBian/MERIT \
      --data=../shared/data/abxi-afk [--set=model.positions=own]

Needs torch (`pip install -e ".[text]"` brings it) and a checkout of the original code (commit
932ebee: `models/MERIT.py` with `MERIT(args)`, `forward(seq_m, idx_last_a, idx_last_b)`,
`cal_rec_loss`, `cal_rank`); the original code is read from there, never copied into orthoalign.
Every parameter of orthoalign's initialisation is perturbed (so LayerNorm scales and biases are
non-trivial) and loaded into the original model by name; dropout is 0. Compared: the three training
streams, loss_f and loss_m (as `trainer.train_batch` computes them) on 64 training rows with the
same negatives, the gradient of every parameter, and the evaluation representation and
999-candidate ranks of 512 test users (the original's `cal_rank`). `--set` changes one of
orthoalign's `model.*` keys (a quirk flag) to show that the check can fail. Prints the largest
differences; exits 1 if any exceeds 1e-9 (relative for gradients) or a rank differs.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import port_check  # tools/port_check.py (tools/ is on sys.path)

# orthoalign names streams by the items they hold; the original's `*_a` modules hold the B items.
TORCH_STREAM = {"m": "m", "a": "b", "b": "a"}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--original", required=True, help="checkout of DiMarzioBian/MERIT")
  parser.add_argument("--data", default="../shared/data/abxi-afk", help="ABXI's afk files")
  parser.add_argument("--set", action="append", default=[], help="model.<key>=<value> (orthoalign)")
  args = parser.parse_args()

  jax.config.update("jax_enable_x64", True)
  import torch  # optional dependency

  torch.set_default_dtype(torch.float64)
  sys.path.insert(0, args.original)
  from models.MERIT import MERIT as TorchMERIT  # noqa: N811  # the authors' code

  # The project root, for `configs` when run as `python tools/compare_merit_original.py`.
  sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import merit as merit_config
  from orthoalign.datasets import load as data_load
  from orthoalign.models import merit
  from orthoalign.train import task as task_lib

  cfg = merit_config.get_config()
  cfg.data.path = args.data
  cfg.model.dropout = 0.0
  for item in args.set:
    key, _, value = item.partition("=")
    cfg.model[key.removeprefix("model.")] = value
    print(f"orthoalign's {key} set to {value!r}")
  ds = data_load.load(cfg.data)
  task = task_lib.bind(ds, cfg)
  na, nb, m = ds.num_items_a, ds.num_items_b, cfg.model
  params = port_check.perturbed_float64(task.model.init)

  model = TorchMERIT(
    argparse.Namespace(
      bs=cfg.train.batch_size,
      len_trim=m.max_len,
      n_neg=m.n_neg,
      d_embed=m.width,
      n_head=m.heads,
      temp=m.temp,
      dropout=0.0,
      n_item=na + nb,
      n_item_a=na,
      n_item_b=nb,
    )
  )
  names = torch_names(jax.tree_util.tree_map(np.asarray, params))
  model.load_state_dict(
    {k: torch.tensor(np.ascontiguousarray(v)) for k, v in names.items()}, strict=True
  )
  print(
    f"parameters: original {sum(p.numel() for p in model.parameters()):,}, "
    f"orthoalign {sum(x.size for x in jax.tree_util.tree_leaves(params)):,}"
  )
  module, hp = task.model.module, task.model.hp
  tensor = lambda x: torch.tensor(np.asarray(x)).long()
  failures = []

  def report(what, value, limit=1e-9):
    print(f"{what:<52} {value:.3e}")
    if not value <= limit:
      failures.append(what)

  # Training rows whose targets hold both domains in both losses: for the others the original's
  # `cal_norm_mask` divides by zero (NaN), where orthoalign adds 0 (a named deviation).
  train = task.train_data
  both = lambda t: ((t > 0) & (t <= na)).any(1) & (t > na).any(1)
  usable = both(train["target"]) & both(train["target_ab"])
  print(
    f"training rows: {len(usable):,}; without an A or a B target in one of the losses (NaN in the "
    f"original): {int((~usable).sum())}"
  )
  rows = np.nonzero(usable)[0][:64]
  batch = {k: jnp.asarray(v[rows]) for k, v in train.items()}
  batch["row_valid"] = jnp.ones(len(rows), bool)
  neg_m, neg_ab = merit.loss.sample_train_negatives(jax.random.key(3), batch, hp)

  def loss(params):
    out = module.apply({"params": params}, batch, train=True)
    loss_f, loss_m = merit.loss.losses(out, params["ei"], batch, neg_m, neg_ab, hp, m.temp)
    return loss_f + loss_m, (out, loss_f, loss_m)

  (_, (out, lf, lm)), grads = jax.value_and_grad(loss, has_aux=True)(params)
  model.train()
  h_m, h_a, h_b = model(tensor(batch["seq"]))
  lf_t = model.cal_rec_loss(h_a + h_b + h_m.detach(), tensor(batch["target_ab"]), tensor(neg_ab))
  lm_t = model.cal_rec_loss(h_m, tensor(batch["target"]), tensor(neg_m))
  (lf_t + lm_t).backward()
  for ours, theirs in (("h_m", h_m), ("h_a", h_b), ("h_b", h_a)):
    diff = np.abs(theirs.detach().numpy() - np.asarray(out[ours])).max()
    report(f"training {ours}: max |difference|", diff)
  report("loss_f: |difference|", abs(lf_t.item() - float(lf)))
  report("loss_m: |difference|", abs(lm_t.item() - float(lm)))
  ref = torch_names(jax.tree_util.tree_map(np.asarray, grads))
  for table in ("ei.weight", "ep.weight"):
    ref[table][0] = 0.0  # torch's padding_idx=0 rows get no gradient
  worst, dead = 0.0, 0
  for n, p in model.named_parameters():
    scale = max(np.abs(ref[n]).max(), np.abs(p.grad.numpy()).max())
    dead += scale == 0
    if scale > 0:
      worst = max(worst, np.abs(p.grad.numpy() - ref[n]).max() / scale)
  report(f"gradients ({len(ref)} tensors): max relative difference", worst)
  print(f"{'tensors with a zero gradient in both':<52} {dead}")

  # Evaluation: the original's forward with idx_last_a / idx_last_b and its cal_rank.
  ev = {k: jnp.asarray(v[:512]) for k, v in task.eval_data["test"].items()}
  h_e = module.apply({"params": params}, ev, train=False)["h"]
  scores = np.asarray(jnp.einsum("bd,bcd->bc", h_e, params["ei"][ev["cand"]]))
  ranks = 1 + (scores[:, 1:] > scores[:, :1]).sum(1)
  model.eval()
  gt = tensor(ev["target"])[:, None]
  with torch.no_grad():
    last = [tensor(ev[f"idx_last_{s}"])[:, None] for s in ("a", "b")]
    hs = model(tensor(ev["seq"]), *last)
    ranks_a, ranks_b = model.cal_rank(hs, gt, tensor(ev["cand"][:, 1:]))
    in_a = (gt <= na).double()
    h_f = hs[1] * in_a + hs[2] * (1 - in_a) + hs[0]
  is_b = np.asarray(ev["domain"]) == 1
  report("evaluation h: max |difference|", np.abs(h_f.numpy() - np.asarray(h_e)).max())
  differing = int(
    (np.asarray(ranks_a) != ranks[~is_b]).sum() + (np.asarray(ranks_b) != ranks[is_b]).sum()
  )
  report(f"evaluation ranks: users differing of {len(ranks)}", float(differing), 0)
  print("FAILED: " + ", ".join(failures) if failures else "all equal")
  return 1 if failures else 0


def torch_names(p: dict) -> dict[str, np.ndarray]:
  """orthoalign's MERIT parameter tree -> the original's state_dict names and layouts."""
  from orthoalign.models.merit.module import DESTINATIONS

  def attention(ours: dict, theirs: str) -> dict:
    return {
      f"{theirs}.mha.in_proj_weight": ours["mha"]["in_proj_kernel"].T,
      f"{theirs}.mha.in_proj_bias": ours["mha"]["in_proj_bias"],
      f"{theirs}.mha.out_proj.weight": ours["mha"]["out_proj"]["kernel"].T,
      f"{theirs}.mha.out_proj.bias": ours["mha"]["out_proj"]["bias"],
      f"{theirs}.norm.weight": ours["norm"]["scale"],
      f"{theirs}.norm.bias": ours["norm"]["bias"],
    }

  def swiglu(ours: dict, theirs: str) -> dict:
    return {f"{theirs}.{fc}.weight": ours[fc]["kernel"].T for fc in ("fc_1", "fc_2", "fc_3")}

  out = {"ei.weight": p["ei"], "ep.weight": p["ep"]}
  for s, t in TORCH_STREAM.items():
    out.update(attention(p[f"sa_{s}"], f"sa_{t}"))
    out.update(attention(p["caf_m" if s == "m" else f"ecaf_{s}"], f"caf_{t}"))
    ffn = p[f"ffn_{s}"]
    out.update(swiglu(ffn["expert_s"], f"ffn_{t}.expert_s"))
    for k, dest in enumerate(DESTINATIONS[s], 1):
      out.update(swiglu(ffn[f"expert_{dest}"], f"ffn_{t}.expert_{k}"))
      out[f"ffn_{t}.gate_{k}.fc.weight"] = ffn[f"gate_{dest}"]["kernel"].T
      out[f"ffn_{t}.norm_{k}.weight"] = ffn[f"norm_{dest}"]["scale"]
      out[f"ffn_{t}.norm_{k}.bias"] = ffn[f"norm_{dest}"]["bias"]
    caf = p[f"ffn_caf_{s}"]
    out.update(swiglu(caf["mlp"], f"ffn_caf_{t}.mlp"))
    out[f"ffn_caf_{t}.norm.weight"] = caf["norm"]["scale"]
    out[f"ffn_caf_{t}.norm.bias"] = caf["norm"]["bias"]
  return {k: np.array(v) for k, v in out.items()}


if __name__ == "__main__":
  sys.exit(main())
