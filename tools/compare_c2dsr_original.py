r"""Checks orthoalign's C2DSR against the authors' PyTorch code: same files, weights, batches.

  python tools/compare_c2dsr_original.py --original=/path/to/cjx96/C2DSR \
      [--set=model.gcn_weight=applied]

Needs torch and scipy and a checkout of the original code (commit f23f18a: `C2DSR_src/` with
`utils/loader.py`, `utils/GraphMaker.py`, `model/C2DSR.py`, `model/trainer.py`); the original code
is read from there, never copied into orthoalign. Three things are changed while it runs, none of
its computation: it moves two labels to the GPU unconditionally (`.cuda()` in `train_batch`), made
the identity here; its infomax masks are cast with `.float()` (float32), made `.double()` here;
and its GraphConvolution allocates `torch.FloatTensor` parameters whatever the default dtype, so
the model is converted with `.double()` before the weights are loaded.

1. Files: a hand-made C2DSR folder (written by this tool, seed 0: 60 A and 45 B items, 400
   training, 80 validation, 80 test lines of 1 to 15 items, timestamps with ties, lines ending in
   B item 0 and single-domain lines) is read by orthoalign's reader and by the original's loader
   (`DataLoader.read_train_data` / `read_test_data`, `preprocess`, `preprocess_for_predict`):
   every training and evaluation row must be the same (the corrupted items drawn at random
   excepted: their kept items are compared, their drawn items checked to lie in the right domain).
2. Graphs: `GraphMaker`'s adj and adj_single against inputs.item_graphs (1e-7: the original rounds
   its weights to float32).
3. Model: orthoalign's initialisation, perturbed, loaded into the original's C2DSR by name (dropout
   0, its adjacency matrices orthoalign's in float64); on 64 training rows with the original's
   corrupted sequences, the three encoders and the corrupted passes, the loss and its infomax part
   as `CDSRTrainer.train_batch` returns them (lr 0, so its Adam step leaves the weights as they
   are), the gradient of every parameter; on 80 validation and 80 test rows the original's
   `test_batch` ranks among its own 999 negatives against orthoalign's scores of the same items
   under the same rule (a negative counts when it beats the target by more than 1e-5), and the
   scores themselves.

`--set` changes one of orthoalign's `model.*` keys (a quirk flag) to show that the check can fail.
Prints the largest differences; exits 1 if any exceeds 1e-9 (relative for gradients), a row
differs or a rank differs.
"""

import argparse
import contextlib
import os
import pathlib
import random
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import port_check  # tools/port_check.py (tools/ is on sys.path)

FOLDER = "Handmade-AB"  # no "Enter": the loader's window is 15


def write_folder(root: pathlib.Path, seed: int = 0) -> tuple[int, int]:
  """Writes the hand-made C2DSR folder root/FOLDER; returns (nA, nB)."""
  rng = np.random.default_rng(seed)
  na, nb = 60, 45
  folder = root / FOLDER
  folder.mkdir(parents=True)
  (folder / "Alist.txt").write_text("".join(f"a{i}\t{i}\n" for i in range(na)))
  (folder / "Blist.txt").write_text("".join(f"b{i}\t{i}\n" for i in range(nb)))

  def line(user: int, n: int, kind: int) -> str:
    if kind == 0:  # both domains
      items = rng.integers(0, na + nb, n)
    elif kind == 1:  # A only
      items = rng.integers(0, na, n)
    else:  # ends in B item 0 (file id nA)
      items = np.append(rng.integers(0, na + nb, n - 1), na)
    stamps = rng.integers(0, 5 * n, n)  # ties: sorted stably, as the loader
    last = int(stamps.max()) + 1
    stamps[-1] = last  # the line's last token stays its last item
    tokens = [f"{i}|{t}" for i, t in zip(items, stamps)]
    order = rng.permutation(n - 1)  # tokens out of time order, the last kept last
    tokens = [tokens[k] for k in order] + tokens[-1:]
    return "\t".join([str(user), "0", *tokens]) + "\n"

  for name, rows, low in (
    ("traindata_new", 400, 2),
    ("validdata_new", 80, 1),
    ("testdata_new", 80, 1),
  ):
    kinds = rng.choice(3, rows, p=[0.8, 0.1, 0.1])
    text = "".join(
      line(int(rng.integers(0, 300)), int(rng.integers(max(low, 2 if k == 2 else 1), 16)), k)
      for k in kinds
    )
    (folder / f"{name}.txt").write_text(text)
  return na, nb


