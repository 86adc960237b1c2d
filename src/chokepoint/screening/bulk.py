"""Screening many names at once: the token arithmetic of ``ScreeningIndex.screen_many``.

For a chunk of queries and their candidate names, every (query token, candidate token)
similarity is computed in two RapidFuzz pairwise calls, then each query token's best match
in each candidate, and an upper bound of each candidate's score - all in NumPy, with no
Python loop over candidates. The index then scores in full (and explains) only the
candidates whose bound reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np
from rapidfuzz.distance import Indel, JaroWinkler
from rapidfuzz.process import cpdist


def pair_similarities(a: Sequence[str], b: Sequence[str], a_len: np.ndarray | None = None,
                      b_len: np.ndarray | None = None) -> np.ndarray:
    """``match.token_similarity`` of each pair (a[i], b[i]), in bulk: two RapidFuzz
    pairwise calls (C). Without lengths, the plain Indel similarity (for names run
    together)."""
    indel = cpdist(a, b, scorer=Indel.normalized_similarity, dtype=np.float64)
    if a_len is None or b_len is None:
        return np.asarray(indel)
    jw = cpdist(a, b, scorer=JaroWinkler.normalized_similarity, dtype=np.float64)
    jw -= 0.05 * (np.minimum(a_len, b_len) <= 4)
    return np.asarray(np.maximum(indel, jw))  # equal tokens: Indel is exactly 1.0


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_BIN = np.full(128, len(_ALPHABET), dtype=np.int64)  # any other character: one shared bin
_BIN[[ord(c) for c in _ALPHABET]] = np.arange(len(_ALPHABET))


def char_counts(tokens: list[str]) -> np.ndarray:
    """Per token, how many times each character of ``_ALPHABET`` occurs in it, and how many
    other characters (all in one bin; the common count taken from it can only be too
    high, which keeps ``could_reach_floor`` a necessary condition)."""
    codes = np.frombuffer("".join(tokens).encode("utf-32-le"), dtype=np.uint32)
    bins = _BIN[np.minimum(codes, 127)]
    bins[codes > 127] = len(_ALPHABET)
    owner = np.repeat(np.arange(len(tokens)), [len(t) for t in tokens])
    width = len(_ALPHABET) + 1
    counts = np.bincount(owner * width + bins, minlength=len(tokens) * width
                         ).reshape(len(tokens), width)
    return counts.astype(np.uint16) if counts.max(initial=0) <= 0xFFFF else counts


def could_reach_floor(common: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether two tokens of lengths ``a`` and ``b`` sharing at most ``common`` characters
    can have a ``token_similarity`` of 0.8 (``TOKEN_FLOOR``) or more; a pair for which this
    is false is below the floor, where its similarity counts for nothing.

    Indel similarity is 2 LCS / (a + b), and LCS <= common: 0.8 needs 5 common >= 2 (a + b).
    Jaro-Winkler adds at most 4 x 0.1 of the gap to 1 to the Jaro similarity J, so 0.8
    needs J >= 2/3; J = (m/a + m/b + (m - t)/m) / 3 with m <= common matching characters,
    so it needs common/a + common/b >= 1."""
    total = a + b
    return np.asarray((5 * common >= 2 * total) | (common * total >= a * b))


def _pick(values: list[str], at: np.ndarray) -> list[str]:
    """``values`` at the positions ``at`` (in C: operator.itemgetter)."""
    if len(at) == 1:
        return [values[int(at[0])]]
    return list(itemgetter(*at.tolist())(values)) if len(at) else []


