"""Do not pay twice (issue 14 item 5), shown from the server's side.

``Client.embed`` / ``AsyncClient.embed`` send each distinct text of a call
once and copy its row to the repeats; ``pplx-codec embed`` re-run on a grown
corpus embeds only the texts its store does not hold.  What was sent is read
from the reference server's ``ReceivedInputs`` (every request an endpoint took,
over loopback HTTP), never from the client.  The oracle for the rows is
``embeddings.create``, which sends exactly what it is given (repeats too: the
log shows it), one request of at most 512 inputs at a time.
"""

from __future__ import annotations

import asyncio
import json
import random

import numpy as np
import pytest

import pplx_codec as pc
from pplx_codec import cli, store
from pplx_codec._plan import distinct_texts
from pplx_codec.server import FaultConfig, ReceivedInputs, running
from pplx_codec.server.faults import FaultPlan
from server_support import KEY

DIMS = 128
INT8, BINARY = "base64_int8", "base64_binary"


@pytest.fixture(scope="module")
def served():
    log = ReceivedInputs()
    with running(api_keys=[KEY], received=log) as url:
        yield url, log


@pytest.fixture(params=["sync", "async"])
def kind(request):
    return request.param


def embed(kind: str, url: str, texts, **kw):
    if kind == "sync":
        with pc.Client(api_key=KEY, base_url=url, **kw.pop("client", {})) as c:
            return c.embed(texts, **kw)

    async def go():
        async with pc.AsyncClient(api_key=KEY, base_url=url, **kw.pop("client", {})) as c:
            return await c.embed(texts, **kw)

    return asyncio.run(go())


def oracle(url: str, texts: list[str], dimensions=DIMS, encoding_format=INT8, bitorder="little") -> np.ndarray:
    """Every row requested as it is, repeats included (``embeddings.create``,
    512 inputs a request), in the bit order asked for."""
    with pc.Client(api_key=KEY, base_url=url) as c:
        rows = np.concatenate([c.embeddings.create(input=texts[i:i + 512], model="pplx-embed-v1-0.6b",
                                                   dimensions=dimensions, encoding_format=encoding_format).embeddings
                               for i in range(0, len(texts), 512)])
    return pc.reverse_bitorder(rows) if encoding_format == BINARY and bitorder == "big" else rows


def words(n: int, tag: str) -> list[str]:
    return [f"{tag} {i} {'abcdefghij'[i % 10] * (1 + i % 5)} {i * 7919 % 1009}" for i in range(n)]


# ---------------------------------------------------------------- the distinct texts of a call


def test_distinct_texts_against_brute_force():
    rng = random.Random(5)
    for n, pool in [(1, 1), (7, 3), (500, 40), (300, 1000), (64, 1)]:
        texts = [f"t{rng.randrange(pool)}" for _ in range(n)]
        uniq, inverse, firsts = distinct_texts(texts)
        want = list(dict.fromkeys(texts))  # first-occurrence order
        if len(want) == n:
            assert uniq is texts and inverse is None and firsts is None
            continue
        assert uniq == want
        assert inverse.tolist() == [want.index(t) for t in texts]
        assert firsts.tolist() == [texts.index(t) for t in want]


def test_distinct_texts_compares_exact_strings():
    # Unicode normalisation forms, white space, case: all different texts
    variants = ["caf\u00e9", "cafe\u0301", "\u00c5", "\u212b", "A\u030a", "a b", "a  b", "a b ", " a b", "a\tb",
                "A b", "a\u00a0b", "a b\n"]
    uniq, inverse, firsts = distinct_texts(variants)
    assert uniq is variants and inverse is None


