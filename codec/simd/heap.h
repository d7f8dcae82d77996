/* heap.h - the top-k heaps of the scans (topk.h) and the keys they order.
 *
 * Each query keeps a fixed-size max-heap of its k best (key, row) pairs,
 * smaller key = better: Hamming distance, -dot, or an order-preserving int32
 * image of the float32 cosine (pplx_key_of_score).  One total order for all
 * metrics, with ties broken by the lower row index, makes the result the
 * same whatever the tiling or thread count.  The root is the worst entry:
 * a candidate replaces it and sifts down (pplx_heap_replace), so a scan's
 * common case, a row that loses to the root, is one comparison (and 16 of
 * them in four vector compares, pplx_heap_offer).  Heaps start full of
 * sentinels (PPLX_NO_KEY, PPLX_NO_ROW) that every real entry beats; heaps
 * of row ranges scanned apart are merged with the full (key, row) order and
 * sorted best first at the end.
 */
#ifndef PPLX_HEAP_H
#define PPLX_HEAP_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PPLX_NO_ROW INT64_MAX
#define PPLX_NO_KEY INT32_MAX

static inline int pplx_worse(int32_t ka, int64_t ia, int32_t kb, int64_t ib) {
    return ka > kb || (ka == kb && ia > ib);
}

static void pplx_heap_init(int32_t *key, int64_t *idx, size_t k) {
    for (size_t i = 0; i < k; i++) {
        key[i] = PPLX_NO_KEY;
        idx[i] = PPLX_NO_ROW;
    }
}

/* Replace the worst entry (the root) by (nk, ni) and restore the heap. */
static inline void pplx_heap_replace(int32_t *key, int64_t *idx, size_t k, int32_t nk, int64_t ni) {
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        int32_t wk = nk;
        int64_t wi = ni;
        if (l < k && pplx_worse(key[l], idx[l], wk, wi)) { w = l; wk = key[l]; wi = idx[l]; }
        if (r < k && pplx_worse(key[r], idx[r], wk, wi)) { w = r; }
        if (w == i) break;
        key[i] = key[w];
        idx[i] = idx[w];
        i = w;
    }
    key[i] = nk;
    idx[i] = ni;
}

static void pplx_heap_merge(int32_t *key, int64_t *idx, const int32_t *skey, const int64_t *sidx, size_t k) {
    for (size_t i = 0; i < k; i++)
        if (sidx[i] != PPLX_NO_ROW && pplx_worse(key[0], idx[0], skey[i], sidx[i]))
            pplx_heap_replace(key, idx, k, skey[i], sidx[i]);
}

/* Heap -> ascending (best first), in place: repeatedly move the worst to the end. */
static void pplx_heap_sort(int32_t *key, int64_t *idx, size_t k) {
    for (size_t n = k; n > 1; n--) {
        int32_t tk = key[0];
        int64_t ti = idx[0];
        int32_t lk = key[n - 1];
        int64_t li = idx[n - 1];
        pplx_heap_replace(key, idx, n - 1, lk, li);
        key[n - 1] = tk;
        idx[n - 1] = ti;
    }
}

/* Offer the keys d[0..n) of rows base + 0..n-1 (in increasing order) to a
 * heap.  Nearly every key of a long scan loses to the heap's worst, so they
 * are tested 16 at a time against it with no branch, and only a group
 * holding a winner is gone through key by key.  Same result as one test per
 * key: the worst only gets better, so a key that loses to the group's
 * starting worst loses to every later one.  With GCC and clang the 16 tests
 * are four 4-lane vector compares (generic vector extensions: SSE2 on
 * x86-64, NEON on AArch64, no instruction-set assumption beyond the
 * baseline): a scalar test per key cost a 100 x 100,000 Hamming search 15%
 * of its time (Zen 4), these about 8%. */
#define PPLX_OFFER_GROUP 16
#if defined(__GNUC__) || defined(__clang__)
typedef int32_t pplx_v4i32 __attribute__((vector_size(16)));
typedef uint64_t pplx_v2u64 __attribute__((vector_size(16)));
static inline int pplx_any_below(const int32_t *d, int32_t worst) {
    const pplx_v4i32 t = {worst, worst, worst, worst};
    pplx_v4i32 m = {0, 0, 0, 0};
    for (int u = 0; u < PPLX_OFFER_GROUP; u += 4) {
        pplx_v4i32 v;
        memcpy(&v, d + u, sizeof v);
        m |= v < t;
    }
    const pplx_v2u64 h = (pplx_v2u64)m;
    return (h[0] | h[1]) != 0;
}
#else
static inline int pplx_any_below(const int32_t *d, int32_t worst) {
    int hit = 0;
    for (int u = 0; u < PPLX_OFFER_GROUP; u++) hit |= d[u] < worst;
    return hit;
}
#endif

static inline void pplx_heap_offer(int32_t *key, int64_t *idx, size_t k, const int32_t *d, size_t n, int64_t base) {
    size_t j = 0;
    for (; j + PPLX_OFFER_GROUP <= n; j += PPLX_OFFER_GROUP) {
        if (!pplx_any_below(d + j, key[0])) continue;
        for (size_t u = j; u < j + PPLX_OFFER_GROUP; u++)
            if (d[u] < key[0]) pplx_heap_replace(key, idx, k, d[u], base + (int64_t)u);
    }
    for (; j < n; j++)
        if (d[j] < key[0]) pplx_heap_replace(key, idx, k, d[j], base + (int64_t)j);
}

/* Order-preserving float32 -> int32 (NaN excluded), negated with ~ so that
 * a larger similarity gives a smaller key.  Both maps are bijections. */
static inline int32_t pplx_key_of_score(float s) {
    int32_t b;
    memcpy(&b, &s, 4);
    return ~(b >= 0 ? b : b ^ 0x7FFFFFFF);
}

static inline float pplx_score_of_key(int32_t key) {
    int32_t o = ~key;
    int32_t b = o >= 0 ? o : o ^ 0x7FFFFFFF;
    float s;
    memcpy(&s, &b, 4);
    return s;
}

/* Estimated cosines below this cannot beat a heap whose worst key is `key`. */
static inline float pplx_reject_below(int32_t key) {
    if (key == PPLX_NO_KEY) return -INFINITY;  /* the heap still has free slots */
    float w = pplx_score_of_key(key);
    return w - fabsf(w) * 1e-5f - 1e-30f;
}

/* Cosine of an exact dot product, rounded once to float32; 0 for a zero vector. */
static inline float pplx_cosine(int32_t dot, float qn, float xn) {
    double den = (double)qn * (double)xn;
    return den > 0 ? (float)((double)dot / den) : 0.0f;
}

#endif
