"""The threads searches run on (codec/simd/threads.h): a small pool of the
build's own POSIX or Win32 threads, no OpenMP runtime.  The pool grows to
the threads asked for and parts really run on it; a thread the system
refuses costs only speed (the threads there are, the caller's at least, run
every part); concurrent callers, fork() and ThreadSanitizer find nothing
shared that should not be; and the answer is the same whatever the thread
count (tests/test_search.py checks that in depth)."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import pplx_codec as pc
import reference as ref
from helpers import required_in_ci
from pplx_codec import _search, search

ROOT = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")
OPENMP_RUNTIME = re.compile(r"^lib(g|i|)omp\d*[.-]")  # libgomp (GCC), libomp (LLVM), libiomp5 (Intel)


def run_python(*code: str) -> subprocess.CompletedProcess:
    """A fresh interpreter (so a fresh pool) running the pieces of code in turn."""
    script = "\n".join(textwrap.dedent(piece) for piece in code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)


def stats_after(fn):
    """(result, {"workers": threads in the pool, "refused": thread starts
    refused, "helped": parts pool threads ran}) after one call."""
    out = fn()
    return out, dict(zip(("workers", "refused", "helped"), _search._thread_stats(), strict=True))


@pytest.fixture
def refuse_after():
    """_search._refuse_threads_after for the test; the limit is lifted afterwards."""
    before = _search._refuse_threads_after(None)
    yield _search._refuse_threads_after
    _search._refuse_threads_after(before)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    codes = rng.integers(0, 256, (3 * 2048, 40), dtype=np.uint8)  # 3 row parts of 2048 for 3 threads
    vecs = rng.integers(-128, 128, (3 * 2048, 72), dtype=np.int8)
    return codes, vecs


def calls(codes, vecs):
    """Every threaded entry point split 3 ways (by rows or by queries), as
    (name, fn(threads), the reference answer)."""
    q, v = codes[:12], vecs[:12]
    return [
        ("search_binary rows", lambda t: search.search_binary(q[:1], codes, 7, threads=t),
         ref.search_binary(q[:1], codes, 7)),
        ("search_binary queries", lambda t: search.search_binary(q, codes, 7, threads=t),
         ref.search_binary(q, codes, 7)),
        ("search_int8 cosine rows", lambda t: search.search_int8(v[:2], vecs, 7, threads=t),
         ref.search_int8(v[:2], vecs, 7, "cosine")),
        ("search_int8 dot queries", lambda t: search.search_int8(v, vecs, 7, "dot", threads=t),
         ref.search_int8(v, vecs, 7, "dot")),
        ("hamming_matrix", lambda t: (search.hamming_matrix(q[:5], codes, threads=t),),
         (ref.hamming_matrix(q[:5], codes),)),
        ("dot_matrix", lambda t: (search.dot_matrix(v[:5], vecs, threads=t),), (ref.dot_matrix(v[:5], vecs),)),
    ]


def assert_same(got, want, what=""):
    """Results equal, dtype and shape included; `what` names the call."""
    assert len(got) == len(want), what
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and g.shape == w.shape, what
        np.testing.assert_array_equal(g, w, err_msg=what)


def test_capabilities_name_the_threads():
    assert pc.capabilities()["threads"] == ("win32" if sys.platform == "win32" else "pthreads")
    r = subprocess.run([sys.executable, "-m", "pplx_codec", "info"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"threads:      {pc.capabilities()['threads']} (no OpenMP)" in r.stdout.splitlines()


POOL = """
    import numpy as np
    from pplx_codec import _search, search
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (8 * 2048, 16), dtype=np.uint8)
    vecs = rng.integers(-128, 128, (8 * 2048, 24), dtype=np.int8)
    calls = [
        lambda t: search.search_binary(codes[:1], codes, 5, threads=t),
        lambda t: search.search_binary(codes[:40], codes, 5, threads=t),
        lambda t: search.search_int8(vecs[:2], vecs, 5, threads=t),
        lambda t: search.search_int8(vecs[:40], vecs, 5, "dot", threads=t),
        lambda t: (search.hamming_matrix(codes[:5], codes, threads=t),),
        lambda t: (search.dot_matrix(vecs[:5], vecs, threads=t),),
    ]
    def same(t):
        return all(all((a == b).all() for a, b in zip(c(t), c(1))) for c in calls)
    def stats():
        return list(_search._thread_stats()[:2])
"""


def test_pool_grows_to_the_threads_asked_for():
    """A fresh process has no pool thread; a call with threads=t grows the
    pool to t - 1 threads (the caller is the t-th), later calls reuse them."""
    r = run_python(POOL, """
        got = [stats()]
        for t in (1, 3, 2, 3, 5):
            assert same(t)
            got.append(stats())
        print(got)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([[0, 0], [0, 0], [2, 0], [2, 0], [2, 0], [4, 0]])