@pytest.mark.parametrize("fmt,bitorder", [(INT8, "little"), (BINARY, "big")])
def test_repeats_are_sent_once_and_rows_equal_the_oracle(served, kind, fmt, bitorder):
    url, log = served
    rng = random.Random(11)
    distinct = words(700, f"rep-{kind}-{fmt}")
    texts = distinct + [rng.choice(distinct) for _ in range(900)]
    rng.shuffle(texts)
    want = list(dict.fromkeys(texts))
    log.clear()
    got = embed(kind, url, texts, dimensions=DIMS, encoding_format=fmt, bitorder=bitorder)
    sent = log.texts()
    assert sorted(sent) == sorted(want) and len(sent) == len(set(sent)) == len(want)  # each distinct text once
    assert len(log) == 2  # 700 texts: two requests, not four
    # in the order of first occurrence (the two requests may arrive in either order)
    assert sorted(r.inputs for r in log.requests) == [tuple(want[:512]), tuple(want[512:])]
    log.clear()
    exp = oracle(url, texts, encoding_format=fmt, bitorder=bitorder)
    assert log.texts() == texts  # the oracle sent every repeat, as given
    assert got.vectors.shape == exp.shape
    np.testing.assert_array_equal(got.vectors, exp)
    # usage is what was sent: the tokens of the distinct texts, in their two requests
    alone = embed("sync", url, want, dimensions=DIMS, encoding_format=fmt)
    assert got.usage.requests == 2 and got.usage.total_tokens == alone.usage.total_tokens
    assert got.usage.total_cost == pytest.approx(alone.usage.total_cost)
    with pc.Client(api_key=KEY, base_url=url) as c:
        every = sum(c.embeddings.create(input=texts[i:i + 512], model="pplx-embed-v1-0.6b", dimensions=DIMS)
                    .usage["total_tokens"] for i in range(0, len(texts), 512))
    assert got.usage.total_tokens < every


