"""The names of evaluation protocols and the format of metric keys, in one place.

Result rows (results.jsonl, orthoalign.evaluate), TensorBoard tags, the trainer's tables and the
analysis all read and write these keys through this module:

  <split>/<protocol>/<domain>/<metric>            test/sampled/A/ndcg@10
  <split>/<group>/<protocol>/<domain>/<metric>    test/overlapped/full/all/auc (a user or case
                                                  group, inputs/eval_cases.py)
  <split>/<group>/sampled/all/count               the group's number of cases in the split
  align/<cell>/<stat>                             GCA alignment statistics (metrics/alignment.py)
  train/<name>                                    an epoch's mean training metric (train/loss),
                                                  train/learning_rate
  perf/steps_per_s                                an epoch's training speed
  <key>/r<replica>                                a TensorBoard tag: one replica's number

split: "valid" | "test"; domain: the target's domain by its name in the dataset (`domain_names`:
"A" | "B" for two-domain data) or "all"; metric: ndcg@k, hr@k
(k in 1, 5, 10), mrr, auc, tie_share. Protocols (docs/metrics.md):

  sampled      the target vs `eval.num_negatives` frozen negatives of its domain, scored the
               model's own way (e.g. LLM4CDSR's independent domain-stream candidates);
  sampled<N>   one per entry N of `eval.extra_negatives`: the target vs its own frozen set of N
               negatives, each candidate scored as in full ranking (the model's score of that item);
  full         every item of the target's domain except the user's history and the target.

Inside the compiled evaluation the sums carry the same keys without the split (`split=""`).
Light on purpose (no numpy, no JAX): every layer imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import dataclasses
import re
from typing import Any

SPLITS = ("valid", "test")
DOMAINS = ("A", "B", "all")  # the domains of two-domain data, which the analysis tables show
SAMPLED, FULL = "sampled", "full"
COUNT = "count"
_PROTOCOL = r"sampled(?:[1-9]\d*)?|full"
PROTOCOL_RE = re.compile(rf"^(?:{_PROTOCOL})$")
# What `train.select_metric` may name (each term of a '+'-sum).
SELECT_RE = re.compile(rf"^valid/({_PROTOCOL})/(A|B|all)/(ndcg@(1|5|10)|hr@(1|5|10)|mrr|auc)$")


def extra_protocol(num_negatives: int) -> str:
  """The protocol of an `eval.extra_negatives` entry: 999 -> "sampled999"."""
  return f"{SAMPLED}{int(num_negatives)}"


def protocols(eval_cfg: Any) -> tuple[str, ...]:
  """The protocols a config evaluates, in report order: sampled, sampled<N>..., full."""
  extra = tuple(eval_cfg.extra_negatives)
  return (SAMPLED, *(extra_protocol(n) for n in extra), FULL)


def metric_key(split: str, protocol: str, domain: str, metric: str, group: str = "") -> str:
  """The key of one metric: `<split>[/<group>]/<protocol>/<domain>/<metric>`.

  `metric_key("test", "sampled", "A", "ndcg@10")` is "test/sampled/A/ndcg@10"; with a group,
  "test/overlapped/sampled/A/ndcg@10"; split "" gives the in-program sum's key.
  """
  return "/".join(p for p in (split, group, protocol, domain, metric) if p)


def domain_metric(domain: str, metric: str) -> str:
  """The key of one domain's metric inside one protocol's sums (metrics/ranking.py): "A/mrr"."""
  return f"{domain}/{metric}"


def split_domain_metric(key: str) -> tuple[str, str]:
  """(domain, metric) of a `domain_metric` key."""
  domain, _, metric = key.partition("/")
  return domain, metric


def count_key(split: str, group: str) -> str:
  """The key of a group's number of cases: "test/overlapped/sampled/all/count"."""
  return metric_key(split, SAMPLED, "all", COUNT, group)


ALIGN = "align"
TRAIN = "train"
LEARNING_RATE = "train/learning_rate"
STEPS_PER_S = "perf/steps_per_s"


def train_key(name: str) -> str:
  """The key of an epoch's mean training metric: "train/loss" for the loss."""
  return f"{TRAIN}/{name}"


def replica_tag(key: str, replica: int) -> str:
  """The TensorBoard tag of one replica's number: "train/loss/r1" for replica 1's loss."""
  return f"{key}/r{replica}"


def cell_name(position: int, domain: str) -> str:
  """The name of the GCA cell at `position` updating `domain`'s stream: "gca0_A"."""
  return f"gca{position}_{domain}"


def is_gca_cell(cell: str) -> bool:
  """Whether a reported cell is a GCA cell ("gca0_A"), not a model's own cross-attention
  (Baseline.NATIVE_CELLS, e.g. MERIT's "ecaf_A").
  """
  return re.match(r"^gca\d+_", cell) is not None


def align_key(cell: str, stat: str) -> str:
  """The key of one alignment statistic of a GCA cell: `align/<cell>/<stat>`."""
  return f"{ALIGN}/{cell}/{stat}"


def parse_align(key: str) -> tuple[str, str] | None:
  """(cell, stat) of an `align/<cell>/<stat>` key; None for any other key."""
  parts = key.split("/")
  if len(parts) != 3 or parts[0] != ALIGN or not parts[1] or not parts[2]:
    return None
  return parts[1], parts[2]


def align_cells(names: Iterable[str]) -> list[str]:
  """The GCA cells, sorted, that alignment keys among `names` belong to."""
  return sorted({p[0] for p in map(parse_align, names) if p is not None})


@dataclasses.dataclass(frozen=True)
class MetricKey:
  """A metric key taken apart (see `metric_key`)."""

  split: str  # "" for an in-program sum
  group: str  # "" for all cases
  protocol: str
  domain: str
  metric: str


def parse(key: str, with_split: bool = True) -> MetricKey | None:
  """The parts of a ranking-metric key, or None for any other key (align/..., config, timing)."""
  parts = key.split("/")
  split = parts.pop(0) if with_split and parts else ""
  if with_split and split not in SPLITS:
    return None
  if len(parts) not in (3, 4):
    return None
  group = parts.pop(0) if len(parts) == 4 else ""
  protocol, domain, metric = parts
  if not PROTOCOL_RE.match(protocol) or not domain or group == "align":
    return None
  return MetricKey(split, group, protocol, domain, metric)


def protocol_order(protocol: str) -> tuple[int, int]:
  """Sort key of report order: sampled, sampled<N> by N, full."""
  if protocol == SAMPLED:
    return (0, 0)
  if protocol == FULL:
    return (2, 0)
  return (1, int(protocol[len(SAMPLED) :]))


def row_protocols(rows: Iterable[Mapping[str, Any]], split: str = "test") -> list[str]:
  """The protocols with metrics of `split` among result rows, in report order."""
  found = {k.protocol for row in rows for key in row if (k := parse(key)) and k.split == split}
  return sorted(found, key=protocol_order)


# User groups first, then case groups (inputs/eval_cases.py), then anything else by name.
_GROUP_ORDER = ("overlapped", "non-overlapped", "seen", "unseen", "switch", "stay")


def row_groups(rows: Iterable[Mapping[str, Any]], split: str = "test") -> list[str]:
  """The groups with cases in `split` among result rows (those with a count key)."""
  found = {
    k.group
    for row in rows
    for key in row
    if (k := parse(key)) and k.split == split and k.group and k.metric == COUNT
  }
  return sorted(
    found, key=lambda g: (_GROUP_ORDER.index(g) if g in _GROUP_ORDER else len(_GROUP_ORDER), g)
  )
