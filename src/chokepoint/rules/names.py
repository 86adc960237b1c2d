"""Exact-match normalisation of party names (full fuzzy screening lives in ``screening``)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_PUNCT = re.compile(r"[\W_]+", re.UNICODE)


@lru_cache(maxsize=65536)
def normalise_name(name: str) -> str:
    """Case, width, accents, punctuation and spacing folded; CJK characters kept as they are."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(_PUNCT.sub(" ", text).split())
