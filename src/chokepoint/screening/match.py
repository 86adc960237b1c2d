"""Screening names against list entries: a candidate index and an explainable score.

Every name and alias is indexed as a name of its own. Candidates come from a blocking index
(whole tokens, 3-character prefixes and suffixes, adjacent token pairs joined, so that
"Gazprom Bank" meets "Gazprombank", and the one-letter deletions of tokens of five letters or
more, so that a typo - a letter dropped, added or changed - still finds its name among many
sharing the other words). The score weighs each token by its rarity (inverse
document frequency), so generic words such as "International" or "Trading" cannot carry a
match; it is the harmonic mean of how much of the query and how much of the listed name
are matched, token against token with a typo-tolerant similarity (RapidFuzz). Chinese
characters are compared as characters when both sides have them. A country mismatch lowers
the score; it never raises it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from rapidfuzz.distance import Indel, JaroWinkler, Levenshtein
from rapidfuzz.process import cdist

from chokepoint.screening.lists import ListEntry
from chokepoint.screening.normalise import Normalised, normalise

MATCH = 0.90
"""At or above: the party is taken to be the listed entry (the trace names the hit)."""
REVIEW = 0.75
"""At or above (and below MATCH): a human must decide; the determination asks."""
COUNTRY_MISMATCH_FACTOR = 0.85
TOKEN_FLOOR = 0.80  # a token pair below this similarity does not count as matching
_MAX_POSTINGS = 3000
_TOP = 8
_MIN_DELETE = 5  # shorter tokens have too many one-typo neighbours


def token_similarity(a: str, b: str) -> float:
    """Typo-tolerant similarity of two tokens: the better of Indel and Jaro-Winkler, with
    Jaro-Winkler discounted for short tokens (where one letter changes the word). Screening
    computes it in bulk (``ScreeningIndex._similarities``); this is its definition."""
    if a == b:
        return 1.0
    indel = Indel.normalized_similarity(a, b)
    jw = JaroWinkler.normalized_similarity(a, b)
    if min(len(a), len(b)) <= 4:
        jw -= 0.05
    return max(indel, jw)


@dataclass(frozen=True)
class Hit:
    entry: ListEntry
    matched_name: str
    score: float
    matched_tokens: tuple[tuple[str, str, float], ...]
    unmatched_query: tuple[str, ...]
    unmatched_name: tuple[str, ...]
    evidence: tuple[str, ...]

    @property
    def band(self) -> str:
        return "match" if self.score >= MATCH else "review" if self.score >= REVIEW else "low"

    def as_dict(self) -> dict[str, Any]:
        e = self.entry
        return {
            "list": e.list, "entry_id": e.entry_id, "name": e.name,
            "matched_name": self.matched_name, "score": round(self.score, 4),
            "band": self.band, "country": e.country, "footnotes": list(e.footnotes),
            "source": e.source,
            "matched_tokens": [{"query": q, "name": n, "similarity": round(s, 3)}
                               for q, n, s in self.matched_tokens],
            "unmatched_query_tokens": list(self.unmatched_query),
            "unmatched_name_tokens": list(self.unmatched_name),
            "evidence": list(self.evidence),
        }


@lru_cache(maxsize=4096)  # small: an index build passes every listed token through here
def _deletions(token: str) -> frozenset[str]:
    """The token and every string one character shorter ("symmetric delete" keys: two
    tokens one typo apart - a letter dropped, added or changed - share one of them)."""
    return frozenset({token, *(token[:i] + token[i + 1:] for i in range(len(token)))})


def _keys(tokens: tuple[str, ...]) -> set[str]:
    keys: set[str] = set()
    for t in tokens:
        keys.add("t:" + t)
        if len(t) >= 4:
            keys.add("p:" + t[:3])
            keys.add("s:" + t[-3:])
        if len(t) >= _MIN_DELETE:
            keys.update("d:" + d for d in _deletions(t))
    for a, b in zip(tokens, tokens[1:], strict=False):
        joined = a + b
        keys.add("t:" + joined)
        keys.add("p:" + joined[:3])
        if len(joined) >= _MIN_DELETE:
            keys.update("d:" + d for d in _deletions(joined))
    return keys


class _Postings:
    """Blocking key -> the names holding it, in one int32 array with offsets (a numpy array
    per key cost about 200 bytes each, and an index has half a million keys)."""

    def __init__(self, table: dict[str, list[int]]) -> None:
        self._slot = {key: i for i, key in enumerate(table)}
        lengths = np.fromiter((len(v) for v in table.values()), dtype=np.int64,
                              count=len(table))
        self._starts = np.concatenate(([0], np.cumsum(lengths))).tolist()
        self._data = np.fromiter((n for v in table.values() for n in v), dtype=np.int32,
                                 count=int(lengths.sum()))

    def __contains__(self, key: str) -> bool:
        return key in self._slot

    def get(self, key: str) -> np.ndarray[Any, Any] | None:
        i = self._slot.get(key)
        if i is None:
            return None
        return self._data[self._starts[i]:self._starts[i + 1]]

    def __len__(self) -> int:
        return len(self._slot)


class ScreeningIndex:
    """All names of a set of list entries, ready to screen against."""

    def __init__(self, entries: list[ListEntry]) -> None:
        self.entries = entries
        self.names: list[tuple[int, str, Normalised]] = []
        postings: dict[str, list[int]] = defaultdict(list)
        df: Counter[str] = Counter()
        for ei, entry in enumerate(entries):
            for name in dict.fromkeys(entry.names()):
                norm = normalise(name)
                if not norm.tokens and not norm.cjk:
                    continue
                ni = len(self.names)
                self.names.append((ei, name, norm))
                for key in _keys(norm.tokens):
                    postings[key].append(ni)
                for ch in set(norm.cjk):
                    postings["c:" + ch].append(ni)
                df.update(set(norm.tokens))
        self.postings = _Postings(postings)
        total = max(len(self.names), 1)
        self.idf = {t: math.log((total + 1) / (n + 0.5)) for t, n in df.items()}
        self.max_idf = math.log((total + 1) / 0.5)
        # per name: token weights and their total, computed once
        self._key_cache: dict[tuple[str, bool], tuple[bool, tuple[str, ...]]] = {}
        self.name_weights = [tuple(self.weight(t) for t in norm.tokens)
                             for _, _, norm in self.names]

    def weight(self, token: str) -> float:
        w = self.idf.get(token, self.max_idf)
        return w * (0.5 if len(token) <= 2 else 1.0)

    def _held_keys(self, text: str, joined: bool) -> tuple[bool, tuple[str, ...]]:
        """Whether a query token (or two joined tokens) is in the index as such, and those of
        its blocking keys the index holds - the same for every query, so kept. A token
        found as such brings no deletion keys: they would add only noise."""
        cache = self._key_cache
        found = cache.get((text, joined))
        if found is None:
            exact = "t:" + text in self.postings
            keys = ["t:" + text]
            if joined:
                keys.append("p:" + text[:3])
            elif len(text) >= 4:
                keys += ["p:" + text[:3], "s:" + text[-3:]]
            if len(text) >= _MIN_DELETE and not exact:
                keys += ["d:" + d for d in _deletions(text)]
            if len(cache) > 200_000:
                cache.clear()
            found = cache[(text, joined)] = (exact, tuple(k for k in keys
                                                          if k in self.postings))
        return found

    def candidates(self, norm: Normalised) -> list[int]:
        """The names sharing the most (rarity-weighted) blocking keys with the query. A
        query token found as such brings no fuzzy keys (prefix, suffix, deletions): they
        would add only noise."""
        tokens = norm.tokens
        keys = {k for ch in set(norm.cjk) if (k := "c:" + ch) in self.postings}
        exact: set[str] = set()
        for text, joined in ((t, False) for t in tokens):
            found_as_such, held = self._held_keys(text, joined)
            keys.update(held)
            if found_as_such:
                exact.add(text)
        for a, b in zip(tokens, tokens[1:], strict=False):
            found_as_such, held = self._held_keys(a + b, True)
            keys.update(held)
            if found_as_such:
                exact.add(a + b)
        found: list[np.ndarray[Any, Any]] = []
        weights: list[float] = []
        for key in sorted(keys):  # sorted: the same candidates in every process
            kind = key[0]
            if kind in "ps" and any(t.startswith(key[2:]) if kind == "p" else t.endswith(key[2:])
                                    for t in exact):
                continue  # the token itself was found; its fuzzy keys add only noise
            post = self.postings.get(key)
            limit = _MAX_POSTINGS if kind in "tc" else _MAX_POSTINGS // 10
            if post is None or len(post) > limit:
                continue
            found.append(post)
            weights.append(self.weight(key[2:]) if kind == "t" else 1.0)
        if not found:
            return []
        # every name's summed key weight at once (vectorised; the hot loop of screening)
        hit, where = np.unique(np.concatenate(found), return_inverse=True)
        score = np.bincount(where, weights=np.repeat(weights, [len(f) for f in found]))
        top = np.argsort(-score, kind="stable")[:_TOP]  # best first; ties in name order
        return [int(i) for i in hit[top]]

    def screen(self, name: str, country: str | None = None,
               threshold: float = REVIEW) -> list[Hit]:
        """Hits at or above ``threshold``, best first, one per list entry. A Chinese name
        with more than one English rendering is screened in each; an entry keeps its best."""
        norm = normalise(name)
        best: dict[int, Hit] = {}
        for tokens in (norm.tokens, *norm.alternatives):
            variant = norm if tokens is norm.tokens else replace(norm, tokens=tokens)
            for ei, hit in self._screen_one(variant, country, threshold):
                if ei not in best or hit.score > best[ei].score:
                    best[ei] = hit
        return sorted(best.values(), key=lambda h: -h.score)

    def _screen_one(self, norm: Normalised, country: str | None,
                    threshold: float) -> list[tuple[int, Hit]]:
        cands = self.candidates(norm)
        if not cands:
            return []
        q_weights = tuple(self.weight(t) for t in norm.tokens)
        sims = self._similarities(norm.tokens, [self.names[ni][2].tokens for ni in cands])
        out = []
        for ni, sim in zip(cands, sims, strict=True):
            ei, listed, lnorm = self.names[ni]
            hit = self._score(norm, self.entries[ei], listed, lnorm, country,
                              self.name_weights[ni], q_weights, sim, threshold)
            if hit is not None:
                out.append((ei, hit))
        return out

    @staticmethod
    def _similarities(q_tokens: tuple[str, ...], names: list[tuple[str, ...]]
                      ) -> list[tuple[list[float], list[int]] | None]:
        """For every candidate name, each query token's best ``token_similarity`` with the
        name's tokens and the index of the first token reaching it - computed for all
        candidates at once: two RapidFuzz matrix calls (C) and segment-wise maxima."""
        flat = [t for ts in names for t in ts]
        if not q_tokens or not flat:
            return [None] * len(names)
        indel = cdist(q_tokens, flat, scorer=Indel.normalized_similarity, dtype=np.float64)
        jw = cdist(q_tokens, flat, scorer=JaroWinkler.normalized_similarity, dtype=np.float64)
        q_len = np.array([len(t) for t in q_tokens])
        f_len = np.array([len(t) for t in flat])
        jw -= 0.05 * (np.minimum(q_len[:, None], f_len[None, :]) <= 4)
        sim = np.maximum(indel, jw)  # equal tokens: Indel is exactly 1.0
        lengths = [len(ts) for ts in names]
        starts = np.cumsum([0, *lengths[:-1]])
        filled = [k for k, n in enumerate(lengths) if n]
        seg = np.asarray(starts)[filled]
        best = np.maximum.reduceat(sim, seg, axis=1)
        owner = np.repeat(np.arange(len(filled)), [lengths[k] for k in filled])
        col = np.arange(sim.shape[1])
        # the first column reaching the segment's maximum: the largest of (T - column)
        first = sim.shape[1] - np.maximum.reduceat(
            np.where(sim == best[:, owner], sim.shape[1] - col, -1), seg, axis=1)
        out: list[tuple[list[float], list[int]] | None] = [None] * len(names)
        best_l, first_l = best.T.tolist(), (first - seg).T.tolist()
        for i, k in enumerate(filled):
            out[k] = (best_l[i], first_l[i])
        return out

    def _score(self, q: Normalised, entry: ListEntry, listed: str, n: Normalised,
               country: str | None, n_weights: tuple[float, ...] | None = None,
               q_weights: tuple[float, ...] | None = None,
               sim: tuple[list[float], list[int]] | None = None,
               threshold: float | None = None) -> Hit | None:
        """The scored hit, or None when it falls below ``threshold`` (nothing explained)."""
        pairs: list[tuple[str, str, float]] = []
        q_weight = q_hit = 0.0
        for i, qt in enumerate(q.tokens):
            w = q_weights[i] if q_weights is not None else self.weight(qt)
            q_weight += w
            best, best_j = (sim[0][i], sim[1][i]) if sim is not None else (0.0, -1)
            if best <= 0.0:
                best, best_j = 0.0, -1
            if best >= TOKEN_FLOOR:
                q_hit += w * best
                pairs.append((qt, n.tokens[best_j], best))
        nw = n_weights if n_weights is not None else tuple(self.weight(t) for t in n.tokens)
        n_weight = sum(nw)
        n_hit = sum(nw[j] * s for j, s in
                    {n.tokens.index(nt): s for _, nt, s in pairs}.items())
        recall = q_hit / q_weight if q_weight else 0.0
        precision = n_hit / n_weight if n_weight else 0.0
        score = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        joined = None
        if (score < MATCH and q.compact and n.compact and len(q.compact) >= 4
                and q.tokens != n.tokens):
            # the same letters cut into words differently ("Gazprom Bank" / "Gazprombank")
            j_sim = Indel.normalized_similarity(q.compact, n.compact)
            if j_sim > score and j_sim >= 0.95:
                score = joined = j_sim
        chars = None
        if q.cjk and n.cjk:
            # Levenshtein over characters: an inserted place name (a subsidiary) costs more
            # than it would under Indel, so it lands in review, not match.
            chars = Levenshtein.normalized_similarity(q.cjk, n.cjk)
            score = max(score, chars)
        mismatch = bool(country and entry.country and country != entry.country)
        if mismatch:
            score *= COUNTRY_MISMATCH_FACTOR
        score = min(score, 1.0)
        if threshold is not None and score < threshold:
            return None
        evidence: list[str] = []
        if joined is not None:
            evidence.append(f"joined/split tokens: '{q.compact}' ~ '{n.compact}'")
        if chars is not None:
            evidence.append(f"Chinese characters compared: {q.cjk} ~ {n.cjk} ({chars:.2f})")
        elif q.cjk:
            evidence.append("Chinese characters compared through pinyin and translated "
                            "organisation words")
        if mismatch:
            evidence.append(f"country differs ({country} vs {entry.country}): score lowered")
        elif country and entry.country == country:
            evidence.append(f"country agrees ({country})")
        matched_q = {p[0] for p in pairs}
        matched_n = {p[1] for p in pairs}
        return Hit(entry=entry, matched_name=listed, score=score,
                   matched_tokens=tuple(pairs),
                   unmatched_query=tuple(t for t in q.tokens if t not in matched_q),
                   unmatched_name=tuple(t for t in n.tokens if t not in matched_n),
                   evidence=tuple(evidence))