@contextlib.contextmanager
def cwd(path):
  old = os.getcwd()
  os.chdir(path)
  try:
    yield
  finally:
    os.chdir(old)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--original", required=True, help="checkout of cjx96/C2DSR")
  parser.add_argument("--set", action="append", default=[], help="model.<key>=<value> (orthoalign)")
  args = parser.parse_args()
  if not os.path.isfile(os.path.join(args.original, "C2DSR_src", "model", "C2DSR.py")):
    parser.error(f"--original={args.original}: expected a checkout of cjx96/C2DSR (C2DSR_src/)")
  try:
    import scipy  # noqa: F401  # the original's GraphMaker
    import torch  # optional dependency
  except ImportError as e:
    parser.error(f"needs torch and scipy ({e}); pip install torch scipy")

  jax.config.update("jax_enable_x64", True)

  torch.set_default_dtype(torch.float64)
  sys.path.insert(0, os.path.join(os.path.abspath(args.original), "C2DSR_src"))
  from model.trainer import CDSRTrainer  # the authors' code
  from utils.GraphMaker import GraphMaker
  from utils.loader import DataLoader

  sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import c2dsr as c2dsr_config
  from orthoalign.train import task as task_lib

  failures = []

  def report(what, value, limit=1e-9):
    print(f"{what:<60} {value:.3e}")
    if not value <= limit:
      failures.append(what)

  root = pathlib.Path(tempfile.mkdtemp(prefix="c2dsr_check_"))
  na, nb = write_folder(root / "dataset")
  pad = na + nb  # the original's padding id

  # orthoalign: the reader and the model's rows.
  cfg = c2dsr_config.get_config()
  cfg.data.update(
    format="c2dsr", path=str(root / "dataset" / FOLDER), cache_dir=str(root / "cache")
  )
  cfg.eval.num_negatives = 20  # orthoalign's frozen candidates are not compared
  cfg.model.dropout = 0.0
  for item in args.set:
    key, _, value = item.partition("=")
    default = cfg.model[key.removeprefix("model.")]
    cfg.model[key.removeprefix("model.")] = type(default)(
      value == "True" if isinstance(default, bool) else value
    )
    print(f"orthoalign's {key} set to {value!r}")
  from orthoalign.datasets import load as data_load

  ds = data_load.load(cfg.data)
  task = task_lib.bind(ds, cfg)
  model_ours = task.model
  c = model_ours.settings

  # The original's loader on the same folder.
  opt = dict(
    cuda=False,
    model="C2DSR",
    hidden_units=c.width,
    num_blocks=c.blocks,
    num_heads=c.heads,
    GNN=c.gnn_layers,
    dropout=0.0,
    leakey=0.1,
    lr=0.0,
    optim="adam",
    maxlen=15,
    **{"lambda": c.lam},
  )
  random.seed(0)
  with cwd(root):
    loader = object.__new__(DataLoader)
    loader.opt, loader.filename = opt, FOLDER
    opt["source_item_num"] = loader.read_item(f"./dataset/{FOLDER}/Alist.txt")
    opt["target_item_num"] = loader.read_item(f"./dataset/{FOLDER}/Blist.txt")
    loader.train_data = loader.read_train_data(f"./dataset/{FOLDER}/traindata_new.txt")
    train_rows = loader.preprocess()
    eval_rows = {}
    for split, name in (("valid", "validdata_new"), ("test", "testdata_new")):
      loader.test_data = loader.read_test_data(f"./dataset/{FOLDER}/{name}.txt")
      eval_rows[split] = loader.preprocess_for_predict()
    opt["itemnum"] = na + nb + 1
    graph = GraphMaker(opt, f"./dataset/{FOLDER}/traindata_new.txt")
  print(f"hand-made folder: nA {na}, nB {nb}; original's training rows {len(train_rows)}")

  # 1. Rows. orthoalign's ids are the original's + 1 (0 = padding).
  to_orig = lambda x: np.where(np.asarray(x) == 0, pad, np.asarray(x) - 1)
  ours = model_ours.train_windows()
  report("training rows: count difference", abs(len(train_rows) - len(ours["seq"])), 0)
  n = min(len(train_rows), len(ours["seq"]))
  t = {
    k: np.array([r[i] for r in train_rows[:n]])
    for i, k in enumerate(
      "seq xd yd position x_position y_position ground share_x_ground share_y_ground x_ground "
      "y_ground ground_mask share_x_ground_mask share_y_ground_mask x_ground_mask y_ground_mask "
      "corru_x corru_y".split()
    )
  }
  o = {k: v[:n] for k, v in ours.items()}
  la, lb = (
    lambda x: np.where((x > 0) & (x <= na), x - 1, na),
    lambda x: np.where(x > na, x - na - 1, nb),
  )
  pairs = {
    "seq": to_orig(o["seq"]),
    "xd": to_orig(o["seq_a"]),
    "yd": to_orig(o["seq_b"]),
    "position": o["pos"],
    "x_position": o["pos_a"],
    "y_position": o["pos_b"],
    "ground": to_orig(o["target"]),
    "share_x_ground": la(o["target"]),
    "share_y_ground": lb(o["target"]),
    "x_ground": la(o["target_a"]),
    "y_ground": lb(o["target_b"]),
    "ground_mask": o["seq"] > 0,
    "share_x_ground_mask": (o["target"] > 0) & (o["target"] <= na),
    "share_y_ground_mask": o["target"] > na,
    "x_ground_mask": o["target_a"] > 0,
    "y_ground_mask": o["target_b"] > 0,
  }
  report("training rows: arrays differing (16 per row)", rows_differing(pairs, t), 0)
  kept_a = t["seq"] < na
  corrupt_ok = (
    (t["corru_x"][kept_a] == t["seq"][kept_a]).all()
    and (
      t["corru_y"][(t["seq"] >= na) & (t["seq"] < pad)]
      == t["seq"][(t["seq"] >= na) & (t["seq"] < pad)]
    ).all()
    and ((to_orig(o["corrupt_a"]) >= na) == (t["corru_x"] >= na)).all()
    and ((to_orig(o["corrupt_b"]) < na) == (t["corru_y"] < na)).all()
  )
  report("training rows: corrupted sequences of another rule", float(not corrupt_ok), 0)
  for split in ("valid", "test"):
    theirs = eval_rows[split]
    mine = task.eval_data[split]
    keep = [r for r in theirs if any(x != pad for x in r[0])]  # orthoalign evaluates histories
    report(f"{split} rows: count difference", abs(len(keep) - len(mine["seq"])), 0)
    m = min(len(keep), len(mine["seq"]))
    e = {
      k: np.array([r[i] for r in keep[:m]])
      for i, k in enumerate(
        "seq xd yd position x_position y_position x_last y_last XorY ground neg".split()
      )
    }
    mine = {k: np.asarray(v[:m]) for k, v in mine.items()}
    L = c.max_len
    cmp = {
      "seq": to_orig(mine["seq"]),
      "xd": to_orig(mine["seq_a"]),
      "yd": to_orig(mine["seq_b"]),
      "position": mine["pos"],
      "x_position": mine["pos_a"],
      "y_position": mine["pos_b"],
      "x_last": mine["idx_last_a"] - L,
      "y_last": mine["idx_last_b"] - L,
      "XorY": mine["domain"],
      "ground": np.where(mine["domain"] == 1, mine["target"] - na - 1, mine["target"] - 1),
    }
    report(f"{split} rows: arrays differing (10 per row)", rows_differing(cmp, e), 0)
    eval_rows[split] = (keep[:m], e)

  # 2. Graphs.
  merged, single = (model_ours.module.graphs[k] for k in ("merged", "single"))
  for name, theirs, g in (("adj", graph.adj, merged), ("adj_single", graph.adj_single, single)):
    dense = np.zeros((na + nb + 1,) * 2)
    dense[g.rows, g.cols] = g.weights
    report(
      f"graph {name}: max |difference| (float32 weights)",
      np.abs(theirs.to_dense().numpy() - dense).max(),
      1e-7,
    )

  # 3. Model, float64, the original's adjacency replaced by orthoalign's (float64 weights).
  def sparse(g):
    idx = torch.tensor(np.stack([g.rows, g.cols]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.tensor(g.weights), (na + nb + 1,) * 2)

  trainer = CDSRTrainer(opt, sparse(merged), sparse(single))
  # GraphConvolution allocates torch.FloatTensor parameters whatever the default dtype: float64 here
  # (in place, so the trainer's optimizer still holds them).
  trainer.model.double()
  params = port_check.perturbed_float64(model_ours.init)
  names = torch_names(jax.tree_util.tree_map(np.asarray, params), c.blocks, c.gnn_layers)
  trainer.model.load_state_dict(
    {k: torch.tensor(np.ascontiguousarray(v)) for k, v in names.items()}, strict=True
  )
  print(
    f"parameters: original {sum(p.numel() for p in trainer.model.parameters()):,}, "
    f"orthoalign {sum(x.size for x in jax.tree_util.tree_leaves(params)):,}"
  )
  tensor = lambda x: torch.tensor(np.asarray(x)).long()
  rows = train_rows[:64]
  batch_t = [tensor([r[i] for r in rows]) for i in range(18)]
  ids = lambda x: np.where(np.asarray(x) == pad, 0, np.asarray(x) + 1)
  batch = {k: jnp.asarray(v[:64]) for k, v in ours.items()}
  batch["corrupt_a"], batch["corrupt_b"] = (
    jnp.asarray(ids(t["corru_x"][:64])),
    jnp.asarray(ids(t["corru_y"][:64])),
  )
  batch["row_valid"] = jnp.ones(64, bool)
  module = model_ours.module
  from orthoalign.models.c2dsr import loss as loss_lib

  def loss(params):
    out = module.apply({"params": params}, batch, train=True)
    terms = loss_lib.losses(out, batch, na, nb, c.ce_positions)
    rec = terms["share_a"] + terms["share_b"] + terms["own_a"] + terms["own_b"]
    mi = terms["mi_a"] + terms["mi_b"]
    return c.lam * rec + (1 - c.lam) * mi, (out, (1 - c.lam) * mi)

  (value, (out, mi)), grads = jax.value_and_grad(loss, has_aux=True)(params)
  original = torch.Tensor.cuda, torch.Tensor.float
  torch.Tensor.cuda = lambda self, *a, **k: self  # the original's unconditional .cuda() labels
  torch.Tensor.float = torch.Tensor.double  # its masks' `.float()`: float64 in this check
  try:
    trainer.mi_loss = 0.0
    loss_t = trainer.train_batch(batch_t)
  finally:
    torch.Tensor.cuda, torch.Tensor.float = original
  model = trainer.model
  with torch.no_grad():
    model.graph_convolution()
    fea = model(*batch_t[:6])
    cor = [model.false_forward(batch_t[k], batch_t[3]) for k in (16, 17)]
  for k, theirs in zip(("h_m", "h_a", "h_b", "h_corrupt_a", "h_corrupt_b"), (*fea, *cor)):
    report(f"training {k}: max |difference|", np.abs(theirs.numpy() - np.asarray(out[k])).max())
  report("loss: |difference|", abs(loss_t - float(value)))
  report("infomax part (1 - lambda)(mi_X + mi_Y): |difference|", abs(trainer.mi_loss - float(mi)))
  ref = torch_names(jax.tree_util.tree_map(np.asarray, grads), c.blocks, c.gnn_layers)
  for table in ("item_emb.weight", "item_emb_X.weight", "item_emb_Y.weight"):
    ref[table][-1] = 0.0  # torch's padding_idx rows get no gradient
  for enc in ("encoder", "encoder_X", "encoder_Y"):
    ref[f"{enc}.pos_emb.weight"][0] = 0.0
  worst, dead = 0.0, 0
  for n_, p in model.named_parameters():
    g = np.zeros(p.shape) if p.grad is None else p.grad.numpy()
    scale = max(np.abs(ref[n_]).max(), np.abs(g).max())
    dead += scale == 0
    if scale > 0:
      worst = max(worst, np.abs(g - ref[n_]).max() / scale)
  report(f"gradients ({len(ref)} tensors): max relative difference", worst)
  print(f"{'tensors with a zero gradient in both':<60} {dead}")

  # Evaluation: the original's test_batch ranks among its own negatives.
  model.eval()
  conv = loss_lib.tables(module, params, {})
  for split in ("valid", "test"):
    keep, e = eval_rows[split]
    batch_e = [tensor([r[i] for r in keep]) for i in range(11)]
    with torch.no_grad():
      model.graph_convolution()
      x_pred, y_pred = trainer.test_batch(batch_e)
      seqs_fea, x_fea, y_fea = model(*batch_e[:6])
      rows_ = torch.arange(len(keep))
      s_x = model.lin_X(seqs_fea[:, -1] + x_fea[rows_, batch_e[6]]).numpy()
      s_y = model.lin_Y(seqs_fea[:, -1] + y_fea[rows_, batch_e[7]]).numpy()
    ev = {k: jnp.asarray(v[: len(keep)]) for k, v in task.eval_data[split].items()}
    s_a, s_b, _ = module.apply({"params": params}, ev, conv, method=type(module).score)
    s_a, s_b = np.asarray(s_a), np.asarray(s_b)
    report(
      f"{split} scores: max |difference|", max(np.abs(s_a - s_x).max(), np.abs(s_b - s_y).max())
    )
    ranks = []
    for i, dom in enumerate(e["XorY"]):
      s = s_b[i] if dom else s_a[i]
      cur = s[e["ground"][i]]
      ranks.append(int((s[e["neg"][i]] > cur + 0.00001).sum()) + 1)
    ranks = np.array(ranks)
    differing = int(
      (ranks[e["XorY"] == 0] != np.array(x_pred)).sum()
      + (ranks[e["XorY"] == 1] != np.array(y_pred)).sum()
    )
    report(
      f"{split} ranks (the original's 999 negatives): cases differing of {len(ranks)}", differing, 0
    )
  print("FAILED: " + ", ".join(failures) if failures else "all equal")
  return 1 if failures else 0


def rows_differing(ours: dict, theirs: dict) -> int:
  """How many (array, row) pairs differ between orthoalign's rows and the original's, by name."""
  return sum(
    int((np.asarray(v).reshape(len(v), -1) != theirs[k].reshape(len(v), -1)).any(1).sum())
    for k, v in ours.items()
  )


def torch_names(p: dict, blocks: int, gnn_layers: int) -> dict[str, np.ndarray]:
  """orthoalign's C2DSR parameter tree -> the original's state_dict names and layouts."""
  out = {}
  for s, t in (("m", ""), ("a", "_X"), ("b", "_Y")):
    out[f"item_emb{t}.weight"] = p[f"item_{s}"]
    for i in range(gnn_layers):
      out[f"GNN_encoder{t}.encoder.{i}.gc1.weight"] = p[f"gcn_{s}"][f"weight_{i}"]
      out[f"GNN_encoder{t}.encoder.{i}.gc1.bias"] = p[f"gcn_{s}"][f"bias_{i}"]
    enc = f"encoder{t}"
    out[f"{enc}.pos_emb.weight"] = p[f"pos_{s}"]
    for i in range(blocks):
      b = p[f"block_{s}{i + 1}"]
      out[f"{enc}.attention_layernorms.{i}.weight"] = b["attn_ln"]["scale"]
      out[f"{enc}.attention_layernorms.{i}.bias"] = b["attn_ln"]["bias"]
      out[f"{enc}.attention_layers.{i}.in_proj_weight"] = b["attn"]["in_proj_kernel"].T
      out[f"{enc}.attention_layers.{i}.in_proj_bias"] = b["attn"]["in_proj_bias"]
      out[f"{enc}.attention_layers.{i}.out_proj.weight"] = b["attn"]["out_proj"]["kernel"].T
      out[f"{enc}.attention_layers.{i}.out_proj.bias"] = b["attn"]["out_proj"]["bias"]
      out[f"{enc}.forward_layernorms.{i}.weight"] = b["ffn_ln"]["scale"]
      out[f"{enc}.forward_layernorms.{i}.bias"] = b["ffn_ln"]["bias"]
      for conv in ("conv1", "conv2"):
        out[f"{enc}.forward_layers.{i}.{conv}.weight"] = b["ffn"][conv]["kernel"].T[:, :, None]
        out[f"{enc}.forward_layers.{i}.{conv}.bias"] = b["ffn"][conv]["bias"]
    out[f"{enc}.last_layernorm.weight"] = p[f"last_ln_{s}"]["scale"]
    out[f"{enc}.last_layernorm.bias"] = p[f"last_ln_{s}"]["bias"]
  for s, t in (("a", "X"), ("b", "Y")):
    out[f"D_{t}.f_k.weight"] = p[f"disc_{s}"]["kernel"][None]
    out[f"D_{t}.f_k.bias"] = p[f"disc_{s}"]["bias"]
    out[f"lin_{t}.weight"] = p[f"lin_{s}"]["kernel"].T
    out[f"lin_{t}.bias"] = p[f"lin_{s}"]["bias"]
  out["lin_PAD.weight"] = p["lin_pad"]["kernel"].T
  out["lin_PAD.bias"] = p["lin_pad"]["bias"]
  return {k: np.array(v) for k, v in out.items()}


if __name__ == "__main__":
  sys.exit(main())
