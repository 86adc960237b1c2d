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

import gc
import math
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import accumulate, chain, repeat
from operator import add
from typing import Any

import numpy as np
from rapidfuzz.distance import Indel, JaroWinkler, Levenshtein
from rapidfuzz.process import cdist
from scipy.sparse import csr_matrix

from chokepoint.screening.bulk import NameTokens, match_tokens, pair_similarities
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
_BATCH = 16  # from this many queries on, screening works in bulk (bulk.py, sparse product)
_MARGIN = 1e-9  # a bound computed in another order of additions may be this much low
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
            "band": self.band, "country": e.country,
            "footnotes": None if e.footnotes is None else list(e.footnotes),
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
    """Blocking key -> the names holding it, as the rows of one sparse key x name matrix
    (SciPy CSR; keys in sorted order), so that a batch of queries finds its candidates in
    one sparse product: query x key weights times key x name."""

    def __init__(self, table: dict[str, list[int]], names: int) -> None:
        keys = sorted(table)
        self.slots = dict(zip(keys, range(len(keys)), strict=True))
        lists = [table[k] for k in keys]
        self.lengths = list(map(len, lists))
        self.starts = [0, *accumulate(self.lengths)]
        starts = np.array(self.starts, dtype=np.int64)
        data = np.fromiter(chain.from_iterable(lists), dtype=np.int32, count=self.starts[-1])
        self.matrix = csr_matrix((np.ones(len(data)), data, starts),
                                 shape=(len(keys), names))
        self.keys = len(keys)
        # the token keys ("t:...") are one run of rows, keys being sorted
        first = bisect_left(keys, "t:")
        self.token_keys = keys[first:bisect_left(keys, "t;")]  # ";" follows ":"
        self.first_token_row = first

    def slot(self, key: str) -> int | None:
        return self.slots.get(key)


_Keys = tuple[tuple[int, ...], tuple[int, ...]]  # a query piece's key rows, and its noise rows


class _Weights(dict[str, float]):
    """Token -> weight, each computed once (bounded: new tokens keep coming)."""

    def __init__(self, weigh: Callable[[str], float]) -> None:
        super().__init__()
        self._weigh = weigh

    def __missing__(self, token: str) -> float:
        if len(self) > 200_000:
            self.clear()
        w = self[token] = self._weigh(token)
        return w


