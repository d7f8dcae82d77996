"""Fault injection: every mode, deterministic under a seed, off by default."""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest

from pplx_codec.server import FaultConfig, running
from pplx_codec.server.faults import MODES, FaultPlan
from server_support import AUTH, KEY, check_contextualized, check_embeddings, doc_rows, header, raw_exchange, rows

EMB, CTX = "/v1/embeddings", "/v1/contextualizedembeddings"
TEXTS = [f"fault test text number {i}" for i in range(200)]
REQUEST = {"input": TEXTS, "model": "pplx-embed-v1-4b"}


@pytest.fixture(scope="module")
def reference():
    """Bodies from a server without faults."""
    with running(api_keys=[KEY]) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as c:
            # 30 small documents and one past a batch (~300 rows of 1024-dim int8): both paths
            ctx = {"input": [[f"d{d} c{c}" for c in range(1 + d % 4)] for d in range(30)]
                   + [[f"big {c}" for c in range(700)]], "model": "pplx-embed-context-v1-0.6b"}
            yield {"emb": c.post(EMB, json=REQUEST).json(), "ctx_request": ctx, "ctx": c.post(CTX, json=ctx).json()}


def serve_faults(**faults):
    seed = faults.pop("seed", 0)
    options = {k: faults.pop(k) for k in ("retry_after", "slow_seconds") if k in faults}
    return running(api_keys=[KEY], faults=FaultConfig(faults, seed=seed, **options))


@pytest.mark.parametrize("mode,status,retry_after", [("429", 429, "2"), ("503", 503, "2"), ("500", 500, None)])
def test_status_faults(mode, status, retry_after):
    with serve_faults(**{mode: 1.0}, retry_after=1.5) as base:
        for path, body in ((EMB, REQUEST), (CTX, {"input": [["x"]], "model": "pplx-embed-context-v1-4b"})):
            r = httpx.post(base + path, json=body, headers=AUTH)
            assert r.status_code == status
            assert r.headers.get("retry-after") == retry_after
            assert r.headers["x-fault-injected"] == mode
            assert r.json()["error"]["code"] == status and r.json()["error"]["message"]
        # auth still comes first
        assert httpx.post(base + EMB, json=REQUEST).status_code == 401


def test_dropped_connection_mid_body(reference):
    with serve_faults(drop=1.0) as base:
        for path, body in ((EMB, REQUEST), (CTX, reference["ctx_request"])):
            with pytest.raises(httpx.RemoteProtocolError):
                httpx.post(base + path, json=body, headers=AUTH)
        response, chunks, data, clean = raw_exchange(base, EMB, json.dumps(REQUEST).encode(), AUTH)
    assert response.status_code == 200 and header(response, b"x-fault-injected") == b"drop"
    assert not clean  # the connection closed without the last chunk
    # what arrived is the head and half of the rows, each complete
    text = data.decode()
    assert text.startswith('{"object":"list","data":[{"object":"embedding"')
    arrived = json.loads(text + "]}")["data"]
    assert len(arrived) == len(TEXTS) // 2
    expected = rows(reference["emb"])
    assert all(d["embedding"] == expected[d["index"]] for d in arrived)


@pytest.mark.parametrize("endpoint", ["emb", "ctx"])
def test_slow_body(reference, endpoint):
    path, request = (EMB, REQUEST) if endpoint == "emb" else (CTX, reference["ctx_request"])
    with serve_faults(slow=1.0, slow_seconds=2.0) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as c:
            start = time.monotonic()
            with c.stream("POST", path, json=request) as r:
                first = None
                data = b""
                for piece in r.iter_bytes():
                    first = first or time.monotonic() - start
                    data += piece
            total = time.monotonic() - start
    assert r.status_code == 200 and r.headers["x-fault-injected"] == "slow"
    # dribbled: the body starts early and takes the configured time (a behaviour,
    # not a speed: the bounds hold on a loaded machine)
    assert first < total / 2 and total >= 2.0
    assert json.loads(data) == reference[endpoint]