def test_refused_threads_leave_their_parts_to_the_caller():
    """As when the system refuses a thread (EAGAIN): no pool thread at all,
    or fewer than asked for; the threads there are (the caller's at least)
    run every part, the answers are the same."""
    r = run_python(POOL, """
        _search._refuse_threads_after(0)
        assert same(3) and same(8)
        got = [stats(), _search._thread_stats()[2]]
        _search._refuse_threads_after(2)
        assert same(3) and same(8)
        got.append(stats())
        assert _search._refuse_threads_after(None) == 2
        assert same(8)
        print(got + [stats()])
    """)
    assert r.returncode == 0, r.stderr
    # refusals: one per call that wanted a thread more than allowed (6 calls x 2 thread counts,
    # then only the threads=8 calls); nothing was helped while the pool was empty
    assert r.stdout.strip() == str([[0, 12], 0, [2, 18], [7, 18]])


def test_parts_run_on_pool_threads(data):
    """Parts really run on the pool's threads, not only on the caller's.

    Whether a pool thread takes a part before the caller has done them all is
    a race with the thread's wake-up: on a fast tier (AVX-512 on Zen 4 scans a
    2 MB part in tens of microseconds, about a KVM wake-up) the caller could
    win ten calls in a row.  So the parts are ~8 MB and the calls go on until a
    pool thread has helped (at most 50; every answer checked)."""
    rng = np.random.default_rng(3)
    vecs = rng.integers(-128, 128, (3 * 8192, 1024), dtype=np.int8)  # ~8 MB per part
    want = search.search_int8(vecs[:2], vecs, 10, threads=1)
    helped = _search._thread_stats()[2]
    calls_made = 0
    while calls_made < 50:
        got, stats = stats_after(lambda: search.search_int8(vecs[:2], vecs, 10, threads=3))
        calls_made += 1
        assert_same(got, want)
        assert stats["workers"] >= 2
        if stats["helped"] > helped:
            break
    assert stats["helped"] > helped, f"no part ran on a pool thread in {calls_made} calls"


def test_every_entry_point_answers_the_same_on_threads(data, refuse_after):
    """Each entry point, split 3 ways, on a pool that may or may not run its
    parts; with the pool capped at one thread; on the caller alone."""
    for limit in (None, 1, 0):
        refuse_after(limit)
        for name, fn, want in calls(*data):
            assert_same(fn(3), want, f"{name}, pool limit {limit}")


@pytest.mark.skipif(not LINUX, reason="sets RLIMIT_AS and reads /proc/self/status (Linux)")
def test_system_refusing_threads_costs_only_speed():
    """A real refusal: with the address space capped 1 MiB above what the
    process uses, pthread_create cannot map a thread's stack (8 MiB by
    default) and fails with EAGAIN; the search still answers right."""
    r = run_python("""
        import resource
        import numpy as np
        import pplx_codec as pc
        from pplx_codec import _search
        soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
        if soft != resource.RLIM_INFINITY and soft < 4 << 20:
            print("skip: RLIMIT_STACK", soft)   # thread stacks small enough to fit under the cap
            raise SystemExit
        X = np.random.default_rng(0).integers(0, 256, (3 * 2048, 16), dtype=np.uint8)
        want = pc.search_binary(X[:1], X, 5, threads=1)   # warms every allocation the call makes
        vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (1 << 20), resource.RLIM_INFINITY))
        got = pc.search_binary(X[:1], X, 5, threads=3)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert all((g == w).all() for g, w in zip(got, want))
        print(*_search._thread_stats())
    """)
    assert r.returncode == 0, r.stderr
    if r.stdout.startswith("skip:"):
        pytest.skip(f"thread stacks would fit under the address-space cap ({r.stdout.strip()})")
    assert r.stdout.split() == ["0", "1", "0"]  # no pool thread (its start refused): the caller ran every part


@pytest.mark.skipif(not LINUX, reason="reads the mapped libraries from /proc/self/maps (Linux)")
def test_no_openmp_runtime_is_loaded():
    """A threaded search loads no OpenMP runtime, so none can clash with
    torch's or faiss's in the same process."""
    r = run_python("""
        import numpy as np
        import pplx_codec as pc
        X = np.zeros((3 * 2048, 16), np.uint8)
        pc.search_binary(X[:1], X, 5, threads=3)
        pc.search_binary(X[:12], X, 5, threads=3)
        for line in open("/proc/self/maps"):
            if "/" in line:
                print(line.split()[-1].rsplit("/", 1)[-1])
    """)
    assert r.returncode == 0, r.stderr
    libs = set(r.stdout.split())
    assert any(name.startswith("_search.") for name in libs)  # the listing is real
    assert not [name for name in libs if OPENMP_RUNTIME.match(name)]


