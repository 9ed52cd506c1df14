#!/usr/bin/env python3
"""Writes casing_cases.json: what CPython's str methods give for every cased character of Latin-1
Supplement, Latin Extended-A/B, IPA, Greek, Cyrillic, Latin Extended Additional and Greek
Extended (a sample of the uncased ones, and words with context-dependent results: final sigma,
full mappings, titlecase digraphs), the expected values of chat_test.cpp's casing test.

usage: make_casing_cases.py > casing_cases.json
(each case: [s, s.lower(), s.upper(), s.title(), s.capitalize(), s.swapcase(), s.islower(),
s.isupper(), s|title]; Jinja's title filter is not str.title: it upper-cases the first character
of each run after [-\\s({[<] and lower-cases the rest, so it comes from jinja2 itself)
"""
import json
import sys

from jinja2.filters import do_title

RANGES = [(0x00A0, 0x02AF), (0x0370, 0x03FF), (0x0400, 0x052F), (0x1E00, 0x1FFF)]
WORDS = [
    "ΟΔΥΣΣΕΥΣ", "ὈΔΥΣΣΕΎΣ", "ΣΑ Σ Σ. aΣ'b aΣ'", "Σ", "ΑΣ.Β", "straße", "ǆemal ǅEMAL ǄEMAL",
    "İstanbul", "ﬁnal ﬂoor", "ŉ", "пРИВЕТ мир", "ÀÉÎÕÜ àéîõü ÿ", "1a 2B c3D", "they're bill's",
    "hello world", "Héllo, wörld", "ΐ ΰ և", "ǰ", "ᾳ ᾼ", "", "123", "a\u0345b", "ϴ ϑ ϕ ϖ",
]


def case(s):
    return [s, s.lower(), s.upper(), s.title(), s.capitalize(), s.swapcase(), s.islower(),
            s.isupper(), do_title(s)]


def cased(c):
    return c.lower() != c or c.upper() != c or c.title() != c or c.islower() or c.isupper()


chars = [chr(c) for lo, hi in RANGES for c in range(lo, hi + 1)]
# Each cased character alone; the words exercise the contexts (after a cased character, title
# and capitalize lower it; sigma's form depends on its neighbours).
cases = [case(c) for c in chars if cased(c)]
cases += [case(c) for c in chars if not cased(c)][::16]  # some uncased ones: unchanged
cases += [case(w) for w in WORDS]
# One case a line: [s, lower, upper, title, capitalize, swapcase, islower, isupper, |title].
sys.stdout.write('{"python": "%s", "cases": [\n' % sys.version.split()[0])
sys.stdout.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
sys.stdout.write("\n]}\n")
