"""Screening accuracy and speed, against a plain RapidFuzz token_set_ratio baseline.

Run: .venv/bin/python bench/bench_screening.py [--n 2000] [--seed 7]

The labelled set is built here, reproducibly (seeded):
- positives: perturbed SDN names and aliases (one typo, tokens joined or split, tokens
  reordered, legal form changed), and the Chinese-character names of listed Chinese entities
  screened against an index that holds only their English names;
- negatives: near misses (a listed name with its most distinctive token replaced), names
  made only of generic words, and other companies sharing generic words with listed ones.
A query counts as found when the right entry is the top hit at or above the review band;
a negative counts as a false alarm when any hit reaches the review band. Figures go to stdout.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from rapidfuzz import fuzz, process

from chokepoint.rules.loader import default_rules
from chokepoint.screening.lists import ListEntry, load_list
from chokepoint.screening.match import MATCH, REVIEW, ScreeningIndex
from chokepoint.screening.normalise import LEGAL_FORMS, normalise
from chokepoint.screening.service import snapshot_entries

ROOT = Path(__file__).resolve().parents[1]
SDN = ROOT.parent / "shared" / "data" / "ofac_sdn_2021" / "sdn.csv"
GENERIC = ["International", "Trading", "Global", "Group", "Technology", "Industrial",
           "Development", "General", "United", "Services", "Holding", "Import", "Export",
           "Commercial", "Enterprise", "Investment", "Company"]
LEGAL = [" Co., Ltd.", " Limited", " LLC", " Corporation", " Inc.", " GmbH", " JSC", ""]


def typo(rng: random.Random, word: str) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice("sdi")
    c = rng.choice("abcdefghijklmnopqrstuvwxyz")
    if kind == "s":
        return word[:i] + c + word[i + 1:]
    if kind == "d":
        return word[:i] + word[i + 1:]
    return word[:i] + c + word[i:]


def perturb(rng: random.Random, name: str) -> str:
    words = [w for w in name.replace(",", " ").split() if w]
    kind = rng.choice(["typo", "join", "split", "reorder", "legal"])
    if kind == "typo":
        j = max(range(len(words)), key=lambda k: len(words[k]))
        words[j] = typo(rng, words[j])
    elif kind == "join" and len(words) >= 2:
        j = rng.randrange(len(words) - 1)
        words[j:j + 2] = [words[j] + words[j + 1]]
    elif kind == "split":
        j = max(range(len(words)), key=lambda k: len(words[k]))
        w = words[j]
        if len(w) >= 8:
            words[j:j + 1] = [w[: len(w) // 2], w[len(w) // 2:]]
    elif kind == "reorder" and len(words) >= 2:
        rng.shuffle(words)
    else:
        words = [w for w in words if w.lower().strip(".") not in LEGAL_FORMS]
        return " ".join(words) + rng.choice(LEGAL)
    return " ".join(words)


def build(rng: random.Random, entries: list[ListEntry], n: int, index: ScreeningIndex
          ) -> tuple[list[tuple[str, str]], list[str]]:
    usable = [e for e in entries if e.extra.get("type", "") != "individual"
              and len(normalise(e.name).tokens) >= 2]
    positives = []
    for e in rng.sample(usable, min(n, len(usable))):
        source = rng.choice(e.names())
        positives.append((perturb(rng, source), e.entry_id))
    negatives = []
    for e in rng.sample(usable, min(n // 2, len(usable))):
        toks = e.name.split()
        # replace the most distinctive word (the rarest in the list), not a legal form
        j = max(range(len(toks)), key=lambda k: index.weight(
            normalise(toks[k]).tokens[0]) if normalise(toks[k]).tokens else -1.0)
        toks[j] = rng.choice(["Zephyrine", "Quorvath", "Lindqvist", "Marabelle", "Tovrenko"])
        negatives.append(" ".join(toks))
    for _ in range(n // 4):
        negatives.append(" ".join(rng.sample(GENERIC, rng.randint(1, 3))) + rng.choice(LEGAL))
    for _ in range(n // 4):
        negatives.append(rng.choice(["Zephyr", "Marlow", "Quill", "Harbor", "Tessel"]) + " "
                         + " ".join(rng.sample(GENERIC, 2)) + rng.choice(LEGAL))
    return positives, negatives


def speed_list(rng: random.Random, entries: list[ListEntry], index: ScreeningIndex,
               n: int) -> list[str]:
    """``n`` distinct names, half of them perturbed listed names, half near misses and
    generic company names (the labelled set's mix, without its labels)."""
    names: dict[str, None] = {}
    while len(names) < n:
        positives, negatives = build(rng, entries, 2000, index)
        for q in (*(q for q, _ in positives), *negatives):
            names.setdefault(q)
    return list(names)[:n]


def _hit(found: object, want: str) -> bool:
    return found == want or (isinstance(found, set) and want in found)


def evaluate(name: str, find, positives, negatives) -> None:  # type: ignore[no-untyped-def]
    tp = sum(1 for q, want in positives if _hit(find(q), want))
    fn = len(positives) - tp
    fp = sum(1 for q in negatives if find(q) is not None)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(f"{name:34s} recall {recall:.3f}  precision {precision:.3f}  "
          f"(found {tp}/{len(positives)}, false alarms {fp}/{len(negatives)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed-names", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5, help="cold runs of screen_many")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    entries = load_list(SDN)
    start = time.perf_counter()
    index = ScreeningIndex(entries)
    print(f"index over the SDN file: {len(entries)} entries, {len(index.names)} names, "
          f"built in {time.perf_counter() - start:.2f} s")
    positives, negatives = build(rng, entries, args.n, index)

    def ours(q: str) -> set[str] | None:
        hits = index.screen(q, None, REVIEW)
        # entries tied at the top score (lists repeat aliases across entries)
        return {h.entry.entry_id for h in hits if h.score == hits[0].score} if hits else None

    names = [(n, index.entries[ei].entry_id) for ei, n, _ in index.names]
    choices = [n for n, _ in names]

    def baseline(q: str) -> str | None:
        best = process.extractOne(q, choices, scorer=fuzz.token_set_ratio,
                                  score_cutoff=REVIEW * 100)
        return names[best[2]][1] if best else None

    print(f"labelled set: {len(positives)} true pairs, {len(negatives)} near misses "
          f"(seed {args.seed}); bands: match >= {MATCH}, review >= {REVIEW}")
    evaluate("chokepoint (review band)", ours, positives, negatives)
    evaluate("rapidfuzz token_set_ratio >= 75", baseline, positives[:400], negatives[:200])
    sample = [q for q, _ in positives[:200]] + negatives[:100]
    start = time.perf_counter()
    for q in sample:
        baseline(q)
    print(f"  baseline speed: {len(sample) / (time.perf_counter() - start):,.0f} names/s "
          f"(extractOne over all {len(choices):,} names, one process)")

    # Chinese-character names against English-only entries (the translation path)
    rules = default_rules()
    from datetime import date

    snap = [e for e in snapshot_entries(rules, date(2025, 6, 1))]
    english_only = [ListEntry(e.list, e.entry_id, e.name,
                              tuple(a for a in e.aliases if not any("\u4e00" <= c <= "\u9fff"
                                                                    for c in a)), e.country)
                    for e in snap]
    cn_pairs = [(a, e.entry_id) for e in snap for a in e.aliases
                if any("\u4e00" <= c <= "\u9fff" for c in a)]
    cn_index = ScreeningIndex(english_only + entries)
    found = sum(1 for q, want in cn_pairs
                if (h := cn_index.screen(q, None, REVIEW)) and h[0].entry.entry_id == want)
    print(f"Chinese names vs English-only entries: {found}/{len(cn_pairs)} found in the review "
          "band")
    cn_base = [(n, e.entry_id) for e in english_only + entries for n in e.names()]
    base_found = sum(1 for q, want in cn_pairs
                     if (b := process.extractOne(q, [n for n, _ in cn_base],
                                                 scorer=fuzz.token_set_ratio, score_cutoff=75))
                     and cn_base[b[2]][1] == want)
    print(f"  baseline token_set_ratio: {base_found}/{len(cn_pairs)}")
    # Chinese names of companies on no list (near misses by industry, place or wording)
    cn_negatives = ["上海华虹宏力半导体制造有限公司", "华润微电子有限公司",
                    "中国移动通信集团有限公司", "比亚迪股份有限公司",
                    "腾讯科技（深圳）有限公司", "深圳市大疆创新科技有限公司",
                    "北京华大九天科技股份有限公司", "上海新昇半导体科技有限公司",
                    "武汉光迅科技股份有限公司", "青岛海尔智家股份有限公司",
                    "福建省电子信息集团有限责任公司", "天津中环半导体股份有限公司"]
    alarms = [q for q in cn_negatives if cn_index.screen(q, None, REVIEW)]
    print(f"Chinese names of unlisted companies: {len(alarms)}/{len(cn_negatives)} false alarms"
          + (f" ({', '.join(alarms)})" if alarms else ""))
    found_all = sum(1 for q, want in positives if want in (ours(q) or set()))
    print(f"all true pairs, Chinese-character names included: recall "
          f"{(found_all + found) / (len(positives) + len(cn_pairs)):.3f} "
          f"({found_all + found}/{len(positives) + len(cn_pairs)})")

    queries = [q for q, _ in positives] + negatives
    start = time.perf_counter()
    for q in queries:
        index.screen(q, None, REVIEW)
    elapsed = time.perf_counter() - start
    print(f"speed: {len(queries) / elapsed:,.0f} names/s screened against the SDN file "
          f"(one process)")
    from chokepoint.screening.parallel import screen_many

    # a longer list of distinct names (screen_many screens a repeated name only once, so
    # a list with repeats would flatter it)
    many = [(q, None) for q in speed_list(random.Random(args.seed + 1), entries, index,
                                          args.speed_names)]
    # each run cold: the names and their tokens new to the caches (this machine's speed
    # drifts by 10-20 % from minute to minute, so several runs and their median)
    rates = []
    for _ in range(args.runs):
        normalise.cache_clear()
        index.clear_caches()
        start = time.perf_counter()
        out = screen_many(index, many, REVIEW, workers=2)
        rates.append(len(many) / (time.perf_counter() - start))
    print(f"speed: {statistics.median(rates):,.0f} names/s with screen_many on 2 processes, "
          f"median of {len(rates)} cold runs ({', '.join(f'{r:,.0f}' for r in rates)}; "
          f"{len(many):,} distinct names; {sum(map(len, out)):,} hits)")


if __name__ == "__main__":
    main()
