"""The public CDSR data sets `python -m orthoalign.datasets.download` knows: where each file
lives and, where known, its size and sha256 (pinned from the publishers' own files).
"""

from __future__ import annotations

import dataclasses
import posixpath


@dataclasses.dataclass(frozen=True)
class RemoteFile:
  """One file of a data set.

  Attributes:
    path: path under the data set's base URL; the local name is its last component.
    bytes: expected size, or None if unknown.
    sha256: expected hex sha256, or None (trust on first use, see `pins.json`).
  """

  path: str
  bytes: int | None = None
  sha256: str | None = None

  @property
  def name(self) -> str:
    return posixpath.basename(self.path)


@dataclasses.dataclass(frozen=True)
class RemoteDataset:
  """A named set of files under one base URL."""

  name: str
  base_url: str
  files: tuple[RemoteFile, ...]
  description: str = ""


_ABXI_BASE = (
  "https://raw.githubusercontent.com/DiMarzioBian/ABXI/"
  "72e52c9f85c740cb5dbdab11f7e5a70eb28ae00d/data/"
)
_LLMCDSR_BASE = (
  "https://raw.githubusercontent.com/xhran2010/LLMCDSR/"
  "5825e999d87c4b7f90448df17d05c5f9cea047ba/data/food-kitchen/"
)
_AMAZON2014_BASE = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
_AMAZON2018_BASE = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/"
_AMAZON2023_BASE = "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023/raw/"
# Categories registered for the raw dumps: the domains of ABXI's and LLM4CDSR's pairs.
AMAZON2014_CATEGORIES = (
  "Beauty",
  "Books",
  "Cell_Phones_and_Accessories",
  "Clothing_Shoes_and_Jewelry",
  "Electronics",
  "Grocery_and_Gourmet_Food",
  "Home_and_Kitchen",
  "Movies_and_TV",
  "Sports_and_Outdoors",
)
AMAZON2018_CATEGORIES = (
  "Books",
  "Cell_Phones_and_Accessories",
  "Clothing_Shoes_and_Jewelry",
  "Electronics",
  "Grocery_and_Gourmet_Food",
  "Home_and_Kitchen",
  "Movies_and_TV",
  "Sports_and_Outdoors",
)
AMAZON2023_CATEGORIES = AMAZON2018_CATEGORIES


def _abxi(pair: str, description: str, checksums: dict[str, tuple[int, str]] | None):
  files = tuple(
    RemoteFile(f"{pair}/{name}", *(checksums or {}).get(name, (None, None)))
    for name in (f"{pair}_50_preprocessed.txt", "map_item_50.txt", "map_user_50.txt")
  )
  return RemoteDataset(f"abxi-{pair}", _ABXI_BASE, files, description)