class ScreeningIndex:
    """All names of a set of list entries, ready to screen against."""

    def __init__(self, entries: list[ListEntry]) -> None:
        collecting = gc.isenabled()
        gc.disable()  # a million small containers, none cyclic: the collector only slows it
        try:
            self._build(entries)
        finally:
            if collecting:
                gc.enable()

    def _build(self, entries: list[ListEntry]) -> None:
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
        self.postings = _Postings(postings, len(self.names))
        total = max(len(self.names), 1)
        self.idf = {t: math.log((total + 1) / (n + 0.5)) for t, n in df.items()}
        self.max_idf = math.log((total + 1) / 0.5)
        self._weights = _Weights(self._weigh)
        # each blocking key's weight in a query: a token's weight, 1 for the fuzzy keys
        rows = self.postings
        self._key_weight = np.ones(rows.keys)
        self._key_weight[rows.first_token_row:rows.first_token_row + len(rows.token_keys)] = [
            self._weigh(key[2:]) for key in rows.token_keys]
        # the blocking keys of each listed token, and of each pair of adjacent listed tokens
        # run together, as a query holding it gets them (most query tokens are listed
        # ones); those of other query tokens are kept as they come
        self._listed_keys: dict[tuple[str, bool], _Keys] = {}
        for key in self.postings.token_keys:
            piece = (key[2:], key[2:] not in self.idf)  # not a token: two run together
            self._listed_keys[piece] = self._keys_of(*piece)
        self._key_cache: dict[tuple[str, bool], _Keys] = {}
        # per name: token weights and their total, computed once
        self.name_weights = [tuple(self.weight(t) for t in norm.tokens)
                             for _, _, norm in self.names]
        # the same, flat, for screening in bulk; and the length of each name's letters run
        # together
        self._tokens = NameTokens.of([norm.tokens for _, _, norm in self.names],
                                     self.name_weights)
        self._compact_len = np.array([len(norm.compact) for _, _, norm in self.names])

    def clear_caches(self) -> None:
        """Forget the blocking keys and weights of the tokens seen so far (they are
        computed again when needed; for benchmarks of cold screening)."""
        self._key_cache.clear()
        self._weights.clear()

    def weight(self, token: str) -> float:
        return self._weights[token]

    def _weigh(self, token: str) -> float:
        """A token's weight: its rarity (idf, the rarest for a token on no list), halved
        for one- and two-letter tokens."""
        w = self.idf.get(token, self.max_idf)
        return w * (0.5 if len(token) <= 2 else 1.0)

    def _held_keys(self, text: str, joined: bool) -> _Keys:
        """A query token's (or two joined tokens') blocking keys that the index holds and
        that are selective enough, as matrix rows; and, for a token the index holds as
        such, the rows of the fuzzy keys (prefix, suffix) it makes noise of - the same for
        every query, so kept. A token found as such brings no deletion keys: they would add
        only noise."""
        cache = self._key_cache
        found = self._listed_keys.get((text, joined)) or cache.get((text, joined))
        if found is None:
            found = self._keys_of(text, joined)
            if len(cache) > 200_000:
                cache.clear()
            cache[(text, joined)] = found
        return found

    def _keys_of(self, text: str, joined: bool) -> _Keys:
        """``_held_keys``, computed."""
        slots, lengths = self.postings.slots, self.postings.lengths
        exact = "t:" + text in slots
        keys = ["t:" + text]
        if joined:
            keys.append("p:" + text[:3])
        elif len(text) >= 4:
            keys += ["p:" + text[:3], "s:" + text[-3:]]
        if len(text) >= _MIN_DELETE and not exact:  # _deletions, prefixed, in one go
            prefixed = "d:" + text
            keys.append(prefixed)
            keys += [prefixed[:i] + prefixed[i + 1:] for i in range(2, len(prefixed))]
        held = []
        for key in slots.keys() & keys:  # most keys of a new token are in no name
            slot = slots[key]
            limit = _MAX_POSTINGS if key[0] in "tc" else _MAX_POSTINGS // 10
            if lengths[slot] <= limit:  # a longer one is too common to tell names apart
                held.append(slot)
        covers: tuple[int, ...] = ()
        if exact:  # "p:abc" is noise when a token found as such starts with "abc";
            # "s:abc", when it ends with it
            noise = ["p:" + text[:n] for n in (1, 2, 3) if len(text) >= n]
            if len(text) >= 3:
                noise.append("s:" + text[-3:])
            covers = tuple(slots[k] for k in noise if k in slots)
        return tuple(held), covers

    def _pieces(self, norm: Normalised) -> tuple[list[int], list[int]]:
        """The matrix rows of a query's blocking keys (a row may come twice), and the rows
        of its noise keys. A query token found as such brings no fuzzy keys (prefix,
        suffix): they would add only noise."""
        tokens = norm.tokens
        held: list[int] = []
        noise: list[int] = []
        for ch in set(norm.cjk):
            c_slot = self.postings.slot("c:" + ch)
            if c_slot is not None and self.postings.lengths[c_slot] <= _MAX_POSTINGS:
                held.append(c_slot)
        listed, cache = self._listed_keys, self._key_cache
        for piece in chain(zip(tokens, repeat(False)),
                           zip(map(add, tokens, tokens[1:]), repeat(True))):
            rows, covers = listed.get(piece) or cache.get(piece) or self._held_keys(*piece)
            held += rows
            noise += covers
        return held, noise

    def _query_keys(self, norm: Normalised) -> tuple[list[int], list[float]]:
        """The matrix rows (in key order) and weights of a query's blocking keys."""
        held, noise = self._pieces(norm)
        slots = sorted(set(held).difference(noise))  # key order: the same sums everywhere
        return slots, self._key_weight[slots].tolist()

    def candidates_many(self, norms: list[Normalised]) -> list[list[int]]:
        """Each query's candidates: the ``_TOP`` names with the highest summed weight of
        shared keys, best first, ties in name order. A batch is done in one sparse
        product; a single query (whose product would cost more to set up than to run)
        sums its keys' postings directly. Both add each name's key weights in key order,
        so they give the same floats and the same candidates."""
        if len(norms) < _BATCH:
            return [self._candidates_one(*self._query_keys(n)) for n in norms]
        held: list[int] = []
        noise: list[int] = []
        held_n: list[int] = []
        noise_n: list[int] = []
        for norm in norms:
            rows_of, noise_of = self._pieces(norm)
            held += rows_of
            noise += noise_of
            held_n.append(len(rows_of))
            noise_n.append(len(noise_of))
        # per query: its rows in key order, each once, without the noise rows
        width = self.postings.keys
        query = np.arange(len(norms), dtype=np.int64) * width
        keys = np.unique(np.repeat(query, held_n) + np.array(held, dtype=np.int64))
        if noise:
            keys = keys[~np.isin(keys, np.repeat(query, noise_n)
                                 + np.array(noise, dtype=np.int64))]
        rows, slots = np.divmod(keys, width)
        indptr = np.zeros(len(norms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(norms)), out=indptr[1:])
        queries = csr_matrix((self._key_weight[slots], slots.astype(np.int32), indptr),
                             shape=(len(norms), width))
        scores = queries @ self.postings.matrix  # per query and name: summed key weights
        ptr = scores.indptr.tolist()
        out: list[list[int]] = []
        for i in range(len(norms)):
            lo, hi = ptr[i], ptr[i + 1]
            n = hi - lo
            if not n:
                out.append([])
                continue
            names, score = scores.indices[lo:hi], scores.data[lo:hi]
            if n > _TOP:  # only the names tied with or above the _TOP-th best can be in
                keep = score >= np.partition(score, n - _TOP)[n - _TOP]
                names, score = names[keep], score[keep]
            out.append(names[np.lexsort((names, -score))[:_TOP]].tolist())
        return out

    def _candidates_one(self, slots: list[int], weights: list[float]) -> list[int]:
        if not slots:
            return []
        ptr, names = self.postings.starts, self.postings.matrix.indices
        found = [names[ptr[s]:ptr[s + 1]] for s in slots]
        hit, where = np.unique(np.concatenate(found), return_inverse=True)
        score = np.bincount(where, weights=np.repeat(weights, [len(f) for f in found]))
        top = np.argsort(-score, kind="stable")[:_TOP]  # best first; ties in name order
        return [int(i) for i in hit[top]]

    def screen(self, name: str, country: str | None = None,
               threshold: float = REVIEW) -> list[Hit]:
        """Hits at or above ``threshold``, best first, one per list entry. A Chinese name
        with more than one English rendering is screened in each; an entry keeps its best."""
        return self.screen_many([(name, country)], threshold)[0]

    def screen_many(self, queries: Sequence[tuple[str, str | None]],
                    threshold: float = REVIEW) -> list[list[Hit]]:
        """``screen`` for each (name, country), with the candidates of all found at once."""
        variants: list[tuple[int, Normalised]] = []
        for qi, (name, _) in enumerate(queries):
            norm = normalise(name)
            variants += [(qi, norm if tokens is norm.tokens else replace(norm, tokens=tokens))
                         for tokens in (norm.tokens, *norm.alternatives)]
        norms = [v for _, v in variants]
        found = self._hits_many(norms, self.candidates_many(norms),
                                [queries[qi][1] for qi, _ in variants], threshold)
        best: list[dict[int, Hit]] = [{} for _ in queries]
        for (qi, _), hits in zip(variants, found, strict=True):
            for ei, hit in hits:
                if ei not in best[qi] or hit.score > best[qi][ei].score:
                    best[qi][ei] = hit
        return [sorted(b.values(), key=lambda h: -h.score) for b in best]

    def _hits_many(self, norms: list[Normalised], cands: list[list[int]],
                   countries: list[str | None], threshold: float
                   ) -> list[list[tuple[int, Hit]]]:
        """The hits among each query's candidates: the token matches and score bounds of
        all candidates at once (``bulk``), then the full (explained) score, one by one,
        only for the candidates that can reach ``threshold``."""
        if len(norms) < _BATCH:
            return [self._hits_one(n, c, country, threshold)
                    for n, c, country in zip(norms, cands, countries, strict=True)]
        out: list[list[tuple[int, Hit]]] = [[] for _ in norms]
        c_all = np.array([ni for cs in cands for ni in cs], dtype=np.int64)
        if not len(c_all):
            return out
        n_c = np.array([len(cs) for cs in cands], dtype=np.int64)
        c_query = np.repeat(np.arange(len(norms)), n_c)  # the query of each candidate
        c_start = np.cumsum(n_c) - n_c
        weight = self._weights.__getitem__
        q_weights = [tuple(map(weight, n.tokens)) for n in norms]
        matches = match_tokens([n.tokens for n in norms], q_weights, c_all, c_query,
                               self._tokens, TOKEN_FLOOR)
        worth = matches.bound >= threshold - _MARGIN
        # the comparisons that can raise a score above its token part: letters run
        # together (Indel similarity >= 0.95 needs nearly equal lengths), and characters
        q_len = np.array([len(n.compact) if len(n.compact) >= 4 else -1000 for n in norms])
        n_len = self._compact_len[c_all]
        ql = q_len[c_query]
        near = np.flatnonzero((n_len > 0) & (np.abs(n_len - ql) <= 0.05 * (n_len + ql) + _MARGIN))
        if len(near):
            joined = pair_similarities([norms[i].compact for i in c_query[near].tolist()],
                                       [self.names[i][2].compact for i in c_all[near].tolist()])
            worth[near[joined >= 0.95 - _MARGIN]] = True
        for qn, norm in enumerate(norms):
            if norm.cjk:
                for k, ni in enumerate(cands[qn]):
                    if self.names[ni][2].cjk:
                        worth[c_start[qn] + k] = True
        for at in np.flatnonzero(worth).tolist():
            qn = int(c_query[at])
            ni = cands[qn][at - int(c_start[qn])]
            norm = norms[qn]
            ei, listed, lnorm = self.names[ni]
            hit = self._score(norm, self.entries[ei], listed, lnorm, countries[qn],
                              self.name_weights[ni], q_weights[qn],
                              matches.of(at, len(norm.tokens)), threshold)
            if hit is not None:
                out[qn].append((ei, hit))
        return out

    def _hits_one(self, norm: Normalised, cands: list[int], country: str | None,
                  threshold: float) -> list[tuple[int, Hit]]:
        """The hits among one query's candidates, each scored (``_hits_many`` for few
        queries: the bulk steps cost more to set up than they save)."""
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
        matched: dict[int, float] = {}  # name token (its first place) -> similarity
        q_weight = q_hit = 0.0
        for i, qt in enumerate(q.tokens):
            w = q_weights[i] if q_weights is not None else self.weight(qt)
            q_weight += w
            best, best_j = (sim[0][i], sim[1][i]) if sim is not None else (0.0, -1)
            if best >= TOKEN_FLOOR:
                # best_j is the first name token reaching ``best``, so the first place of
                # that token in the name (an equal token earlier would reach it too)
                q_hit += w * best
                pairs.append((qt, n.tokens[best_j], best))
                matched[best_j] = best
        nw = n_weights if n_weights is not None else tuple(self.weight(t) for t in n.tokens)
        n_weight = sum(nw)
        n_hit = sum(nw[j] * s for j, s in matched.items())
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