@pytest.mark.parametrize("case", ["all identical", "one text", "one str", "10k repeats of 3", "variants"])
def test_hostile_repeats(served, kind, case):
    url, log = served
    tag = f"{kind} {case}"
    texts: list[str] | str
    if case == "all identical":
        texts = [f"the same {tag}"] * 1500
    elif case == "one text":
        texts = [f"only {tag}"]
    elif case == "one str":
        texts = f"a str {tag}"
    elif case == "10k repeats of 3":
        three = [f"x {tag}", f"y {tag}", f"z {tag}"]
        texts = [three[i % 3] if i % 7 else three[(i // 7) % 3] for i in range(30_000)]
    else:
        texts = [v + f" {tag}" for v in ["caf\u00e9", "cafe\u0301", "\u00c5", "\u212b", "a b", "a  b", "a b ",
                                          "A b", "a\u00a0b"]] * 2
    log.clear()
    got = embed(kind, url, texts, dimensions=DIMS)
    listed = [texts] if isinstance(texts, str) else texts
    want = list(dict.fromkeys(listed))
    assert log.texts() == want and len(log) == 1
    exp = oracle(url, listed)
    np.testing.assert_array_equal(got.vectors, exp[0] if isinstance(texts, str) else exp)
    if case == "variants":  # nothing merged: 9 texts sent (the hash backend may give some the same row)
        assert len(want) == 9


def test_empty_list_sends_nothing(served, kind):
    url, log = served
    log.clear()
    with pytest.raises(ValueError, match="texts is empty"):
        embed(kind, url, [])
    with pytest.raises(TypeError, match=r"texts\[2\] must be a str"):
        embed(kind, url, ["a", "a", 3, "a"])
    assert len(log) == 0


def test_create_sends_what_it_is_given(served):
    url, log = served
    log.clear()
    with pc.Client(api_key=KEY, base_url=url) as c:
        r = c.embeddings.create(input=["same", "same", "other", "same"], model="pplx-embed-v1-0.6b",
                                dimensions=DIMS)
    assert log.texts() == ["same", "same", "other", "same"] and r.embeddings.shape == (4, DIMS)
    assert (r.embeddings[0] == r.embeddings[1]).all()


def test_contextualized_sends_every_chunk(served, kind):
    """A chunk's vector depends on its document: nothing is deduplicated there."""
    url, log = served
    docs = [["intro", "body"], ["intro", "body"], ["intro", "other"]]
    log.clear()
    if kind == "sync":
        with pc.Client(api_key=KEY, base_url=url) as c:
            got = c.embed_contextualized(docs, dimensions=DIMS)
    else:
        async def go():
            async with pc.AsyncClient(api_key=KEY, base_url=url) as c:
                return await c.embed_contextualized(docs, dimensions=DIMS)
        got = asyncio.run(go())
    assert log.texts("/v1/contextualizedembeddings") == [c for d in docs for c in d]
    assert got.vectors.shape == (6, DIMS)


def test_progress_counts_the_rows_of_the_result(served, kind):
    url, log = served
    texts = words(600, f"prog-{kind}") * 2  # 1200 rows, 600 texts sent
    seen = []
    embed(kind, url, texts, dimensions=DIMS, progress=lambda done, total, usage: seen.append((done, total)),
          client={"max_concurrency": 1})
    assert [t for _, t in seen] == [1200, 1200] and [d for d, _ in seen] == [1024, 1200]


def _seed(rates: dict, modes: list) -> int:
    """A fault seed whose first requests meet ``modes``."""
    for seed in range(5000):
        plan = FaultPlan(FaultConfig(rates, seed=seed))
        if [plan.draw().mode for _ in modes] == modes:
            return seed
    raise AssertionError("no seed fits")  # pragma: no cover


def test_partial_result_fills_repeats_whose_row_arrived(kind):
    """The first request succeeds, the second fails: the rows of the first
    request's texts are filled wherever those texts stand, the others not."""
    rates = {"500": 0.5}
    log = ReceivedInputs()
    distinct = words(1100, f"part-{kind}")  # three requests: 512, 512, 76
    texts = distinct + distinct[:300] + distinct[600:700]
    random.Random(3).shuffle(texts)
    want = list(dict.fromkeys(texts))
    with running(api_keys=[KEY], faults=FaultConfig(rates, seed=_seed(rates, [None, "500"])),
                 received=log) as url:
        with pytest.raises(pc.InternalServerError) as info:
            embed(kind, url, texts, dimensions=DIMS, client={"max_concurrency": 1, "max_retries": 0})
        p = info.value.partial
        arrived = set(log.texts())  # a 500 fault answers before the endpoint: only the success is logged
        assert arrived == set(want[:512]) and len(log) == 1
        filled = np.array([t in arrived for t in texts])
        assert p.filled.tolist() == filled.tolist() and 0 < filled.sum() < len(texts)
        assert p.vectors.shape == (len(texts), DIMS)
        np.testing.assert_array_equal(p.vectors[filled], oracle(url, texts)[filled])
        assert p.usage.requests == 1


# ---------------------------------------------------------------- pplx-codec embed on a grown corpus


def _run(out, corpus, url, *extra):
    return cli.main(["embed", str(corpus), "--out", str(out), "--quiet", "--base-url", url, "--api-key", KEY,
                     "--dimensions", str(DIMS), *extra])


def _same_store(a, b) -> None:
    sa, sb = store.load(a), store.load(b)
    assert sa.count == sb.count and list(sa.texts) == list(sb.texts)
    for e in ("int8", "binary"):
        np.testing.assert_array_equal(getattr(sa, e), getattr(sb, e))


def _write(path, texts) -> None:
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")


def test_a_grown_corpus_embeds_only_its_new_texts(served, tmp_path, capsys):
    url, log = served
    old = words(150, "corpus")
    first = old + old[:20]  # repeats inside the corpus: sent once
    new = words(60, "added")
    grown = old[:75] + new[:30] + old[75:] + old[10:15] + new[30:] + new[:3] + ["caf\u00e9 corpus 1", "cafe\u0301"]
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    _write(a, first)
    _write(b, grown)
    out = tmp_path / "store"

    log.clear()
    assert _run(out, a, url) == 0
    assert log.texts() == old
    assert "150 new, 20 repeated texts filled" in capsys.readouterr().err
    before = store.load(out).meta["usage"]

    log.clear()
    assert _run(out, b, url) == 0
    fresh = list(dict.fromkeys(t for t in grown if t not in set(old)))
    assert log.texts() == fresh and len(fresh) == 62  # only the new texts, each once, in corpus order
    err = capsys.readouterr().err
    assert "pplx-codec embed: 62 new, 150 reused from" in err and "8 repeated texts filled" in err
    s = store.load(out)
    assert s.meta["usage"]["requests"] == 1 and s.meta["usage"]["total_tokens"] < before["total_tokens"]

    # the same store as a run from scratch on the grown corpus
    scratch = tmp_path / "scratch"
    assert _run(scratch, b, url) == 0
    _same_store(out, scratch)

    # run again: nothing is sent, nothing changes
    log.clear()
    assert _run(out, b, url) == 0
    assert len(log) == 0
    assert "0 new, 212 reused" in capsys.readouterr().err
    _same_store(out, scratch)


def test_other_settings_are_refused_or_replaced(served, tmp_path, capsys):
    url, log = served
    corpus = tmp_path / "c.txt"
    texts = words(40, "settings")
    _write(corpus, texts)
    out = tmp_path / "store"
    assert _run(out, corpus, url) == 0
    meta = (out / "meta.json").read_bytes()
    capsys.readouterr()
    log.clear()
    assert _run(out, corpus, url, "--encoding", "int8") == 2
    err = capsys.readouterr().err
    assert "cannot be reused for this run: encodings ['int8', 'binary'] (this run: ['int8'])" in err
    assert "--replace" in err and len(log) == 0 and (out / "meta.json").read_bytes() == meta
    assert _run(out, corpus, url, "--bitorder", "big") == 2
    assert "bitorder 'little' (this run: 'big')" in capsys.readouterr().err
    assert _run(out, corpus, url, "--encoding", "int8", "--replace") == 0
    assert log.texts() == texts and store.load(out).encodings == ("int8",)
    # a store without texts cannot lend rows
    plain = tmp_path / "plain"
    store.save(plain, int8=np.zeros((3, DIMS), np.int8), meta={"model": "pplx-embed-v1-0.6b"})
    assert _run(plain, corpus, url, "--encoding", "int8") == 2
    assert "no texts.jsonl" in capsys.readouterr().err


class _Interrupting:
    """A client whose ``after``-th embed call is interrupted (as Ctrl-C would)."""

    def __init__(self, client, after: int):
        self.client, self.after, self.calls = client, after, 0

    def embed(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return self.client.embed(*args, **kwargs)


def test_a_grown_run_survives_an_interruption(served, tmp_path):
    from pplx_codec.corpus import read_texts
    from pplx_codec.pipelines import embed_corpus

    url, log = served
    old = words(100, "kill")
    new = words(90, "kill-new")
    grown = new[:40] + old + new[40:] + new[:5]
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    _write(a, old)
    _write(b, grown)
    out = tmp_path / "store"
    with pc.Client(api_key=KEY, base_url=url) as c:
        embed_corpus(c, read_texts(str(a)), str(out), dimensions=DIMS, progress=False, endpoint=url)
        log.clear()
        with pytest.raises(KeyboardInterrupt):  # the reused rows are copied, one chunk of 30 new texts sent
            embed_corpus(_Interrupting(c, 2), read_texts(str(b)), str(out), dimensions=DIMS, chunk=30,
                         progress=False, endpoint=url)
        assert log.texts() == new[:30]
        assert list(store.load(out).texts) == old  # the old store is still in place
        w = store.Writer.open(out)
        assert int(w.done.sum()) == 100 + 30 + 5 and w.done[:30].all()  # old rows, the sent chunk, its repeats
        w.close()
        log.clear()
        report = embed_corpus(c, read_texts(str(b)), str(out), dimensions=DIMS, progress=False, endpoint=url)
    assert log.texts() == new[30:]  # only what was not sent before
    assert report.embedded == 60 and report.reused == 0 and report.written == len(grown) - 135
    scratch = tmp_path / "scratch"
    assert _run(scratch, b, url) == 0
    _same_store(out, scratch)
    assert json.loads((out / "meta.json").read_text())["usage"]["requests"] == 2  # 30 texts, then the other 60


# ---------------------------------------------------------------- Writer.write_rows


def test_writer_write_rows(tmp_path):
    rng = np.random.default_rng(0)
    w = store.Writer.create(tmp_path / "s", 10, 16, encodings=("int8", "binary"), job_key="k")
    v = rng.integers(-128, 128, (4, 16), dtype=np.int8)
    where = np.array([7, 1, 4, 9])
    w.write_rows(where, int8=v, binary=pc.pack_bits(v))
    assert np.flatnonzero(w.done).tolist() == [1, 4, 7, 9]
    for bad, match in [([1, 1, 2, 3], "twice"), ([0, 1, 2, 10], r"in \[0, 10\)"), ([0, 1, 2], "4 integer"),
                       (np.array([0.0, 1, 2, 3]), "integer row indices")]:
        with pytest.raises(ValueError, match=match):
            w.write_rows(bad, int8=v, binary=pc.pack_bits(v))
    with pytest.raises(ValueError, match="pass binary= too"):
        w.write_rows(where, int8=v)
    rest = np.setdiff1d(np.arange(10), where)
    u = rng.integers(-128, 128, (rest.size, 16), dtype=np.int8)
    w.write_rows(rest[::-1], int8=u[::-1], binary=pc.pack_bits(u[::-1]), flush=False)
    assert w.missing().size == rest.size  # marked done at the flush
    s = w.commit()
    want = np.empty((10, 16), np.int8)
    want[where], want[rest] = v, u
    np.testing.assert_array_equal(s.int8, want)
    np.testing.assert_array_equal(s.binary, pc.pack_bits(want))


# ---------------------------------------------------------------- a killed run, then a changed corpus

_DIE = r"""
import os, signal, sys
from pplx_codec import cli, client

corpus, out, url, key, after = sys.argv[1:6]
real, calls = client.Client.embed, []

def embed(self, *args, **kwargs):
    got = real(self, *args, **kwargs)   # sent, paid for, never written: the process dies first
    calls.append(1)
    if len(calls) == int(after):
        os.kill(os.getpid(), signal.SIGKILL)
    return got

client.Client.embed = embed
cli.main(["embed", corpus, "--out", out, "--quiet", "--base-url", url, "--api-key", key, "--dimensions", "128",
          "--chunk", "50", "--max-concurrency", "1"])
"""


def _killed_run(corpus, out, url, after: int) -> None:
    """``pplx-codec embed`` SIGKILLed right after its ``after``-th chunk arrived (before that chunk is kept)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _DIE, str(corpus), str(out), url, KEY, str(after)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr


def _partial(out) -> tuple[list[str], list]:
    """The texts of the rows an unfinished job has done, and its records."""
    with store.Writer.open(out) as w:
        return [t for t, d in zip(w.texts, w.done.tolist(), strict=True) if d], w.records()


def test_a_killed_run_on_a_changed_corpus_pays_once(served, tmp_path, capsys):
    """Issue 22 item 10: the rows a killed run received stand for the same
    texts in a changed corpus (removed, added, reordered, edited texts): none
    of them is sent again, the store is what a fresh run writes, and usage
    counts the killed run's requests too."""
    url, log = served
    old = words(400, "paid")
    first = old + old[100:130]  # repeats: each distinct text in a chunk once
    random.Random(7).shuffle(first)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    _write(a, first)
    out = tmp_path / "store"
    log.clear()
    _killed_run(a, out, url, after=4)  # three chunks of 50 texts kept, the fourth sent and lost
    assert len(log) == 4
    kept, records = _partial(out)
    order = list(dict.fromkeys(first))
    assert set(kept) == set(order[:150]) and len(records) == 3

    # the changed corpus: 20 kept texts and 100 never-sent ones removed, 60 new, 2 kept ones edited, reordered
    rng = random.Random(8)
    removed = set(rng.sample(order[:150], 20)) | set(order[300:])
    edited = {order[0]: order[0] + " ", order[1]: order[1].replace("paid", "Paid")}
    grown = [edited.get(t, t) for t in first if t not in removed] + words(60, "fresh") + order[10:15]
    rng.shuffle(grown)
    _write(b, grown)
    reusable = set(kept) & set(grown)
    assert len(reusable) == 129 and not reusable & set(edited)  # a removed text came back in order[10:15]

    log.clear()
    assert _run(out, b, url) == 0
    sent, requests = log.texts(), len(log)
    assert not set(sent) & set(kept)  # no text of the killed run's rows was sent again
    assert sorted(sent) == sorted(set(grown) - reusable)  # every other text, once (the edited ones too)
    assert set(edited.values()) <= set(sent)
    err = capsys.readouterr().err
    assert f"pplx-codec embed: {len(sent)} new, 129 from the interrupted run" in err and "discarded" not in err
    scratch = tmp_path / "scratch"
    assert _run(scratch, b, url) == 0
    _same_store(out, scratch)
    # usage: the killed run's three kept chunks, then this run's requests (the lost fourth was not logged)
    usage = store.load(out).meta["usage"]
    killed = sum(r["usage"]["total_tokens"] for r in records)
    assert killed == embed("sync", url, kept, dimensions=DIMS).usage.total_tokens
    assert usage["requests"] == 3 + requests
    assert usage["total_tokens"] == killed + embed("sync", url, sent, dimensions=DIMS).usage.total_tokens


def _embed_corpus(client, corpus, out, url, **kw):
    from pplx_codec.corpus import read_texts
    from pplx_codec.pipelines import embed_corpus

    kw = {"dimensions": DIMS, "progress": False, "endpoint": url, **kw}
    return embed_corpus(client, read_texts(str(corpus)), str(out), **kw)


def test_runs_killed_on_ever_changing_corpora_pay_once(served, tmp_path):
    """Killed on A, killed again on B (taking over A's rows), finished on C:
    over the three runs no text is sent twice, and usage is every request's."""
    url, log = served
    a, b, c = (tmp_path / f"{n}.txt" for n in "abc")
    texts = words(300, "chain")
    _write(a, texts[:200])
    _write(b, texts[50:250][::-1])
    _write(c, texts[60:300] + texts[100:105])
    out = tmp_path / "store"
    log.clear()
    with pc.Client(api_key=KEY, base_url=url, max_concurrency=1) as client:
        with pytest.raises(KeyboardInterrupt):
            _embed_corpus(_Interrupting(client, 4), a, out, url, chunk=40)  # A: 120 texts, then killed
        with pytest.raises(KeyboardInterrupt):
            _embed_corpus(_Interrupting(client, 3), b, out, url, chunk=30)  # B: 70 of A's taken, 60 new
        report = _embed_corpus(client, c, out, url, chunk=1000)  # C: 60 of A's and 60 of B's taken, 120 new
    sent = log.texts()
    assert len(sent) == len(set(sent)) == 300  # each text once over the three runs
    assert (report.carried, report.embedded, report.discarded) == (120, 120, None)
    scratch = tmp_path / "scratch"
    assert _run(scratch, c, url) == 0
    _same_store(out, scratch)
    # usage: 3 + 2 + 1 requests, every text sent (texts[:60] too: paid for by the first run, their rows since dropped)
    usage = store.load(out).meta["usage"]
    assert usage["requests"] == 6
    assert usage["total_tokens"] == embed("sync", url, texts[:300], dimensions=DIMS).usage.total_tokens


@pytest.mark.parametrize("change", ["dimensions", "encodings", "bitorder", "model", "endpoint", "no texts"])
def test_an_unfinished_run_with_other_settings_is_discarded_and_said(served, tmp_path, change):
    url, log = served
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    texts = words(100, f"other-{change}")
    _write(a, texts[:80])
    _write(b, texts[20:])
    out = tmp_path / "store"
    mine = {"dimensions": DIMS, "encodings": ("int8", "binary"), "bitorder": "little", "model": "pplx-embed-v1-0.6b",
            "endpoint": url}
    other = {"dimensions": 256, "encodings": ("int8",), "bitorder": "big", "model": "pplx-embed-v1-4b",
             "endpoint": "http://elsewhere"}
    theirs = {**mine, change: other[change]} if change in other else mine
    with pc.Client(api_key=KEY, base_url=url, max_concurrency=1) as client:
        with pytest.raises(KeyboardInterrupt):
            _embed_corpus(_Interrupting(client, 3), a, out, url, chunk=20, **theirs)
        if change == "no texts":  # as a .partial begun by an earlier version
            (out.parent / "store.partial" / "texts.jsonl").unlink()
        log.clear()
        report = _embed_corpus(client, b, out, url, chunk=1000, **mine)
    assert sorted(log.texts()) == sorted(texts[20:]) and report.carried == 0  # nothing taken over
    want = {"dimensions": f"dimensions 256 (this run: {DIMS})",
            "encodings": "encodings ['int8'] (this run: ['int8', 'binary'])",
            "bitorder": "bitorder 'big' (this run: 'little')",
            "model": "model 'pplx-embed-v1-4b' (this run: 'pplx-embed-v1-0.6b')",
            "endpoint": f"endpoint 'http://elsewhere' (this run: '{url}')",
            "no texts": "it keeps no texts to match its rows by"}[change]
    assert report.discarded == want
    assert store.load(out).meta["usage"]["requests"] == 1  # the discarded run's usage went with its rows


def test_a_damaged_unfinished_run_is_named_not_lost(served, tmp_path, capsys):
    """Its texts.jsonl damaged: a run on another corpus says which file and
    line, in one line, exit 2, and touches nothing; the same corpus still
    resumes (it needs no texts to)."""
    url, log = served
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    texts = words(90, "damaged")
    _write(a, texts[:60])
    _write(b, texts[30:])
    out = tmp_path / "store"
    partial = tmp_path / "store.partial"
    with pc.Client(api_key=KEY, base_url=url) as client:
        with pytest.raises(KeyboardInterrupt):
            _embed_corpus(_Interrupting(client, 3), a, out, url, chunk=20)
    lines = (partial / "texts.jsonl").read_bytes().split(b"\n")
    for damage, why in [(b'"unterminated', "Unterminated string starting at column 1"),
                        (b"42", "a JSON int, not a string"), (b'"caf\xe9"', "not UTF-8 (invalid continuation byte")]:
        (partial / "texts.jsonl").write_bytes(b"\n".join(lines[:2] + [damage] + lines[3:]))
        capsys.readouterr()
        log.clear()
        assert _run(out, b, url) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and len(log) == 0, err
        assert err.startswith(f"pplx-codec embed: {partial / 'texts.jsonl'}:3: ") and why in err, err
        assert err.endswith(f": corrupt job (remove {partial} to start afresh)\n"), err
    with store.Writer.open(out) as w:
        assert int(w.done.sum()) == 40 and len(w.records()) == 2  # untouched
    log.clear()
    assert _run(out, a, url) == 0  # the damaged texts.jsonl is not read, nor installed
    assert log.texts() == texts[40:60] and list(store.load(out).texts) == texts[:60]
    capsys.readouterr()


def test_an_unfinished_run_begun_without_texts_keeps_them_when_resumed(served, tmp_path):
    """A .partial of an earlier version (no texts.jsonl) resumes on the same
    corpus and starts keeping its texts, so that a later corpus can take its rows."""
    url, log = served
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    texts = words(120, "older")
    _write(a, texts[:90])
    _write(b, texts[30:])
    out = tmp_path / "store"
    with pc.Client(api_key=KEY, base_url=url) as client:
        with pytest.raises(KeyboardInterrupt):
            _embed_corpus(_Interrupting(client, 2), a, out, url, chunk=30)
        (tmp_path / "store.partial" / "texts.jsonl").unlink()
        with pytest.raises(KeyboardInterrupt):
            _embed_corpus(_Interrupting(client, 2), a, out, url, chunk=30)  # resumed: texts[30:60] sent
        kept, _ = _partial(out)
        assert sorted(kept) == sorted(texts[:60])
        log.clear()
        report = _embed_corpus(client, b, out, url)
    assert log.texts() == texts[60:] and report.carried == 30
