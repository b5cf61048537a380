r"""Checks orthoalign's ABXI against the authors' PyTorch code: same weights, same batch, float64.

  python tools/compare_abxi_original.py --original=/path/to/DiMarzioBian/ABXI \
      --data=../shared/data/abxi-afk

Needs torch (`pip install -e ".[text]"` brings it) and a checkout of the original code whose
`models/ABXI.py` has the v2 interface (`ABXI(args)`, `forward(seq_x, seq_a, seq_b, mask_x, mask_a,
mask_b, mask_gt_a, mask_gt_b)`, `cal_rec_loss`, `cal_rank`); the original code is read from there,
never copied into orthoalign. Every parameter of orthoalign's initialisation is perturbed (so LoRA
B, LayerNorm scales and biases are non-trivial) and loaded into the original model; dropout is 0.
Compared: the training representation h, loss_A and loss_B on 64 training rows with the same
negatives, the gradient of every parameter, and the evaluation representation and 999-candidate
ranks of 512 test users with the original trainer's (`trainer.py`) masks and in-place domain
sequences. Prints the largest differences; exits 1 if any exceeds 1e-9 (relative for gradients)
or a rank differs.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import port_check  # tools/port_check.py (tools/ is on sys.path)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--original", required=True, help="checkout of DiMarzioBian/ABXI")
  parser.add_argument("--data", default="../shared/data/abxi-afk", help="ABXI's afk files")
  args = parser.parse_args()

  jax.config.update("jax_enable_x64", True)
  import torch  # optional dependency

  torch.set_default_dtype(torch.float64)
  sys.path.insert(0, args.original)
  from models.ABXI import ABXI as TorchABXI  # noqa: N811  # the authors' code

  # The project root, for `configs` when run as `python tools/compare_abxi_original.py`.
  sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import abxi as abxi_config
  from orthoalign.datasets import load as data_load
  from orthoalign.models import abxi
  from orthoalign.train import task as task_lib

  cfg = abxi_config.get_config()
  cfg.data.path = args.data
  cfg.model.dropout = 0.0
  ds = data_load.load(cfg.data)
  task = task_lib.bind(ds, cfg)
  na, nb, m = ds.num_items_a, ds.num_items_b, cfg.model
  params = port_check.perturbed_float64(task.model.init)

  model = TorchABXI(
    argparse.Namespace(
      bs=cfg.train.batch_size,
      len_trim=m.max_len,
      n_head=m.heads,
      n_item=na + nb,
      n_item_a=na,
      n_neg=m.n_neg,
      temp=m.temp,
      d_embed=m.width,
      rd=m.rd,
      ri=m.ri,
      dropout=0.0,
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
  module = task.model.module
  tensor = lambda x: torch.tensor(np.asarray(x)).long()
  int_mask = lambda s: (s != 0).unsqueeze(-1).to(torch.int32)
  failures = []

  def report(what, value, limit=1e-9):
    print(f"{what:<44} {value:.3e}")
    if not value <= limit:
      failures.append(what)

  # Training: h, the two losses and all gradients.
  batch = {k: jnp.asarray(v[:64]) for k, v in task.train_data.items()}
  batch["row_valid"] = jnp.ones(64, bool)
  neg = abxi.loss.sample_train_negatives(
    jax.random.key(3), batch, abxi.loss.Hyper(task.model.module.config, na, nb)
  )

  def loss(params):
    h = module.apply({"params": params}, batch, train=True)["h"]
    per_pos = abxi.loss.info_nce(h, params["ei"], batch["target"], neg, m.temp)
    t = batch["target"]
    la = abxi.loss.domain_loss(per_pos, (t > 0) & (t <= na), batch["row_valid"])
    lb = abxi.loss.domain_loss(per_pos, t > na, batch["row_valid"])
    return la + lb, (h, la, lb)

  (_, (h, la, lb)), grads = jax.value_and_grad(loss, has_aux=True)(params)
  model.train()
  seq_x, seq_a, seq_b, gt = (tensor(batch[k]) for k in ("seq_x", "seq_a", "seq_b", "target"))
  gt_a, gt_b = ((0 < gt) & (gt <= na)).double(), (gt > na).double()
  h_t = model(seq_x, seq_a, seq_b, int_mask(seq_x), int_mask(seq_a), int_mask(seq_b), gt_a, gt_b)
  la_t, lb_t = model.cal_rec_loss(h_t, gt, tensor(neg), gt_a, gt_b)
  (la_t + lb_t).backward()
  report("training h: max |difference|", np.abs(h_t.detach().numpy() - np.asarray(h)).max())
  report("loss_A: |difference|", abs(la_t.item() - float(la)))
  report("loss_B: |difference|", abs(lb_t.item() - float(lb)))
  ref = torch_names(jax.tree_util.tree_map(np.asarray, grads))
  ref["ei.weight"][0] = 0.0  # torch's padding_idx=0 row gets no gradient
  worst = max(
    np.abs(p.grad.numpy() - ref[n]).max() / max(np.abs(ref[n]).max(), 1e-30)
    for n, p in model.named_parameters()
  )
  report(f"gradients ({len(ref)} tensors): max relative difference", worst)

  # Evaluation: in-place domain sequences and masks as the original trainer's evaluate_batch.
  ev = {k: jnp.asarray(v[:512]) for k, v in task.eval_data["test"].items()}
  h_e = module.apply({"params": params}, ev, train=False)["h"]
  scores = np.asarray(jnp.einsum("bd,bcd->bc", h_e, params["ei"][ev["cand"]]))
  ranks = 1 + (scores[:, 1:] > scores[:, :1]).sum(1)
  model.eval()
  sx, g1 = tensor(ev["seq_x"]), tensor(ev["target"])[:, None]
  in_a, in_b = (sx > 0) & (sx <= na), sx > na
  sa, sb = torch.where(in_a, sx, 0), torch.where(in_b, sx, 0)
  with torch.no_grad():
    h_et = model(
      sx,
      sa,
      sb,
      int_mask(sx),
      in_a.unsqueeze(-1).to(torch.int32),
      in_b.unsqueeze(-1).to(torch.int32),
      ((0 < g1) & (g1 <= na)).double(),
      (g1 > na).double(),
    )
    ranks_t = model.cal_rank(h_et, g1, tensor(ev["cand"][:, 1:])).numpy()
  report("evaluation h: max |difference|", np.abs(h_et.numpy() - np.asarray(h_e)).max())
  report(f"evaluation ranks: users differing of {len(ranks)}", float((ranks_t != ranks).sum()), 0)
  print("FAILED: " + ", ".join(failures) if failures else "all equal")
  return 1 if failures else 0


def torch_names(p: dict) -> dict[str, np.ndarray]:
  """orthoalign's ABXI parameter tree -> the original's state_dict names and layouts."""
  out = {
    "ei.weight": p["ei"],
    "ep.weight": p["ep"],
    "mha.mha.in_proj_weight": p["mha"]["in_proj_kernel"].T,
    "mha.mha.in_proj_bias": p["mha"]["in_proj_bias"],
    "mha.mha.out_proj.weight": p["mha"]["out_proj"]["kernel"].T,
    "mha.mha.out_proj.bias": p["mha"]["out_proj"]["bias"],
    "mha.norm_mha.weight": p["norm_mha"]["scale"],
    "mha.norm_mha.bias": p["norm_mha"]["bias"],
  }
  for ffn in ("ffn", "proj_i", "proj_a", "proj_b"):
    for fc in ("fc_1", "fc_2", "fc_3"):
      out[f"{ffn}.{fc}.weight"] = p[ffn][fc]["kernel"].T
  for lora in ("dlora_x", "dlora_a", "dlora_b", "ilora_a", "ilora_b"):
    out[f"{lora}.mat_A"], out[f"{lora}.mat_B"] = p[lora]["mat_A"], p[lora]["mat_B"]
  for norm in (
    "norm_sa_x",
    "norm_sa_a",
    "norm_sa_b",
    "norm_i2a",
    "norm_i2b",
    "norm_a2a",
    "norm_b2b",
  ):
    out[f"{norm}.weight"], out[f"{norm}.bias"] = p[norm]["scale"], p[norm]["bias"]
  return {k: np.array(v) for k, v in out.items()}


if __name__ == "__main__":
  sys.exit(main())