def test_shuffled_data(reference):
    with serve_faults(shuffle=1.0) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as c:
            r = c.post(EMB, json=REQUEST)
            again = c.post(EMB, json=REQUEST)
            ctx = c.post(CTX, json=reference["ctx_request"])
    assert r.headers["x-fault-injected"] == "shuffle"
    body = r.json()
    check_embeddings(body, len(TEXTS), "pplx-embed-v1-4b")
    order = [d["index"] for d in body["data"]]
    assert order != sorted(order)
    assert rows(body) == rows(reference["emb"]) and body["usage"] == reference["emb"]["usage"]
    # the next request is another draw: another order
    assert [d["index"] for d in again.json()["data"]] != order
    cbody = ctx.json()
    check_contextualized(cbody, [1 + d % 4 for d in range(30)] + [700], "pplx-embed-context-v1-0.6b")
    assert [d["index"] for d in cbody["data"]] != list(range(31))
    assert any([c["index"] for c in d["data"]] != sorted(c["index"] for c in d["data"]) for d in cbody["data"])
    assert doc_rows(cbody) == doc_rows(reference["ctx"])


def test_faults_are_deterministic_under_a_seed():
    rates = {"429": 0.2, "500": 0.1, "503": 0.1, "shuffle": 0.2}
    small = {"input": ["a", "b", "c", "d"], "model": "pplx-embed-v1-0.6b", "dimensions": 128}

    def observe(seed):
        with serve_faults(**rates, seed=seed) as base:
            with httpx.Client(base_url=base, headers=AUTH) as c:
                seen = []
                for _ in range(60):
                    r = c.post(EMB, json=small)
                    seen.append(r.headers.get("x-fault-injected", r.status_code))
                    if r.status_code == 200:
                        seen.append(tuple(d["index"] for d in r.json()["data"]))
                return seen

    first = observe(7)
    assert observe(7) == first
    assert observe(8) != first
    # and it is the plan's sequence: one draw per request, in order
    plan = FaultPlan(FaultConfig(rates, seed=7))
    assert [s for s in first if not isinstance(s, tuple)] == [plan.draw().mode or 200 for _ in range(60)]


def test_fault_rates_are_honoured():
    rates = {"429": 0.1, "500": 0.05, "503": 0.05, "drop": 0.1, "slow": 0.1, "shuffle": 0.2}
    plan = FaultPlan(FaultConfig(rates, seed=1))
    counts = Counter(plan.draw().mode for _ in range(20_000))
    for mode, rate in rates.items():
        assert abs(counts[mode] / 20_000 - rate) < 0.01, mode
    assert abs(counts[None] / 20_000 - 0.4) < 0.015


def test_no_faults_by_default(reference):
    with running(api_keys=[KEY]) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as c:
            for _ in range(20):
                r = c.post(EMB, json=REQUEST)
                assert r.status_code == 200 and "x-fault-injected" not in r.headers
                assert r.json() == reference["emb"]


@pytest.mark.parametrize("rates,message", [
    ({"418": 0.1}, "unknown fault mode"),
    ({"429": 1.5}, r"in \[0, 1\]"),
    ({"429": -0.1}, r"in \[0, 1\]"),
    ({"429": 0.6, "drop": 0.6}, "add up to 1.2"),
])
def test_fault_config_errors(rates, message):
    with pytest.raises(ValueError, match=message):
        FaultConfig(rates)


def test_fault_config_parse():
    config = FaultConfig.parse(["429=0.25", "shuffle=0.5"], seed=4, retry_after=3)
    assert config.rates == {"429": 0.25, "shuffle": 0.5} and config.seed == 4 and config.retry_after == 3
    assert tuple(MODES) == ("429", "500", "503", "drop", "slow", "shuffle")
    for bad in ("429", "429=", "=0.1", "429=lots"):
        with pytest.raises(ValueError):
            FaultConfig.parse([bad])
