"""Write tests/data/pydoc_queries.json: labelled queries over the built-in corpus.

The built-in corpus (``pplx-codec embed pydoc-topics``) is the paragraphs of
Python's ``pydoc_data.topics``.  Each query below was written by hand from a
topic's title (the name ``help()`` knows it by) as a user would ask it, in
words of their own rather than the paragraph's; its relevant paragraphs were
then picked by reading that topic: those that answer the query (``topic:i`` or
``topic:i-j``, indices into ``pplx_codec.corpus.pydoc_paragraphs()[topic]``,
printed by ``--list TOPIC``).  No backend was consulted in choosing them.

The JSON names each relevant paragraph by the SHA-256 of its text (and shows
its first words), so ``tests/test_quality.py`` finds it in the corpus by
content: row numbers shift between Python versions, texts mostly do not.

    PYTHONPATH=src python tools/make_pydoc_queries.py            # writes the file
    PYTHONPATH=src python tools/make_pydoc_queries.py --list try  # a topic's paragraphs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from pplx_codec.corpus import pydoc_paragraphs

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "pydoc_queries.json"

# (query, relevant paragraphs)
QUERIES = [
    ("how do I catch an exception", "try:0,3-4,6 exceptions:0,4"),
    ("run cleanup code whether or not an error happened", "try:19,21-22"),
    ("raise an error with a custom message", "raise:0,2"),
    ("chain one exception to another as its cause", "raise:6-7,14"),
    ("check that a condition holds while debugging", "assert:0,2-5"),
    ("exit a loop early", "break:0-1 for:3 while:3"),
    ("skip the rest of this loop iteration", "continue:0"),
    ("repeat something as long as a condition is true", "while:0,2"),
    ("iterate over the items of a list", "for:0,2,4"),
    ("choose between alternatives with elif and else", "if:0,2"),
    ("a statement that does nothing, as a placeholder", "pass:0-2"),
    ("remove a variable name", "del:0-2"),
    ("change a module level variable from inside a function", "global:1 execmodel:15"),
    ("assign to a variable of the enclosing function", "nonlocal:1-2 execmodel:17"),
    ("small anonymous function in one expression", "lambda:1-3 function:14"),
    ("give a function default argument values", "function:8-10"),
    ("send a value back to the caller of a function", "return:0-3"),
    ("write a generator that produces values lazily", "yield:0,2"),
    ("decorate a function", "function:4-6"),
    ("define a new class", "class:0,2-3"),
    ("automatically open and close a resource with a with block", "with:0,2,8 context-managers:0-1"),
    ("what happens when entering and leaving a context manager", "context-managers:3,5 with:4-7,9"),
    ("import a module under a different name", "import:1,6-7"),
    ("import one name from a module", "import:10-16"),
    ("write a coroutine with async def and await", "async:1-2,4"),
    ("loop over an asynchronous iterator", "async:6-8"),
    ("take part of a list by start and end index", "slicings:0,3"),
    ("which values count as false", "truth:0-4"),
    ("combine conditions with and, or and not", "booleans:1-4"),
    ("check whether two variables are the same object", "comparisons:46"),
    ("chain comparisons like a < b < c", "comparisons:3"),
    ("raise a number to a power", "power:0,3-5"),
    ("shift the bits of an integer left or right", "shifting:2,4"),
    ("bitwise and, or and exclusive or of integers", "bitwise:2-4"),
    ("write a number in hexadecimal or binary", "integers:1,5"),
    ("complex numbers with an imaginary part", "imaginary:0,2"),
    ("split a string into words", "string-methods:67,72"),
    ("remove whitespace from both ends of a string", "string-methods:86"),
    ("convert text to upper case", "string-methods:100"),
    ("sort a list in place", "typesseq:46"),
    ("get a dictionary value with a default if the key is missing", "typesmapping:26,34"),
    ("show a float with two digits after the decimal point", "formatstrings:21,38"),
    ("control how my object is printed", "customization:16,18"),
    ("set a breakpoint in the debugger", "debugger:4,6,55-56"),
    ("step through a program one line at a time", "debugger:73-74"),
    ("show the source code around the current line in pdb", "debugger:82,84"),
    ("which words are reserved keywords", "identifiers:10-11"),
    ("which operators bind more tightly than others", "operator-summary:0"),
]


def parse(spec: str) -> list[tuple[str, int]]:
    out = []
    for part in spec.split():
        topic, _, idx = part.partition(":")
        for piece in idx.split(","):
            lo, _, hi = piece.partition("-")
            out += [(topic, i) for i in range(int(lo), int(hi or lo) + 1)]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", metavar="TOPIC", help="print a topic's paragraphs with their indices")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    paragraphs = pydoc_paragraphs()
    if args.list:
        for i, text in enumerate(paragraphs[args.list]):
            print(f"{i}: {text[:150]}")
        return 0
    queries = []
    for query, spec in QUERIES:
        relevant = []
        for topic, i in parse(spec):
            text = paragraphs[topic][i]
            if any(r["sha256"] == hashlib.sha256(text.encode()).hexdigest() for r in relevant):
                continue  # a paragraph two topics share (the corpus holds it once)
            relevant.append({"sha256": hashlib.sha256(text.encode()).hexdigest(), "source": f"{topic}:{i}",
                             "start": text[:72]})
        queries.append({"query": query, "relevant": relevant})
    doc = {"about": "Labelled queries over the built-in corpus pydoc-topics (made by tools/make_pydoc_queries.py, "
                    "whose header says how; Python " + ".".join(map(str, sys.version_info[:3])) + "'s topics)",
           "queries": queries}
    args.out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(queries)} queries, {sum(len(q['relevant']) for q in queries)} relevant paragraphs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