def _build_registry() -> dict[str, RemoteDataset]:
  sets = [
    _abxi(
      "afk",
      "ABXI's Amazon Food x Kitchen (pinned commit)",
      {
        "afk_50_preprocessed.txt": (
          2913978,
          "5f9856f574879920a70c93461add1ebc1c997b1ce6d626ba8d475315f53a4a15",
        ),
        "map_item_50.txt": (
          719364,
          "64a939f71c0c48ba181d6d24e384af1160812bdf244f20c58ef101f5fc54b3c3",
        ),
        "map_user_50.txt": (
          168481,
          "e20b90e5b7b298e38243a64eb54830d537ea5a7a3ab5ae74d6d0179142a6d684",
        ),
      },
    ),
    _abxi(
      "abe",
      "ABXI's Amazon Beauty x Electronics (pinned commit)",
      {
        "abe_50_preprocessed.txt": (
          1913628,
          "e13235003725700fdc709eb78a8865bd7e4ab75dc28ae569f7a4cebcdab1e33b",
        ),
        "map_item_50.txt": (
          627636,
          "4e144f3fea1a5e8037cd56167a084ce4d73c6ccc123187055470b3da9818de74",
        ),
        "map_user_50.txt": (
          105126,
          "efcec3a6a523c25753390afee0cb2ad74f68de5dfaf27574e4108e97b8452d24",
        ),
      },
    ),
    _abxi("amb", "ABXI's Amazon Movie x Book (pinned commit; checksums pinned on first use)", None),
    RemoteDataset(
      "llmcdsr-food-kitchen",
      _LLMCDSR_BASE,
      (
        RemoteFile(
          "num.txt", 11, "ddf19800d60c1320b74a4507d88592b79eaa12c2b33c26620bc526c6e0dc5bee"
        ),
        RemoteFile(
          "instance_num.txt", 17, "ef7ec64ba0d9bab809e56deec57bd710621681d0b5c63c4febf555f04a0c27b5"
        ),
        RemoteFile(
          "train_A.txt", 201449, "4b39bfa69d9d001938d7ec32853928e51a53c141a95f3b698b052eb27821c3ad"
        ),
        RemoteFile(
          "train_B.txt", 1774169, "bab4611796a5c077baf29d6c5f4a70c40cd25e38bb90e9d85035b8c1f06c7a93"
        ),
        RemoteFile(
          "train_overlap.txt",
          560265,
          "0375a8e5c049b9377c1199bda2d0de270e989f1cdf08ff21e4d120ec4a5b5986",
        ),
        RemoteFile(
          "valid.txt", 96861, "6d93b5025ad65efef71f0b2e1beaa5899f5ed8f8fd95da96de1286f5b8cb0074"
        ),
        RemoteFile(
          "test.txt", 86602, "bdc978617810e6bf9f6eac31260e0688169c0c1cdf34cbf395774f3896e37aa4"
        ),
        # Pickles: never load them with the standard unpickler (see downloads.md).
        RemoteFile("item_set_A.pkl", 138370),
        RemoteFile("item_set_B.pkl", 442060),
        RemoteFile("text_A.pkl", 706631),
        RemoteFile("text_B.pkl", 2132336),
      ),
      "LLMCDSR's Amazon Food x Kitchen with titles (pinned commit)",
    ),
  ]
  for cat in AMAZON2014_CATEGORIES:
    sets.append(
      RemoteDataset(
        f"amazon2014-ratings-{cat}",
        _AMAZON2014_BASE,
        (RemoteFile(f"ratings_{cat}.csv"),),
        f"Amazon 2014 ratings-only dump, {cat} (user,item,rating,ts)",
      )
    )
    sets.append(
      RemoteDataset(
        f"amazon2014-meta-{cat}",
        _AMAZON2014_BASE,
        (RemoteFile(f"meta_{cat}.json.gz"),),
        f"Amazon 2014 metadata, {cat} (Python-literal lines)",
      )
    )
  for cat in AMAZON2018_CATEGORIES:
    sets.append(
      RemoteDataset(
        f"amazon2018-{cat}",
        _AMAZON2018_BASE,
        (RemoteFile(f"categoryFiles/{cat}.json.gz"),),
        f"Amazon 2018 reviews, {cat}",
      )
    )
    sets.append(
      RemoteDataset(
        f"amazon2018-5core-{cat}",
        _AMAZON2018_BASE,
        (RemoteFile(f"categoryFilesSmall/{cat}_5.json.gz"),),
        f"Amazon 2018 5-core reviews, {cat}",
      )
    )
    sets.append(
      RemoteDataset(
        f"amazon2018-meta-{cat}",
        _AMAZON2018_BASE,
        (RemoteFile(f"metaFiles2/meta_{cat}.json.gz"),),
        f"Amazon 2018 metadata, {cat}",
      )
    )
  for cat in AMAZON2023_CATEGORIES:
    sets.append(
      RemoteDataset(
        f"amazon2023-{cat}",
        _AMAZON2023_BASE,
        (RemoteFile(f"review_categories/{cat}.jsonl.gz"),),
        f"Amazon 2023 reviews, {cat}",
      )
    )
    sets.append(
      RemoteDataset(
        f"amazon2023-meta-{cat}",
        _AMAZON2023_BASE,
        (RemoteFile(f"meta_categories/meta_{cat}.jsonl.gz"),),
        f"Amazon 2023 metadata, {cat}",
      )
    )
  return {s.name: s for s in sets}


REGISTRY: dict[str, RemoteDataset] = _build_registry()
