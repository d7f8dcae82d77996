"""Rows an unfinished job hands on to the job that replaces it.

A job's ``.partial`` keeps its texts, so that when the next job is another
one (its input changed), each row the old job has done can still stand for
the same text in the new one: nothing paid for is embedded again.  A row is
matched by its text only (exact ``str`` equality); whether the two jobs' rows
are interchangeable at all (the same model, service, dimensions...) is the
caller's decision (``Writer.resume_or_create``'s ``reuse``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .._plan import distinct_texts

#: rows copied at a time: bounds the memory a copy of a large job takes
BLOCK = 1 << 16


def match_rows(old_texts: Iterable[str], old_done: np.ndarray, new_texts: Sequence[str]
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(src, dst)``: for every row ``dst`` of ``new_texts`` whose text is
    the text of a done row of the old job, that row ``src`` (the first, if
    the text repeats there), sorted by ``src`` (the old files are read in
    order)."""
    uniq, inverse, _ = distinct_texts(list(new_texts))
    slot = {t: k for k, t in enumerate(uniq)}
    source = np.full(len(uniq), -1, np.intp)
    done = np.asarray(old_done, bool)
    if done.any():
        for i, (t, d) in enumerate(zip(old_texts, done.tolist(), strict=True)):
            if d and (k := slot.get(t)) is not None and source[k] < 0:
                source[k] = i
    src = source if inverse is None else source[inverse]
    dst = np.flatnonzero(src >= 0)
    src = src[dst]
    order = np.argsort(src, kind="stable")
    return src[order], dst[order]


def copy_rows(src: Mapping[str, np.ndarray], dst: Mapping[str, np.memmap], done: np.memmap,
              src_rows: np.ndarray, dst_rows: np.ndarray) -> None:
    """Copy rows ``src_rows`` of each encoding to rows ``dst_rows``, sync
    them, then mark those rows done and sync the mask (the order a Writer
    keeps: a row marked done has its data on disk)."""
    for lo in range(0, src_rows.size, BLOCK):
        s, d = src_rows[lo:lo + BLOCK], dst_rows[lo:lo + BLOCK]
        for e, a in dst.items():
            a[d] = src[e][s]
    for a in dst.values():
        a.flush()
    done[dst_rows] = True
    done.flush()