def test_concurrent_callers_share_nothing(data):
    """Two Python threads searching at once (the GIL is released), each
    splitting its search over threads of its own."""
    cases = calls(*data)
    barrier = threading.Barrier(2)
    errors = []

    def work(offset):
        try:
            barrier.wait()
            for i in range(2 * len(cases)):
                name, fn, want = cases[(i + offset) % len(cases)]
                assert_same(fn(3), want, name)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in workers)
    assert not errors, errors


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_threaded_search_after_fork():
    """A forked child starts with an empty pool (its parent's threads were not
    copied) and grows its own (an OpenMP runtime used before fork() can hang
    the child)."""
    r = run_python("""
        import os
        import numpy as np
        import pplx_codec as pc
        from pplx_codec import _search
        X = np.random.default_rng(0).integers(0, 256, (3 * 2048, 16), dtype=np.uint8)
        want = pc.search_binary(X[:12], X, 5, threads=1)
        before = pc.search_binary(X[:12], X, 5, threads=3)
        pid = os.fork()
        if pid == 0:
            empty = _search._thread_stats()[0] == 0
            got = pc.search_binary(X[:12], X, 5, threads=3)
            ok = all((g == w).all() for g, w in zip(got, want)) and _search._thread_stats()[0] == 2
            os._exit(0 if empty and ok else 1)
        _, status = os.waitpid(pid, 0)
        assert all((g == w).all() for g, w in zip(before, want))
        print(os.waitstatus_to_exitcode(status))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"]


# Concurrent callers (Python threads releasing the GIL do this) on one pool:
# jobs of 1-9 parts, each part writing only its own slot, checked after every
# call; then the pool capped below its size, and at none.
TSAN_DRIVER = r"""
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "simd/threads.h"

typedef struct { int nparts, runs[9]; long sums[9]; } job_t;

static void part(void *ctx, int p) {
    job_t *j = ctx;
    long s = 0;
    for (int i = 0; i < 500 * (p + 1); i++) s += i ^ p;
    j->runs[p]++;
    j->sums[p] = s;
}

static void *caller(void *arg) {
    unsigned seed = (unsigned)(size_t)arg;
    for (int it = 0; it < 1500; it++) {
        job_t j;
        memset(&j, 0, sizeof j);
        j.nparts = 1 + (int)(rand_r(&seed) % 9);
        pplx_run_parts(j.nparts, part, &j);
        for (int p = 0; p < j.nparts; p++)
            if (j.runs[p] != 1 || j.sums[p] == 0) {
                printf("part %d of %d ran %d times\n", p, j.nparts, j.runs[p]);
                exit(1);
            }
    }
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, caller, (void *)(size_t)(i + 1));
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    pplx_threads_start_limit = 2;
    caller((void *)5);
    int workers;
    long refused;
    pplx_threads_stats(&workers, &refused);
    printf("pool %d refused %ld ok\n", workers, refused);
    return 0;
}
"""


@pytest.mark.skipif(not (ROOT / "codec" / "simd" / "threads.h").exists(), reason="needs the source tree (codec/)")
@pytest.mark.skipif(sys.platform == "win32", reason="the driver uses POSIX threads to make concurrent callers")
def test_pool_under_thread_sanitizer(tmp_path):
    cc = shlex.split(os.environ.get("CC", "")) or [
        shutil.which("cc") or shutil.which("gcc") or shutil.which("clang") or ""]
    if not cc[0] or not shutil.which(cc[0]):
        required_in_ci("the pool under ThreadSanitizer", "no C compiler on PATH (cc/gcc/clang, or $CC)")
    # A compiler without the ThreadSanitizer runtime cannot run this test at
    # all: say so rather than fail on it (in CI it must run).
    (tmp_path / "probe.c").write_text("int main(void) { return 0; }\n")
    probe = subprocess.run([*cc, "-fsanitize=thread", str(tmp_path / "probe.c"), "-o", str(tmp_path / "probe")],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0 or subprocess.run([str(tmp_path / "probe")], capture_output=True).returncode != 0:
        required_in_ci("the pool under ThreadSanitizer",
                       f"{cc[0]} cannot build or run with -fsanitize=thread here: {probe.stderr.strip()[-300:]}")
    (tmp_path / "driver.c").write_text(TSAN_DRIVER)
    build = subprocess.run([*cc, "-O1", "-g1", "-fsanitize=thread", "-Wall", "-Wextra", "-Werror",
                            "-Wno-unused-function", f"-I{ROOT / 'codec'}", str(tmp_path / "driver.c"),
                            "-o", str(tmp_path / "driver"), "-pthread"],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(tmp_path / "driver")], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TSAN_OPTIONS": "halt_on_error=1"})
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr[-6000:]}"
    assert "ThreadSanitizer" not in run.stderr, run.stderr[-6000:]
    # 4 callers asked for up to 8 pool threads; the capped caller's 9-part
    # jobs found the pool above the cap (8 > 2), so nothing was refused
    assert run.stdout.strip() == "pool 8 refused 0 ok", run.stdout
