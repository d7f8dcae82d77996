"""The request-rate budget (``Client(max_requests_per_minute=...)``, ``--rpm``)
and the reference server's per-key limit (``serve --rpm``).

The pacing policy is checked on a fake clock (hypothesis: no 60 s window
ever holds more than the rate plus the burst, whatever the 429s); the server's
leaky bucket on its own; then clients against the real server over loopback,
the rate measured from the server's request log: under a 120 RPM limit a
110 RPM budget gets no 429 and keeps its rate, no budget gets 429s and, with
retries enough, still loses no row (rows equal to the hash backend's).
The same on a 2-worker cluster is in test_dask.py.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pplx_codec as pc
from helpers import raises_exactly
from pplx_codec import _rate
from pplx_codec import store as pc_store
from pplx_codec._rate import RateBudget, RatePolicy
from pplx_codec.cli import build_parser, main
from pplx_codec.server import FaultConfig, ServerConfig, running
from pplx_codec.server.backends import HashBackend, quantize_int8
from pplx_codec.server.ratelimit import LeakyBucket, key_id, read_log
from pplx_codec.server.rng import key as rng_key
from pplx_codec.server.rng import uniform

KEY = "rate-test-key-7d41"
MODEL = "pplx-embed-v1-0.6b"
DIMS = 128


def texts_of(n: int, tag: str) -> list[str]:
    return [f"{tag} {i} w{i * 7919 % 1009}" for i in range(n)]


def expected(texts) -> np.ndarray:
    """The hash backend's rows, quantized as the server does: the oracle."""
    return quantize_int8(np.ascontiguousarray(HashBackend().embed(MODEL, list(texts))[:, :DIMS], np.float32))


def most_in_window(starts, seconds: float = 60.0) -> int:
    """The most of ``starts`` (sorted) in any closed window of ``seconds``."""
    starts = np.asarray(starts)
    return int(max(np.searchsorted(starts, starts + seconds, side="right") - np.arange(len(starts)), default=0))


def rate_of(entries) -> float:
    """Requests per minute from the first to the last entry of a request log."""
    t = [e["t"] for e in entries]
    return (len(t) - 1) / (t[-1] - t[0]) * 60


# ---------------------------------------------------------------- the policy, on a fake clock


def test_policy_spaces_after_its_burst():
    p = RatePolicy(120, burst=3)   # one every 0.5 s
    assert [p.reserve(10.0) for _ in range(6)] == [10.0, 10.0, 10.0, 10.5, 11.0, 11.5]
    assert p.reserve(100.0) == 100.0   # a quiet spell fills the bucket again
    one = RatePolicy(60)   # burst 1 by default: evenly spaced from the first
    assert [one.reserve(0.0) for _ in range(3)] == [0.0, 1.0, 2.0]


def test_policy_on_429_pauses_then_halves_and_recovers():
    p = RatePolicy(60)   # one a second
    assert p.reserve(0.0) == 0.0 and p.reserve(0.0) == 1.0
    p.throttled(now=1.2, wait=5.0, sent_at=1.0)
    # nothing starts before the Retry-After, and the bucket restarts empty: no burst after it
    assert p.reserve(1.3) == 6.2
    assert p.rate(1.2) == 30
    assert p.reserve(1.3) == pytest.approx(6.2 + 60 / p.rate(6.2))
    # 429s to attempts sent before the slowdown say nothing new: no second halving
    p.throttled(now=1.4, wait=None, sent_at=1.0)
    assert p.rate(1.4) == pytest.approx(30 + 60 * 0.2 / _rate.RECOVERY_SECONDS)
    # one sent after it does; never below the floor
    for k in range(10):
        p.throttled(now=2.0 + k, wait=None, sent_at=2.0 + k)
    assert p.rate(11.0) == 60 * _rate.MIN_SHARE
    # back to the configured rate, linearly
    assert p.rate(11.0 + _rate.RECOVERY_SECONDS * (1 - _rate.MIN_SHARE) + 1e-9) == 60
    assert p.rate(1e9) == 60


def test_waits_take_a_new_slot_when_a_pause_begins_over_theirs():
    now = [0.0]
    b = RateBudget(60, clock=lambda: now[0])
    assert list(b.waits()) == []   # the first goes at once
    w = b.waits()
    assert next(w) == 1.0   # its slot is at 1.0; while it sleeps, a 429 asks for 3 s
    b.throttled(3.0, sent_at=0.0)
    now[0] = 1.0
    assert next(w) == pytest.approx(2.0)   # not at 1.0: after the pause
    now[0] = 3.0
    assert list(w) == []
    # a client given no budget has none: its attempts never wait
    assert pc.Client(api_key="k")._config.rate is None


