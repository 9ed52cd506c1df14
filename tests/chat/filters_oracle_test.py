#!/usr/bin/env python3
"""Jinja's filters, one small template each, rendered by `qkv template` and by Python Jinja2 (the
oracle, Debian python3-jinja2, set up as transformers sets it up); outputs must be identical, and
where jinja2 raises, qkv must fail with jinja2's message.

usage: filters_oracle_test.py QKV_BINARY
(exit 77 = skipped: python3-jinja2 absent)
"""
import json
import pathlib
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import chat_template_oracle_test as oracle_env  # noqa: E402  (make_env: transformers' setup)

VARS = {
    "users": [{"name": "ann", "city": "Oslo", "age": 31}, {"name": "Bob", "city": "oslo", "age": 25},
              {"name": "cid", "city": "Rome", "age": 31}, {"name": "dee", "age": 40},
              {"name": "eve", "city": None, "age": 25}],
    "text": "The quick brown fox jumps over the lazy dog, twice: fox-dog_cat 42 héllo wörld",
    "nums": [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5],
    "d": {"b": 2, "A": 1, "c": None, "z z": "x&y"},
}

TEMPLATES = [
    # wordcount counts \w+ runs as Jinja's regular expression does
    "{{ text|wordcount }}|{{ 'a-b_c d.e'|wordcount }}|{{ ''|wordcount }}|{{ 'héllo wörld ½ ٣'|wordcount }}",
    # center: str.center
    "[{{ 'abc'|center(9) }}][{{ 'abcd'|center(9) }}][{{ 'ab'|center(1) }}][{{ 'é'|center(4) }}][{{ 7|center(4) }}][{{ 'x'|center }}]",
    # truncate with its options and the leeway of 5
    "{{ text|truncate(20) }}|{{ text|truncate(20, true) }}|{{ text|truncate(20, false, '!') }}|{{ text|truncate(76) }}|{{ text|truncate(70, leeway=0) }}|{{ 'héllo wörld'|truncate(4, true, '', 0) }}|{{ text|truncate }}",
    "{{ 'abc'|truncate(2) }}",
    "{{ 'abcdefghijk'|truncate(5, leeway=-1) }}",
    # indent: first, blank, string width, other line breaks
    "[{{ 'a\nb\n\nc\n'|indent }}][{{ 'a\nb\n\nc'|indent(2, true) }}][{{ 'a\n\nb\n'|indent(2, blank=true) }}][{{ 'a\r\nb\rc'|indent('> ') }}][{{ ''|indent(first=true) }}][{{ 'x'|indent(width=3, first=true) }}]",
    # batch and slice, with and without fill_with
    "{{ nums|batch(3)|list }}|{{ nums|batch(4, 'X')|list }}|{{ nums|batch(20)|list }}|{{ []|batch(2)|list }}|{{ 'abcde'|batch(2)|list }}",
    "{{ nums|slice(3)|list }}|{{ nums|slice(4, 0)|list }}|{{ nums|slice(20)|list }}|{{ [1, 2]|slice(1)|list }}|{{ []|slice(2)|list }}",
    "{{ nums|slice(0)|list }}",
    "{% for col in nums|slice(3) %}<{{ col|join(',') }}>{% endfor %}",
    # groupby: attribute path, default, case sensitivity, grouper/list and unpacking
    "{% for g in users|groupby('age') %}{{ g.grouper }}:{{ g.list|map(attribute='name')|join(',') }};{% endfor %}",
    "{% for city, us in users|groupby('city', default='?') %}{{ city }}={{ us|length }};{% endfor %}",
    "{% for city, us in users|selectattr('city')|groupby('city', case_sensitive=true) %}{{ city }}={{ us|length }};{% endfor %}",
    "{{ users|selectattr('city')|groupby('city')|map(attribute='grouper')|list }}|{{ [[1, 'a'], [0, 'b'], [1, 'c']]|groupby(0)|list }}|{{ []|groupby('x')|list }}",
    "{{ users|groupby('city') }}",
    # dictsort and sum with attribute / start
    "{{ {'b': 2, 'A': 1, 'c': 0}|dictsort }}|{{ {'b': 2, 'A': 1, 'c': 0}|dictsort(true) }}|{{ {'b': 2, 'A': 1, 'c': 0}|dictsort(by='value') }}|{{ {'b': 2, 'A': 1}|dictsort(reverse=true) }}",
    "{{ users|sum(attribute='age') }}|{{ nums|sum(start=10) }}|{{ [0.5, 1]|sum }}|{{ [[1], [2]]|sum(start=[]) }}",
    # unique with case sensitivity and attribute
    "{{ ['a', 'A', 'b', 'B', 'a']|unique|list }}|{{ ['a', 'A', 'b']|unique(true)|list }}|{{ users|unique(attribute='age')|map(attribute='name')|list }}|{{ ['Straße', 'STRASSE']|unique|list }}",
    # urlencode of strings, dicts and pairs
    "{{ 'a b&c/d?é=ü~_.-'|urlencode }}|{{ {'q': 'x y', 'n': 1, 'é': 'a/b'}|urlencode }}|{{ [('a', 1), ('b', 'c d')]|urlencode }}|{{ 42|urlencode }}",
    # filesizeformat, decimal and binary
    "{{ 0|filesizeformat }}|{{ 1|filesizeformat }}|{{ 999|filesizeformat }}|{{ 1000|filesizeformat }}|{{ 1500|filesizeformat }}|{{ 123456789|filesizeformat }}|{{ 1024|filesizeformat(true) }}|{{ 3000000|filesizeformat(true) }}|{{ 1e30|filesizeformat }}|{{ '2048'|filesizeformat }}|{{ 2.5|filesizeformat }}|{{ -5|filesizeformat }}",
    "{{ 'big'|filesizeformat }}",
    "{{ 'inf'|filesizeformat }}|{{ 'nan'|filesizeformat }}|{{ 1e27|filesizeformat }}|{{ 999999|filesizeformat }}|{{ 1023|filesizeformat(binary=true) }}|{{ true|filesizeformat }}",
    "{{ '-inf'|filesizeformat }}",
    "{{ none|filesizeformat }}",
    "{{ 5|truncate }}",
    "{{ [1, 2, 3]|batch(0)|list }}|{{ [1, 2, 3]|batch(-1, 0)|list }}|{{ [1, 2, 3]|slice(-2)|list }}",
    "{{ [[1, 2, 3]]|urlencode }}",
    # xmlattr: None skipped, values escaped, autospace
    "<a{{ {'href': 'x?a=1&b=\"2\"', 'class': 'c', 'skip': none, 'n': 3}|xmlattr }}>|<b{{ {'id': 1}|xmlattr(false) }}>|[{{ {}|xmlattr }}]",
    "{{ {'a b': 1}|xmlattr }}",
    "{{ '<a href=\"x\">&amp;</a>'|forceescape }}",
    # printf-style formatting, str % args and the format filter
    "{{ '%s|%5.2f|%-4s|%x|%r|%%|%(name)s' % ('é', 3.14159, 'ab', 255, 'q', 'n') if false else '%s|%5.2f|%-4s|%x|%r|%%' % ('é', 3.14159, 'ab', 255, 'q') }}|{{ '%(name)s is %(age)03d' % users[0] }}|{{ '%s-%s'|format('a', 2) }}|{{ '%(x)s'|format(x=d) }}",
    "{{ '%s %s' % ('a',) }}",
    # urlize
    "{{ 'see http://example.com, (www.python.org/a_(b)). me@example.org mailto:x@y.co foo.com:80/x http://[::1:2]/ &lt;x.org&gt;'|urlize }}|{{ 'www.x.com/long/path'|urlize(8, true, '_blank', 'me') }}|{{ 'tel:+1'|urlize(extra_schemes=['tel:']) }}",
    # wordwrap, striptags, pprint
    "{{ text|wordwrap(12) }}|{{ text|wordwrap(7, false, '<br>') }}|{{ 'a well-known mother-in-law re-enters the em--dash'|wordwrap(9) }}|{{ text|wordwrap(10, break_on_hyphens=false) }}",
    "{{ '<p>Hi <b>there</b></p> <!-- c --> &amp; &lt;x&gt; &copy &#65;&#x42; &#128;'|striptags }}|{{ d|pprint }}|{{ users|pprint }}|{{ text|pprint }}|{{ ((text ~ ' ') * 3)|pprint }}",
]


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    qkv = sys.argv[1]
    try:
        import jinja2
        import jinja2.ext  # noqa: F401
    except ImportError:
        print("python3-jinja2 absent: skipped")
        return 77
    env = oracle_env.make_env(jinja2)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        messages = tmp / "messages.json"
        messages.write_text("[]")
        for i, source in enumerate(TEMPLATES):
            try:
                want, want_ok = env.from_string(source).render(**VARS), True
            except Exception as e:  # noqa: BLE001 - any failure must be a failure in qkv too
                want, want_ok = str(e), False
            path = tmp / f"t{i}.jinja"
            path.write_text(source)
            p = subprocess.run([qkv, "template", "--template", str(path), "--messages",
                                str(messages), "--vars", json.dumps(VARS)], capture_output=True,
                               timeout=60)
            out, err = p.stdout.decode(), p.stderr.decode()
            if want_ok and (p.returncode != 0 or out != want):
                failures.append(f"{source}\n  jinja2: {want!r}\n  qkv:    {out!r} {err.strip()}")
            elif not want_ok and (p.returncode == 0 or want not in err):
                failures.append(f"{source}\n  jinja2 raises {want}\n  qkv:    rc {p.returncode} "
                                f"{out!r} {err.strip()}")
    for f in failures:
        print("FAIL", f)
    print(f"{len(TEMPLATES) - len(failures)}/{len(TEMPLATES)} templates as jinja2 renders them")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
