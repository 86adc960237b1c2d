"""Name normalisation for screening: Latin folding, legal forms, Chinese characters.

A name becomes a list of tokens. Latin script is folded (accents, case, punctuation) with
Unidecode; legal forms and stop words are dropped ("Co., Ltd.", "有限公司"). Chinese
characters are kept as a character string for comparison with Chinese list names, and are
also rendered as English organisation words (集团 Group, 科技 Technology, ...) plus pinyin for
the rest, so that a Chinese-character query can meet an English list name.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from unidecode import unidecode

LEGAL_FORMS = frozenset([
    "co", "company", "companies", "corp", "corporation", "inc", "incorporated", "ltd",
    "limited", "llc", "plc", "gmbh", "ag", "sa", "sas", "srl", "bv", "nv", "kk", "kabushiki",
    "kaisha", "jsc", "pjsc", "ojsc", "ooo", "zao", "oao", "pte", "pty", "lp", "llp", "sdn",
    "bhd", "spa", "ab", "oy", "as", "holdings", "holding", "the", "and", "of", "for", "de",
    "la", "del", "der", "und",
])

# Chinese organisation words and legal forms, longest first. Legal forms map to "".
CJK_WORDS: tuple[tuple[str, str], ...] = tuple(sorted({
    "股份有限公司": "", "有限责任公司": "", "有限公司": "", "公司": "", "集团": "group",
    "控股": "", "科技": "technology", "技术": "technology", "大学": "university",
    "研究所": "institute", "研究院": "institute", "研究中心": "research center",
    "中心": "center", "实验室": "laboratory", "电子": "electronics", "微电子": "microelectronics",
    "半导体": "semiconductor", "制造": "manufacturing",
    # a rendering company names use too, tried as an alternative ("|")
    "集成电路": "integrated circuit|semiconductor",
    "国际": "international", "装备": "equipment", "设备": "equipment", "存储": "memory",
    "中国科学院": "chinese academy of sciences", "科学院": "academy of sciences",
    "贸易": "trading", "进出口": "import export", "工业": "industry", "工程": "engineering",
    "材料": "materials", "光电": "optoelectronics", "通信": "communications",
    "航空": "aviation", "航天": "aerospace", "信息": "information", "软件": "software",
    "网络": "network", "智能": "intelligent", "精密": "precision", "仪器": "instruments",
    "创新": "innovation", "产业": "industry", "发展": "development",
    "研发": "r d", "北方": "northern", "南方": "south",
    # place names whose English form is not their pinyin; administrative suffixes
    "长江": "yangtze", "香港": "hong kong", "澳门": "macau", "市": "", "省": "",
    # place names written in English as their pinyin in one word
    "北京": "beijing", "上海": "shanghai", "天津": "tianjin", "重庆": "chongqing",
    "深圳": "shenzhen", "广州": "guangzhou", "武汉": "wuhan", "南京": "nanjing",
    "青岛": "qingdao", "合肥": "hefei", "无锡": "wuxi", "苏州": "suzhou", "杭州": "hangzhou",
    "成都": "chengdu", "西安": "xian", "厦门": "xiamen", "大连": "dalian", "长沙": "changsha",
    "福建": "fujian", "江苏": "jiangsu", "浙江": "zhejiang", "广东": "guangdong",
    "山东": "shandong", "湖北": "hubei", "四川": "sichuan", "安徽": "anhui", "辽宁": "liaoning",
    "珠海": "zhuhai", "宁波": "ningbo", "济南": "jinan", "郑州": "zhengzhou",
}.items(), key=lambda kv: -len(kv[0])))

ABBREVIATIONS = {
    "intl": "international", "int'l": "international", "tech": "technology",
    "techs": "technologies", "mfg": "manufacturing", "mfr": "manufacturer",
    "elec": "electronics", "eqpt": "equipment", "equip": "equipment", "univ": "university",
    "inst": "institute", "natl": "national", "dept": "department", "sci": "science",
    "semi": "semiconductor", "ind": "industry", "grp": "group",
}

_MAX_RENDERINGS = 4
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_NOISE = re.compile(r";\s*and any successor.*$|\s*\(?formerly[^)]*\)?", re.IGNORECASE)
_NON_WORD = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Normalised:
    """A name ready for matching."""

    tokens: tuple[str, ...]        # folded Latin / translated / pinyin tokens, no legal forms
    compact: str                   # every token joined, legal forms kept (joined/split tokens)
    cjk: str                       # the Chinese characters, legal forms removed
    # other English renderings of the Chinese words ("集成电路": "integrated circuit" or
    # "semiconductor" in company names), each a full token tuple like ``tokens``
    alternatives: tuple[tuple[str, ...], ...] = ()


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


def _cjk_to_tokens(text: str) -> tuple[list[list[str]], str]:
    """Translated words for the dictionary's organisation words and place names; every run
    of other characters becomes one pinyin word ("华为" -> "huawei", "鹏新旭" ->
    "pengxinxu"), as such names are written in English. Returns the segments, each with
    its renderings (most have one), and the kept characters."""
    from pypinyin import lazy_pinyin  # large dictionaries: loaded only for Chinese text

    words: list[list[str]] = []
    kept = []
    run: list[str] = []

    def flush() -> None:
        if run:
            words.append(["".join(lazy_pinyin("".join(run)))])
            run.clear()

    i = 0
    while i < len(text):
        for cn, en in CJK_WORDS:
            if text.startswith(cn, i):
                flush()
                words.append(en.split("|"))
                if en:
                    kept.append(cn)
                i += len(cn)
                break
        else:
            ch = text[i]
            if _CJK.match(ch):
                kept.append(ch)
                run.append(ch)
            i += 1
    flush()
    return words, "".join(kept)


@lru_cache(maxsize=200_000)
def normalise(name: str) -> Normalised:
    if name.isascii():  # the common case, in short: no Chinese, NFKC changes nothing
        text = _NOISE.sub("", name) if ";" in name or "ormerly" in name.lower() else name
        tokens = _latin_tokens(text)
        return Normalised(_clean(tokens), "".join(tokens), "")
    return _normalise_any(name)


def _normalise_any(name: str) -> Normalised:
    """``normalise`` for any script (the ASCII case is done in short before)."""
    text = unicodedata.normalize("NFKC", name)
    text = _NOISE.sub("", text)
    cjk = ""
    segments: list[list[str]] = []  # each: its renderings (space-separated tokens)
    if has_cjk(text):
        chunks = re.split(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)", text)
        for chunk in chunks:
            if not chunk:
                continue
            if has_cjk(chunk):
                words, kept = _cjk_to_tokens(chunk)
                segments.extend(words)
                cjk += kept
            else:
                segments.extend([t] for t in _latin_tokens(chunk))
    else:
        segments = [[t] for t in _latin_tokens(text)]
    renderings = [[]]  # type: list[list[str]]
    for options in segments:
        renderings = [r + o.split() for r in renderings for o in options][:_MAX_RENDERINGS]
    tokens = renderings[0]
    compact = "".join(tokens)
    return Normalised(_clean(tokens), compact, cjk, tuple(_clean(r) for r in renderings[1:]))


def _clean(tokens: list[str]) -> tuple[str, ...]:
    """Legal forms and stop words dropped, abbreviations spelt out."""
    return tuple(ABBREVIATIONS.get(t, t) for t in tokens if t and t not in LEGAL_FORMS)


def _latin_tokens(text: str) -> list[str]:
    folded = unidecode(text).lower()
    return [t for t in _NON_WORD.split(folded) if t]