@dataclass(frozen=True)
class NameTokens:
    """Every listed name's tokens one after another (name i's from ``off[i]``, ``n[i]`` of
    them) as ids into ``vocab`` (each distinct token once, ``ids`` its inverse, ``length``
    the tokens' lengths), with their weights, and each name's total weight."""

    n: np.ndarray
    off: np.ndarray
    tid: np.ndarray
    vocab: list[str]
    ids: dict[str, int]
    length: np.ndarray
    letters: np.ndarray   # per vocab token: how many of each letter (char_counts)
    weight: np.ndarray
    total: np.ndarray

    @classmethod
    def of(cls, tokens: list[tuple[str, ...]], weights: list[tuple[float, ...]]
           ) -> NameTokens:
        counts = [len(t) for t in tokens]
        ids: dict[str, int] = {}
        tid = [ids.setdefault(t, len(ids)) for ts in tokens for t in ts]
        vocab = list(ids)
        return cls(n=np.array(counts, dtype=np.int64),
                   off=np.concatenate(([0], np.cumsum(counts))).astype(np.int64),
                   tid=np.array(tid, dtype=np.int64), vocab=vocab, ids=ids,
                   length=np.array([len(t) for t in vocab], dtype=np.int64),
                   letters=char_counts(vocab),
                   weight=np.array([w for ws in weights for w in ws]),
                   total=np.array([sum(ws) for ws in weights]))

    def query_ids(self, tokens: list[str]
                  ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
        """Ids for query tokens: a listed token's own, a new one (from ``len(vocab)``) for
        each other distinct token; with the new tokens, and every id's length and letter
        counts."""
        new: dict[str, int] = {}
        known, size = self.ids, len(self.vocab)
        out = [known[t] if t in known else new.setdefault(t, size + len(new)) for t in tokens]
        if not new:
            return np.array(out, dtype=np.int64), [], self.length, self.letters
        length = np.concatenate((self.length, np.array([len(t) for t in new], dtype=np.int64)))
        letters = np.concatenate((self.letters, char_counts(list(new))))
        return np.array(out, dtype=np.int64), list(new), length, letters


@dataclass(frozen=True)
class Matches:
    """For each candidate (all queries' candidates one after another) with tokens: each
    query token's best similarity with the candidate's tokens, and the index of the first
    candidate token reaching it; and an upper bound of the candidate's score."""

    best: list[float]     # per group (query token, candidate): the best similarity
    first: list[int]      # and the first candidate token reaching it
    group0: np.ndarray    # per candidate: its group for query token 0, or -1 (no tokens)
    step: np.ndarray      # per candidate: from one query token's group to the next
    bound: np.ndarray     # per candidate: upper bound of the token part of its score

    def of(self, at: int, query_tokens: int) -> tuple[list[float], list[int]] | None:
        """Candidate ``at``'s best similarity and first best token per query token."""
        g0 = int(self.group0[at])
        if g0 < 0:
            return None
        span = range(g0, g0 + int(self.step[at]) * query_tokens, int(self.step[at]))
        return [self.best[g] for g in span], [self.first[g] for g in span]


def match_tokens(queries: list[tuple[str, ...]], q_weights: list[tuple[float, ...]],
                 cands: np.ndarray, c_query: np.ndarray, names: NameTokens, floor: float
                 ) -> Matches:
    """Token matches of every candidate ``cands[k]`` (a name) of query ``c_query[k]``;
    token pairs below ``floor`` do not count.

    The bound: ``_score``'s recall as it is, and a precision that counts a name token
    each time a query token matches it (``_score`` counts it once). The country factor,
    which only lowers a score, is left out."""
    count = len(queries)
    n_q = np.array([len(q) for q in queries], dtype=np.int64)
    group0 = np.full(len(cands), -1, dtype=np.int64)
    step = np.zeros(len(cands), dtype=np.int64)
    bound = np.zeros(len(cands))
    filled = np.flatnonzero((names.n[cands] > 0) & (n_q[c_query] > 0))
    if not len(filled):
        return Matches([], [], group0, step, bound)
    f, fq = cands[filled], c_query[filled]
    length = names.n[f]
    # each query's candidate tokens, one after another
    m = np.bincount(fq, weights=length, minlength=count).astype(np.int64)
    tok_at = np.repeat(names.off[f] - (np.cumsum(length) - length), length)
    tok_at += np.arange(int(length.sum()))
    first_tok = np.zeros(len(tok_at), dtype=np.bool_)
    first_tok[np.cumsum(length) - length] = True
    # pairs: per query, per query token, per candidate token
    sizes = n_q * m
    pq = np.repeat(np.arange(count), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    ft = np.repeat(np.cumsum(m) - m, sizes) + local % m[pq]  # index into tok_at
    q_ids, q_new, length, letters = names.query_ids([t for q in queries for t in q])
    q_pos = np.repeat(np.cumsum(n_q) - n_q, sizes) + local // m[pq]
    # each distinct (query token, name token) pair compared once: a chunk's candidates
    # share most of their tokens (about one pair in three is distinct); and only the pairs
    # that can reach the floor (about one in four): the others count as 0, as they would
    # below the floor
    width = len(length)
    pair, again = np.unique(q_ids[q_pos] * width + names.tid[tok_at[ft]], return_inverse=True)
    left, right = np.divmod(pair, width)
    la, lb = length[left], length[right]
    near = np.flatnonzero(could_reach_floor(
        np.minimum(letters[left], letters[right]).sum(axis=1, dtype=np.int64), la, lb))
    left, right = left[near], right[near]
    vocab = names.vocab
    listed = int(np.searchsorted(left, len(vocab)))  # the new tokens' ids come last
    similar = np.zeros(len(pair))
    similar[near] = pair_similarities(
        _pick(vocab, left[:listed]) + _pick(q_new, left[listed:] - len(vocab)),
        _pick(vocab, right), la[near], lb[near])
    sim = similar[again]
    # one group per (query token, candidate): its best, and the first token reaching it
    starts = np.flatnonzero(first_tok[ft])
    best = np.maximum.reduceat(sim, starts)
    group = np.cumsum(first_tok[ft]) - 1
    pos = np.arange(len(sim)) - starts[group]
    first = -np.maximum.reduceat(np.where(sim == best[group], -pos, -(1 << 30)), starts)
    # a query's groups: for query token i, one per candidate with tokens, in order
    nf = np.bincount(fq, minlength=count)
    g_start = np.cumsum(n_q * nf) - n_q * nf
    g_query = np.repeat(np.arange(count), n_q * nf)
    g_local = np.arange(len(best)) - g_start[g_query]
    per = np.maximum(nf, 1)[g_query]
    g_cand = np.repeat(np.cumsum(nf) - nf, n_q * nf) + g_local % per  # index into filled
    qw = np.array([w for ws in q_weights for w in ws])[(np.cumsum(n_q) - n_q)[g_query]
                                                         + g_local // per]
    counted = np.where(best >= floor, best, 0.0)
    q_total = np.array([sum(ws) for ws in q_weights])[fq]
    n_total = names.total[f]
    zeros = np.zeros(len(filled))
    recall = np.divide(np.bincount(g_cand, weights=qw * counted, minlength=len(filled)),
                       q_total, out=zeros.copy(), where=q_total > 0)
    name_w = names.weight[names.off[f][g_cand] + first]
    precision = np.minimum(np.divide(
        np.bincount(g_cand, weights=name_w * counted, minlength=len(filled)),
        n_total, out=zeros.copy(), where=n_total > 0), 1.0)
    total = recall + precision
    bound[filled] = np.divide(2 * recall * precision, total, out=zeros.copy(),
                              where=total > 0)
    rank = np.arange(len(filled)) - np.repeat(np.cumsum(nf) - nf, nf)
    group0[filled] = g_start[fq] + rank
    step[filled] = nf[fq]
    return Matches(best.tolist(), first.tolist(), group0, step, bound)