@given(rpm=st.floats(1, 150), burst=st.integers(1, 20),
       events=st.lists(st.tuples(st.floats(0, 0.3), st.integers(0, 40), st.one_of(st.none(), st.floats(0, 60)),
                                 st.integers(0, 19).map(lambda k: k == 0)), min_size=1, max_size=400))
def test_no_minute_holds_more_than_rate_plus_burst(rpm, burst, events):
    """Whatever the arrivals (mostly faster than the rate, now and then after
    a quiet spell) and 429s (with or without Retry-After), the starts are in
    order, none before it was asked for or inside a pause, and no 60 s window
    holds more than ``rpm + burst`` of them."""
    p = RatePolicy(rpm, burst)
    now, starts = 0.0, []
    for gap, quiet, wait, is_429 in events:
        now += gap + (100.0 if quiet == 0 else 0.0)
        if is_429 and starts:
            p.throttled(now, wait, sent_at=starts[-1])
            continue
        start = p.reserve(now)
        assert start >= now and start >= p.pause_until
        starts.append(start)
    assert starts == sorted(starts)
    assert most_in_window(starts) <= rpm + burst + 1e-9


def test_budget_hands_each_slot_to_one_thread_only():
    """Threads reserving at once (the clock standing still) get distinct,
    evenly spaced slots: the lock holds."""
    b = RateBudget(6000, clock=lambda: 0.0)   # 10 ms apart
    b.policy.rate = lambda now: (time.sleep(0), 6000.0)[1]   # a thread switch inside each reservation
    got, lock = [], threading.Lock()

    def take():
        for _ in range(200):
            pause = next(iter(b.waits()), 0.0)
            with lock:
                got.append(pause)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(round(g * 100) for g in got) == list(range(1600))


RANGE = "a finite number of requests per minute >= 1/1440 (one a day)"
# issue 22 item 9: 1e-9 and 1e-300 passed, and the second request's wait (60 / rate seconds:
# 1,900 years and more) raised OverflowError in time.sleep after the first one was paid for
TOO_SLOW_OR_NOT_A_RATE = [1e-9, 1e-300, 5e-324, 1 / 1441, 0, 0.0, -0.0, -1, -1e300, float("nan"), float("inf"),
                          float("-inf"), 10 ** 400, -10 ** 400, True, False, "60", [60]]


@pytest.mark.parametrize("bad", TOO_SLOW_OR_NOT_A_RATE, ids=repr)
def test_bad_rates_are_refused_with_the_range(bad):
    message = f"max_requests_per_minute must be {RANGE}, or None (no limit), got {bad!r}"
    for make in (lambda: pc.Client(api_key="k", max_requests_per_minute=bad),
                 lambda: pc.AsyncClient(api_key="k", max_requests_per_minute=bad),
                 lambda: RateBudget(bad), lambda: RatePolicy(bad)):
        with raises_exactly(ValueError, message):
            make()


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "60"])
def test_bad_server_rates_and_bursts_are_refused(bad):
    with pytest.raises(ValueError, match="rpm"):
        ServerConfig(auth=False, rpm=bad)
    with pytest.raises(ValueError, match="burst"):
        RateBudget(60, burst=0)


def test_the_slowest_rate_and_a_huge_one_are_taken():
    assert RateBudget(_rate.MIN_PER_MINUTE).per_minute == 1 / 1440
    assert RateBudget(60).per_minute == 60.0 and isinstance(RateBudget(60).per_minute, float)
    assert RatePolicy(1e300).per_minute == 1e300 and RatePolicy(10 ** 300).per_minute == 1e300
    # the longest wait the budget can ask for (one a day, slowed down by 429s to 1/16 of
    # it) is one Event.wait (and time.sleep) takes: their limit is ~292 years
    assert 60 / (_rate.MIN_PER_MINUTE * _rate.MIN_SHARE) == 16 * 86400 < threading.TIMEOUT_MAX
    p = RatePolicy(_rate.MIN_PER_MINUTE)
    assert [p.reserve(0.0) for _ in range(3)] == [0.0, 86400.0, 2 * 86400.0]


def test_a_huge_rate_paces_nothing(tmp_path):
    texts = texts_of(512 * 3, "huge")
    with running(api_keys=[KEY], backend="hash") as url:
        with pc.Client(api_key=KEY, base_url=url, max_requests_per_minute=1e300) as c:
            t0 = time.monotonic()
            got = c.embed(texts, dimensions=DIMS)
            assert time.monotonic() - t0 < 30
    np.testing.assert_array_equal(got.vectors, expected(texts))


def test_with_options_shares_the_budget_and_a_budget_is_shared():
    shared = RateBudget(50, burst=2)
    a = pc.Client(api_key="k", max_requests_per_minute=shared)
    b = pc.Client(api_key="k", max_requests_per_minute=shared)
    assert a._config.rate is b._config.rate is shared
    assert a.with_options(max_retries=0)._config.rate is shared
    c = a.with_options(max_requests_per_minute=10)._config.rate
    assert isinstance(c, RateBudget) and (c.per_minute, c.burst) == (10, 1)


def test_cli_takes_rpm():
    p = build_parser()
    assert p.parse_args(["embed", "x", "--out", "o", "--rpm", "50"]).rpm == 50
    assert p.parse_args(["search", "d", "q"]).rpm is None
    a = p.parse_args(["serve", "--rpm", "120", "--rpm-burst", "2", "--request-log", "log.jsonl"])
    assert (a.rpm, a.rpm_burst, a.request_log) == (120, 2, "log.jsonl")
    assert p.parse_args(["embed", "x", "--out", "o", "--rpm", "1e-9"]).rpm == 1e-9  # refused by the command
    for bad in (["embed", "x", "--out", "o", "--rpm", "fast"], ["serve", "--rpm", "-3"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)


@pytest.mark.parametrize("rpm,shown", [("1e-9", "1e-09"), ("1e-300", "1e-300"), ("0", "0"), ("-1", "-1"),
                                       ("nan", "nan"), ("inf", "inf"), ("1e400", "inf"), ("0.00069", "0.00069")])
def test_cli_refuses_a_rate_out_of_range_in_one_line(tmp_path, monkeypatch, capsys, rpm, shown):
    """Before any server starts or request is sent: one line, exit code 2."""
    for var in ("PERPLEXITY_API_KEY", "PPLX_API_KEY", "PERPLEXITY_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    src = tmp_path / "texts.txt"
    src.write_text("\n".join(texts_of(1200, "cli")) + "\n")
    store = tmp_path / "store"  # a store to search: the refusal is then the rate's
    pc_store.save(store, int8=np.ones((2, DIMS), np.int8), meta={"model": MODEL})
    for argv in (["embed", str(src), "--out", str(tmp_path / "s"), "--quiet"], ["search", str(store), "q"]):
        assert main([*argv, "--rpm", rpm]) == 2
        err = capsys.readouterr().err
        assert err == f"pplx-codec {argv[0]}: --rpm must be {RANGE}, got {shown}\n"
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


# ---------------------------------------------------------------- the server's limit


def test_leaky_bucket():
    b = LeakyBucket(120, capacity=3)   # leaks 2 a second
    assert [b.admit(0.0) for _ in range(3)] == [0.0] * 3
    assert b.admit(0.0) == pytest.approx(0.5)   # full: refused, and not counted
    assert b.admit(0.1) == pytest.approx(0.4)
    assert b.admit(0.5) == 0.0 and b.admit(0.5) > 0
    # over any span, at most capacity + rate * span pass
    c, passed = LeakyBucket(120, capacity=3), []
    for i in range(2000):
        t = i * 0.013
        if c.admit(t) == 0.0:
            passed.append(t)
    assert most_in_window(passed, 10.0) <= 3 + 20
    assert len(passed) == pytest.approx(3 + 2 * 2000 * 0.013, abs=2)


def test_server_answers_429_per_key_and_logs(tmp_path):
    log = tmp_path / "requests.jsonl"
    other = "rate-test-other-key-19"
    body = {"input": ["a"], "model": MODEL, "dimensions": DIMS}
    with running(api_keys=[KEY, other], rpm=6, rpm_burst=2, request_log=str(log)) as url:
        post = lambda key: httpx.post(url + "/v1/embeddings", json=body,  # noqa: E731
                                      headers={"Authorization": f"Bearer {key}"})
        assert [post(KEY).status_code for _ in range(2)] == [200, 200]
        r = post(KEY)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 10
        assert r.json()["error"]["type"] == "rate_limit_error" and r.json()["error"]["code"] == 429
        assert post(other).status_code == 200   # each key its own bucket
        assert post("not-a-key").status_code == 401   # not counted, not logged
        assert httpx.get(url + "/openapi.json").status_code == 200   # not an API path
    entries = read_log(log)
    assert [(e["key"], e["limited"]) for e in entries] == [
        (key_id(KEY.encode()), False), (key_id(KEY.encode()), False), (key_id(KEY.encode()), True),
        (key_id(other.encode()), False)]
    assert all(e["path"] == "/v1/embeddings" for e in entries)
    assert KEY not in log.read_text()


# ---------------------------------------------------------------- clients against the server


def test_budget_keeps_under_the_server_limit(tmp_path):
    """A 120 RPM server, a client budget of 110 RPM, 4 threads: no 429, and
    the requests arrive at 110 a minute; without the budget the same job
    meets 429s and, with retries enough, loses nothing."""
    texts = texts_of(512 * 11, "budget")   # 11 full requests: about 5.5 s at 110 RPM
    want = expected(texts)
    log = tmp_path / "requests.jsonl"
    with running(api_keys=[KEY], rpm=120, request_log=str(log), backend="hash") as url:
        with pc.Client(api_key=KEY, base_url=url, max_requests_per_minute=110, max_concurrency=4) as c:
            got = c.embed(texts, dimensions=DIMS)
        entries = read_log(log)
        assert len(entries) == 11 and not any(e["limited"] for e in entries)
        assert 110 * 0.9 < rate_of(entries) < 110 * 1.05
        np.testing.assert_array_equal(got.vectors, want)
        assert got.usage.requests == 11

        log.unlink()
        with pc.Client(api_key=KEY, base_url=url, max_concurrency=4, max_retries=10) as c:
            free = c.embed(texts, dimensions=DIMS)
        entries = read_log(log)
        assert sum(e["limited"] for e in entries) > 0
        assert sum(not e["limited"] for e in entries) == 11
        np.testing.assert_array_equal(free.vectors, want)


def test_async_budget_keeps_under_the_server_limit(tmp_path, monkeypatch):
    texts = texts_of(512 * 10, "async")
    log = tmp_path / "requests.jsonl"
    # The pacing must never block the event loop: no time.sleep on its thread
    # (a ticker below also shows the loop running while requests wait).
    blocking: list[float] = []
    in_job = threading.Event()   # set while the job runs on the event loop (this thread)
    real_sleep = time.sleep

    def sleep(seconds):
        if in_job.is_set() and threading.current_thread() is threading.main_thread():
            blocking.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)

    async def job(url):
        async with pc.AsyncClient(api_key=KEY, base_url=url, max_requests_per_minute=550, max_concurrency=4) as c:
            # the event loop stays free while the budget paces: a ticker keeps ticking
            ticks = 0

            async def tick():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            in_job.set()
            try:
                return await c.embed(texts, dimensions=DIMS), ticks
            finally:
                in_job.clear()
                ticker.cancel()

    with running(api_keys=[KEY], rpm=600, request_log=str(log), backend="hash") as url:
        got, ticks = asyncio.run(job(url))
    entries = read_log(log)
    assert len(entries) == 10 and not any(e["limited"] for e in entries)
    assert 550 * 0.9 < rate_of(entries) < 550 * 1.05
    assert not blocking, blocking
    # ~1 s of pacing gives ~100 ticks of 10 ms; a loop blocked while pacing
    # would tick a few times at most (lenient: this 2-core box may be loaded)
    assert ticks > 20, ticks
    np.testing.assert_array_equal(got.vectors, expected(texts))


def test_a_429_pauses_the_whole_client(tmp_path):
    """The first request meets a 429 with Retry-After: 1: the client's other
    threads start nothing in the second after it (without the budget they
    go on at once), and no row is lost."""
    seed = next(s for s in range(1000) if uniform(rng_key(s, 0, 0), 1)[0] < 0.05 and
                all(uniform(rng_key(s, n, 0), 1)[0] >= 0.05 for n in range(1, 40)))
    texts = texts_of(512 * 8, "pause")
    log = tmp_path / "requests.jsonl"
    for rpm in (6000, None):
        with running(api_keys=[KEY], request_log=str(log), backend="hash",
                     faults=FaultConfig({"429": 0.05}, seed=seed, retry_after=1)) as url:
            with pc.Client(api_key=KEY, base_url=url, max_requests_per_minute=rpm, max_concurrency=4) as c:
                got = c.embed(texts, dimensions=DIMS)
        np.testing.assert_array_equal(got.vectors, expected(texts))
        t = [e["t"] for e in read_log(log)]
        log.unlink()
        assert len(t) == 9   # 8 requests and one retry
        soon = sum(x < t[0] + 0.9 for x in t)
        if rpm is None:
            assert soon >= 5   # the other threads went on at once
        else:
            assert [x for x in t[1:] if t[0] + 0.25 < x < t[0] + 0.95] == [] and soon <= 4
            assert c._config.rate.policy.rate(time.monotonic()) < 6000 * 0.6   # halved, recovering
