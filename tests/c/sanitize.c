/* The C kernels under AddressSanitizer and UndefinedBehaviorSanitizer.
 *
 * Every kernel of every table this CPU runs (detected with the headers' own
 * pplx_isa_detected, so a new tier is covered as soon as dispatch.h fills
 * it), and the fused top-k drivers of topk.h, at awkward sizes (zero
 * included).  Each buffer is allocated at exactly the size the kernel may
 * touch, so a read or write one byte past the end is an ASan report, and
 * starts 0..3 elements past a 64-byte boundary, so no vector path can count
 * on alignment (whole elements: a typed pointer off its natural alignment
 * would be undefined in the serial C code itself, and numpy never makes one).
 * Every tier's output must equal the plain reference written here, byte for
 * byte, stride gaps included (a kernel must not write between rows); where
 * the contract leaves the output open (bytes decoded before a base64 error)
 * the tiers must agree with the serial one on the result and error offset.
 * The compute-peak loops of codec/simd/peak/ (what `pplx-codec bench` times
 * for its peak fractions) are checked against their oracle too (peaks.h).
 *
 *   cc -O1 -g1 -fsanitize=address,undefined -fno-sanitize-recover=all \
 *      -fno-omit-frame-pointer -Wall -Wextra -Werror -Icodec tests/c/sanitize.c -lm
 *   ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:abort_on_error=1 ./a.out
 *
 * Run so by tests/test_c_sanitize.py.  Prints one summary line; exits
 * non-zero on any mismatch.  A sanitizer finding aborts with its report, and
 * this harness then names the case (kernel, sizes, tier) on stderr. */
#define _POSIX_C_SOURCE 200112L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include "simd/dispatch.h"
#include "simd/calibrate.h"
#include "simd/topk.h"
#include "simd/json/json.h"
#include "check.h"

/* The case being run (AT, where) is printed when the run dies on SIGABRT
 * (the sanitizers abort with abort_on_error=1, as tests/test_c_sanitize.py
 * sets) or SIGFPE; check_tier names the tier (check.h). */
static void on_fatal(int sig) {
    static const char a[] = "sanitize: stopped in ", b[] = " [tier ", c[] = "]\n";
    const char *parts[] = {a, where, b, check_tier, c};
    for (int i = 0; i < 5; i++)
        if (write(2, parts[i], strlen(parts[i])) < 0) break;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- buffers and data ------------------------------------------------- */

#define JUNK 0xA5
#define JUNK32 ((int32_t)0xA5A5A5A5u)

/* n usable bytes at off bytes past a 64-byte boundary, filled with JUNK:
 * nothing else is addressable after them, so ASan sees a one-byte overrun. */
static void *xalloc(size_t n, size_t off) {
    void *base = NULL;
    if (posix_memalign(&base, 64, n + off) != 0) {
        perror("posix_memalign");
        exit(2);
    }
    memset(base, JUNK, n + off);
    return (char *)base + off;
}

static void xfree(void *p, size_t off) { free((char *)p - off); }

static uint64_t rng = 0x243F6A8885A308D3ull;

static uint64_t rnd(void) { /* splitmix64: deterministic, so failures reproduce */
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_random(void *p, size_t n) {
    for (size_t i = 0; i < n; i++) ((uint8_t *)p)[i] = (uint8_t)rnd();
}

/* Element offsets 0..3 of a buffer, different per buffer and per case. */
static size_t off_of(size_t a, size_t b) { return (a * 7 + b * 3) % 4; }

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Dimensions (bytes for base64 and bit codes) around every vector width. */
static const size_t DIMS[] = {0,  1,  2,  3,  4,   5,   6,   7,   8,   9,   15,   16,  17, 31,
                              32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1024, 2560};
/* Row counts: empty, below and around the kernels' 2- and 3-row blocks,
 * and 600, past one scan tile. */
static const size_t ROWS[] = {0, 1, 2, 3, 4, 5, 17, 600};

static pplx_table tabs[PPLX_ISA_COUNT];
static int ntab;

/* ---- base64 ----------------------------------------------------------- */

static const char REF_ALPHA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int ref_b64_value(uint8_t c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static size_t ref_b64_encode(const uint8_t *s, size_t n, uint8_t *d) {
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned b0 = s[i], b1 = i + 1 < n ? s[i + 1] : 0, b2 = i + 2 < n ? s[i + 2] : 0;
        d[o++] = (uint8_t)REF_ALPHA[b0 >> 2];
        d[o++] = (uint8_t)REF_ALPHA[(b0 & 3) << 4 | b1 >> 4];
        d[o++] = i + 1 < n ? (uint8_t)REF_ALPHA[(b1 & 15) << 2 | b2 >> 6] : '=';
        d[o++] = i + 2 < n ? (uint8_t)REF_ALPHA[b2 & 63] : '=';
    }
    return o;
}

/* The strict decoder's verdict on a text whose quads before the last are
 * valid (the contract of kernels.h): bytes of the last quad, or an error
 * code with the offset of the offending char. */
static ptrdiff_t ref_last_quad(const uint8_t *s, size_t n, size_t *err) {
    const uint8_t *q = s + n - 4;
    int a = ref_b64_value(q[0]), b = ref_b64_value(q[1]);
    if (a < 0) { *err = n - 4; return PPLX_B64_BADCHAR; }
    if (b < 0) { *err = n - 3; return PPLX_B64_BADCHAR; }
    if (q[3] == '=' && q[2] == '=') {
        if (b & 15) { *err = n - 3; return PPLX_B64_NONCANON; }
        return 1;
    }
    if (q[3] == '=') {
        int c = ref_b64_value(q[2]);
        if (c < 0) { *err = n - 2; return PPLX_B64_BADCHAR; }
        if (c & 3) { *err = n - 2; return PPLX_B64_NONCANON; }
        return 2;
    }
    if (q[2] == '=') { *err = n - 1; return PPLX_B64_BADPAD; }
    if (ref_b64_value(q[2]) < 0) { *err = n - 2; return PPLX_B64_BADCHAR; }
    if (ref_b64_value(q[3]) < 0) { *err = n - 1; return PPLX_B64_BADCHAR; }
    return 3;
}

/* Decode text[0..m) with every tier into an output of exactly the size the
 * callers allocate (pplx_b64_decoded_len, 0 when negative); every tier must
 * agree with the serial one on the result, the error offset and the bytes.
 * Returns the serial result (error offset in *err). */
static ptrdiff_t b64_decode_all(const uint8_t *text, size_t m, size_t off, uint8_t *serial_out, size_t *err) {
    ptrdiff_t dl = pplx_b64_decoded_len(text, m);
    size_t cap = dl > 0 ? (size_t)dl : 0;
    ptrdiff_t r0 = 0;
    size_t e0 = 0;
    for (int t = 0; t < ntab; t++) {
        check_tier = pplx_isa_names[tabs[t].isa];
        uint8_t *out = xalloc(cap, off);
        size_t e = (size_t)-7;
        ptrdiff_t r = tabs[t].b64_decode(text, m, out, &e);
        CHECK(r <= (ptrdiff_t)cap, "b64_decode m=%zu returned %td for a %zu-byte output", m, r, cap);
        if (t == 0) {
            r0 = r;
            e0 = e;
            if (r > 0 && serial_out) memcpy(serial_out, out, (size_t)r);
        } else {
            CHECK(r == r0, "b64_decode m=%zu: %td, serial %td", m, r, r0);
            CHECK(r >= 0 || e == e0, "b64_decode m=%zu: error offset %zu, serial %zu", m, e, e0);
            CHECK(r <= 0 || !serial_out || memcmp(out, serial_out, (size_t)r) == 0,
                  "b64_decode m=%zu: bytes differ from serial", m);
        }
        xfree(out, off);
    }
    check_tier = "";
    *err = e0;
    return r0;
}

static void test_base64(void) {
    static const size_t extra[] = {23, 24, 25, 27, 28, 29, 30, 51, 52, 53, 75, 76, 77,
                                   103, 104, 105, 106, 107, 108, 4099};
    /* Neighbours of every alphabet range, '=', controls and high bytes. */
    static const uint8_t bad[] = {0x00, '\n', ' ', '!', '*', ',', '-', '.', ':',
                                  '=', '@', '[', '`', '{', 0x7F, 0x80, 0xAB, 0xFF};
    size_t sizes[NELEM(DIMS) + NELEM(extra)];
    size_t nsizes = 0;
    for (size_t i = 0; i < NELEM(DIMS); i++) sizes[nsizes++] = DIMS[i];
    for (size_t i = 0; i < NELEM(extra); i++) sizes[nsizes++] = extra[i];

    for (size_t si = 0; si < nsizes; si++) {
        const size_t n = sizes[si], m = pplx_b64_encoded_len(n);
        AT("base64 encode/decode n=%zu bytes (%zu chars)", n, m);
        uint8_t *want = malloc(m + 1), *plain = malloc(n + 1);
        for (size_t off = 0; off < 4; off++) {
            uint8_t *src = xalloc(n, off);
            fill_random(src, n);
            CHECK(ref_b64_encode(src, n, want) == m, "reference encode n=%zu", n);
            for (int t = 0; t < ntab; t++) {
                check_tier = pplx_isa_names[tabs[t].isa];
                uint8_t *enc = xalloc(m, 3 - off);
                size_t w = tabs[t].b64_encode(src, n, enc);
                CHECK(w == m && memcmp(enc, want, m) == 0, "b64_encode n=%zu off=%zu", n, off);
                xfree(enc, 3 - off);
            }
            check_tier = "";
            uint8_t *text = xalloc(m, (off + 1) % 4);
            memcpy(text, want, m);
            size_t err;
            ptrdiff_t r = b64_decode_all(text, m, (off + 2) % 4, plain, &err);
            CHECK(r == (ptrdiff_t)n && memcmp(plain, src, n) == 0, "b64_decode round trip n=%zu: %td", n, r);
            /* Wrong lengths: cut 1..3 chars (no output may be written). */
            for (size_t cut = 1; cut <= 3 && cut <= m; cut++) {
                r = b64_decode_all(text, m - cut, off, NULL, &err);
                CHECK(r == PPLX_B64_BADLEN && err == (m - cut) - (m - cut) % 4, "b64_decode BADLEN m=%zu: %td at %zu",
                      m - cut, r, err);
            }
            if (off == n % 4) {
                /* One bad char at each position (sampled on long texts). */
                for (size_t p = 0; p < m; p++) {
                    if (m > 160 && !(p < 8 || p + 8 >= m || p % 29 == 0 || p % 128 < 2 || p % 128 > 125)) continue;
                    for (size_t b = 0; b < NELEM(bad); b++) {
                        uint8_t keep = text[p];
                        text[p] = bad[b];
                        r = b64_decode_all(text, m, (p + b) % 4, NULL, &err);
                        size_t ref_err = 0;
                        ptrdiff_t ref = p + 4 < m ? PPLX_B64_BADCHAR : ref_last_quad(text, m, &ref_err);
                        if (p + 4 < m) ref_err = p;
                        if (ref >= 0) ref += (ptrdiff_t)(m / 4 - 1) * 3;
                        CHECK(r == ref && (r >= 0 || err == ref_err),
                              "b64_decode m=%zu char 0x%02x at %zu: %td at %zu, reference %td at %zu", m, bad[b], p, r,
                              err, ref, ref_err);
                        text[p] = keep;
                    }
                }
            }
            xfree(text, (off + 1) % 4);
            xfree(src, off);
        }
        free(want);
        free(plain);
    }

    /* Every last quad over a set of chars that covers each padding rule,
     * behind prefixes that put it before, inside and after the vector loop. */
    static const uint8_t qc[] = {'A', 'B', 'Q', 'g', 'w', '+', '/', '=', '!', 0x80};
    static const size_t prefixes[] = {0, 4, 36, 40, 44, 96, 132, 136, 140, 144};
    for (size_t pi = 0; pi < NELEM(prefixes); pi++) {
        const size_t m = prefixes[pi] + 4;
        AT("b64_decode of every last quad after %zu chars", prefixes[pi]);
        uint8_t *text = xalloc(m, pi % 4), *out = malloc(m);
        for (size_t i = 0; i < prefixes[pi]; i++) text[i] = (uint8_t)REF_ALPHA[rnd() % 64];
        for (size_t c = 0; c < 10000; c++) {
            text[m - 4] = qc[c % 10];
            text[m - 3] = qc[c / 10 % 10];
            text[m - 2] = qc[c / 100 % 10];
            text[m - 1] = qc[c / 1000];
            size_t err, ref_err = 0;
            ptrdiff_t r = b64_decode_all(text, m, c % 4, out, &err);
            ptrdiff_t ref = ref_last_quad(text, m, &ref_err);
            if (ref >= 0) ref += (ptrdiff_t)prefixes[pi] / 4 * 3;
            CHECK(r == ref && (r >= 0 || err == ref_err), "b64_decode last quad %.4s after %zu: %td at %zu, reference %td at %zu",
                  (const char *)text + m - 4, prefixes[pi], r, err, ref, ref_err);
            if (r > 0) { /* strict: a text decodes only if it is the encoding of what it decodes to */
                uint8_t again[200];
                CHECK(ref_b64_encode(out, (size_t)r, again) == m && memcmp(again, text, m) == 0,
                      "b64_decode accepted the non-canonical %.4s", (const char *)text + m - 4);
            }
        }
        xfree(text, pi % 4);
        free(out);
    }
}

/* ---- bits --------------------------------------------------------------- */

static const size_t BIT_EXTRA[] = {39, 40, 41, 95, 96, 97, 200, 1000};

static void test_bits_one(size_t n, size_t v) {
    const size_t nb = (n + 7) / 8;
    AT("bits pack/unpack/reverse n=%zu", n);
    static const float fv[] = {-1.5f, -0.0f, 0.0f, 1e-45f, -1e-45f, NAN, -NAN, INFINITY, -INFINITY, 0.5f, 3e38f};
    int8_t *x8 = xalloc(n, off_of(v, 1));
    uint8_t *xb = xalloc(n, off_of(v, 8));
    float *x32 = xalloc(n * 4, off_of(v, 2) * 4);
    double *x64 = xalloc(n * 8, off_of(v, 3) * 8);
    for (size_t j = 0; j < n; j++) {
        uint64_t r = rnd();
        x8[j] = r % 11 == 0 ? (int8_t)(r % 2 ? 127 : -128) : (int8_t)((int)(r % 5) - 2);
        x32[j] = fv[r % NELEM(fv)];
        x64[j] = r % 13 == 0 ? 5e-324 : (double)fv[(r >> 8) % NELEM(fv)];
        xb[j] = (uint8_t)(r >> 16) % 3 == 0 ? 0 : (uint8_t)(r >> 24); /* bools read from raw bytes: 2, 128, 255... */
    }
    uint8_t *s = xalloc(nb, off_of(v, 4));
    fill_random(s, nb);
    for (int msb = 0; msb < 2; msb++) {
        uint8_t want8[400] = {0}, wantb[400] = {0}, want32[400] = {0}, want64[400] = {0};
        for (size_t j = 0; j < n; j++) {
            unsigned sh = msb ? 7 - j % 8 : j % 8;
            want8[j / 8] |= (uint8_t)((x8[j] > 0) << sh);
            wantb[j / 8] |= (uint8_t)((xb[j] != 0) << sh);
            want32[j / 8] |= (uint8_t)((x32[j] > 0) << sh);
            want64[j / 8] |= (uint8_t)((x64[j] > 0) << sh);
        }
        for (int t = 0; t < ntab; t++) {
            check_tier = pplx_isa_names[tabs[t].isa];
            const pplx_table *T = &tabs[t];
            size_t o = off_of(v + (size_t)t, 5);
            uint8_t *d = xalloc(nb, o);
            T->pack_i8(x8, n, d, msb);
            CHECK(memcmp(d, want8, nb) == 0, "pack_i8 n=%zu msb=%d", n, msb);
            memset(d, JUNK, nb);
            T->pack_b8(xb, n, d, msb);
            CHECK(memcmp(d, wantb, nb) == 0, "pack_b8 n=%zu msb=%d", n, msb);
            memset(d, JUNK, nb);
            T->pack_f32(x32, n, d, msb);
            CHECK(memcmp(d, want32, nb) == 0, "pack_f32 n=%zu msb=%d", n, msb);
            memset(d, JUNK, nb);
            T->pack_f64(x64, n, d, msb);
            CHECK(memcmp(d, want64, nb) == 0, "pack_f64 n=%zu msb=%d", n, msb);
            xfree(d, o);

            uint8_t *yu = xalloc(n, o);
            int8_t *yi = xalloc(n, (o + 1) % 4);
            float *yf = xalloc(n * 4, (o + 2) % 4 * 4);
            T->unpack_u8(s, n, yu, msb);
            T->unpack_i8(s, n, yi, msb);
            T->unpack_f32(s, n, yf, msb);
            size_t bad_u = n, bad_i = n, bad_f = n;
            for (size_t j = n; j-- > 0;) {
                int bit = s[j / 8] >> (msb ? 7 - j % 8 : j % 8) & 1;
                if (yu[j] != bit) bad_u = j;
                if (yi[j] != (bit ? 1 : -1)) bad_i = j;
                if (yf[j] != (bit ? 1.0f : -1.0f)) bad_f = j;
            }
            CHECK(bad_u == n, "unpack_u8 n=%zu msb=%d: first wrong value at %zu", n, msb, bad_u);
            CHECK(bad_i == n, "unpack_i8 n=%zu msb=%d: first wrong value at %zu", n, msb, bad_i);
            CHECK(bad_f == n, "unpack_f32 n=%zu msb=%d: first wrong value at %zu", n, msb, bad_f);
            xfree(yu, o);
            xfree(yi, (o + 1) % 4);
            xfree(yf, (o + 2) % 4 * 4);
        }
        check_tier = "";
    }
    /* reverse_bits: n bytes (a row of n * 8 bits) */
    uint8_t *rs = xalloc(n, off_of(v, 6));
    fill_random(rs, n);
    for (int t = 0; t < ntab; t++) {
        check_tier = pplx_isa_names[tabs[t].isa];
        uint8_t *d = xalloc(n, off_of(v, 7 + (size_t)t));
        tabs[t].reverse_bits(rs, n, d);
        size_t badj = n;
        for (size_t j = n; j-- > 0;) {
            unsigned want = 0;
            for (int b = 0; b < 8; b++) want |= (unsigned)(rs[j] >> b & 1) << (7 - b);
            if (d[j] != want) badj = j;
        }
        CHECK(badj == n, "reverse_bits n=%zu: first wrong byte at %zu", n, badj);
        xfree(d, off_of(v, 7 + (size_t)t));
    }
    check_tier = "";
    xfree(rs, off_of(v, 6));
    xfree(s, off_of(v, 4));
    xfree(x8, off_of(v, 1));
    xfree(xb, off_of(v, 8));
    xfree(x32, off_of(v, 2) * 4);
    xfree(x64, off_of(v, 3) * 8);
}

/* Unpacking through the cache-bypassing path (taken from pplx_stream_min
 * bytes of output, megabytes in production): lowered so that every size and
 * every destination phase, which decides the alignment prologue, goes
 * through it. */
static void test_unpack_streaming(void) {
#if PPLX_COMPILE_AVX2
    const size_t saved = pplx_stream_min;
    pplx_stream_min = 1;
    static const size_t sizes[] = {1, 7, 8, 9, 31, 32, 33, 63, 64, 65, 100, 257, 1024, 2560};
    for (size_t si = 0; si < NELEM(sizes); si++) {
        const size_t n = sizes[si], nb = (n + 7) / 8;
        uint8_t *s = xalloc(nb, si % 4);
        fill_random(s, nb);
        static const size_t phases[] = {0, 1, 2, 3, 5, 8, 13, 16, 24, 31, 32, 33};
        for (size_t pi = 0; pi < NELEM(phases); pi++) {
            const size_t off = phases[pi];
            AT("unpack_u8/unpack_i8 streaming n=%zu destination phase %zu", n, off);
            for (int msb = 0; msb < 2; msb++) {
                uint8_t *ref = malloc(n + 1);
                tabs[0].unpack_u8(s, n, ref, msb);
                for (int t = 1; t < ntab; t++) {
                    check_tier = pplx_isa_names[tabs[t].isa];
                    uint8_t *y = xalloc(n, off);
                    tabs[t].unpack_u8(s, n, y, msb);
                    CHECK(memcmp(y, ref, n) == 0, "unpack_u8 streaming n=%zu dst phase %zu msb=%d", n, off, msb);
                    tabs[t].unpack_i8(s, n, (int8_t *)y, msb);
                    size_t badj = n;
                    for (size_t j = n; j-- > 0;)
                        if ((int8_t)y[j] != (ref[j] ? 1 : -1)) badj = j;
                    CHECK(badj == n, "unpack_i8 streaming n=%zu dst phase %zu msb=%d: wrong at %zu", n, off, msb, badj);
                    xfree(y, off);
                    /* ASan does not see non-temporal stores (a builtin, not
                     * a plain store): guard bytes after the output do. */
                    uint8_t *z = xalloc(n + 64, off);
                    tabs[t].unpack_u8(s, n, z, msb);
                    size_t spill = n + 64;
                    for (size_t j = n + 64; j-- > n;)
                        if (z[j] != JUNK) spill = j;
                    CHECK(memcmp(z, ref, n) == 0 && spill == n + 64,
                          "unpack_u8 streaming n=%zu dst phase %zu msb=%d: wrote byte %zu past the end", n, off, msb,
                          spill - n);
                    xfree(z, off);
                }
                check_tier = "";
                free(ref);
            }
        }
        xfree(s, si % 4);
    }
    pplx_stream_min = saved;
#endif
}

static void test_bits(void) {
    size_t v = 0;
    for (size_t i = 0; i < NELEM(DIMS); i++) test_bits_one(DIMS[i], v++);
    for (size_t i = 0; i < NELEM(BIT_EXTRA); i++) test_bits_one(BIT_EXTRA[i], v++);
    test_unpack_streaming();
}

/* ---- int8 row statistics ------------------------------------------------ */

static void test_int8(void) {
    /* The AVX2 sum of squares flushes its int32 lanes every 64 Ki elements. */
    static const size_t big[] = {65535, 65536, 65537, 131072 + 31, 200000};
    size_t sizes[NELEM(DIMS) + NELEM(big)];
    size_t nsizes = 0;
    for (size_t i = 0; i < NELEM(DIMS); i++) sizes[nsizes++] = DIMS[i];
    for (size_t i = 0; i < NELEM(big); i++) sizes[nsizes++] = big[i];
    for (size_t si = 0; si < nsizes; si++) {
        const size_t n = sizes[si];
        AT("sumsq_i8/i8_to_f32 n=%zu", n);
        for (int extreme = 0; extreme < 2; extreme++) {
            int8_t *x = xalloc(n, off_of(si, (size_t)extreme));
            if (extreme) memset(x, 0x80, n); /* -128 everywhere: n * 16384 passes INT32_MAX at 131073 */
            else fill_random(x, n);
            int64_t want = 0;
            for (size_t j = 0; j < n; j++) want += (int64_t)x[j] * x[j];
            const float divs[] = {1.0f, 3.0f, 0.1f, 127.0f, 1e-30f, (float)sqrt((double)want)};
            for (int t = 0; t < ntab; t++) {
                check_tier = pplx_isa_names[tabs[t].isa];
                int64_t got = tabs[t].sumsq_i8(x, n);
                CHECK(got == want, "sumsq_i8 n=%zu extreme=%d: %lld, want %lld", n, extreme, (long long)got,
                      (long long)want);
                if (n > 4096) continue;
                for (size_t di = 0; di < NELEM(divs); di++) {
                    if (divs[di] == 0.0f) continue; /* a zero row's norm: callers do not divide by it */
                    size_t o = off_of(si + di, (size_t)t) * 4;
                    float *y = xalloc(n * 4, o);
                    tabs[t].i8_to_f32(x, n, divs[di], y);
                    size_t badj = n;
                    for (size_t j = n; j-- > 0;) {
                        float w = (float)x[j] / divs[di];
                        if (memcmp(&y[j], &w, 4) != 0) badj = j;
                    }
                    CHECK(badj == n, "i8_to_f32 n=%zu div=%g: first wrong value at %zu", n, (double)divs[di], badj);
                    xfree(y, o);
                }
            }
            check_tier = "";
            xfree(x, off_of(si, (size_t)extreme));
        }
    }
}

/* ---- similarity blocks ---------------------------------------------------- */

static int32_t ref_hamming(const uint8_t *a, const uint8_t *b, size_t w) {
    int32_t d = 0;
    for (size_t j = 0; j < w; j++)
        d += __builtin_popcount((unsigned)(a[j] ^ b[j]));
    return d;
}

static int32_t ref_dot8(const int16_t *q, const int8_t *x, size_t dim) {
    int64_t s = 0;
    for (size_t j = 0; j < dim; j++) s += (int64_t)q[j] * x[j];
    return (int32_t)s;
}

static int32_t ref_dot16(const int16_t *q, const int16_t *x, size_t dim) {
    int64_t s = 0;
    for (size_t j = 0; j < dim; j++) s += (int64_t)q[j] * x[j];
    return (int32_t)s;
}

/* Bytes a (count, stride, width) matrix of rows occupies, exactly. */
static size_t span(size_t count, size_t stride, size_t width) { return count ? (count - 1) * stride + width : 0; }

enum { K_HAMMING, K_DOT, K_DOT16 };
static const char *const block_names[] = {"hamming_block", "dot_block", "dot16_block"};

/* One block kernel, nq queries x nrows rows of w elements.  variant 0:
 * tight strides; 1: padded strides, starts 1..3 elements off; 2: extreme
 * values (every bit different, every product (-128)^2).  Every tier's whole
 * output must be the reference, stride gaps still holding their junk. */
static void test_block(int kind, size_t w, size_t nrows, size_t nq, int variant) {
    const size_t qstride = w + (variant ? 5 : 0), xstride = w + (variant ? 3 : 0);
    const size_t ostride = nrows + (variant ? 2 : 0);
    const size_t qe = kind == K_HAMMING ? 1 : 2, xe = kind == K_DOT16 ? 2 : 1;
    const size_t oq = (variant ? 1 + (w + nrows + nq) % 3 : 0), ox = (oq + 1) % 4;
    const size_t qbytes = span(nq, qstride, w) * qe, xbytes = span(nrows, xstride, w) * xe;
    const size_t onum = span(nq, ostride, nrows);
    AT("%s w=%zu nrows=%zu nq=%zu strides q%zu x%zu o%zu", block_names[kind], w, nrows, nq, qstride, xstride, ostride);
    void *Q = xalloc(qbytes, oq * qe), *X = xalloc(xbytes, ox * xe);
    const int extreme = variant == 2;
    if (kind == K_HAMMING && extreme) {
        memset(Q, 0, qbytes); /* every bit differs: the largest distances */
        memset(X, 0xFF, xbytes);
    } else if (kind == K_HAMMING) {
        fill_random(Q, qbytes);
        fill_random(X, xbytes);
        if (nrows > 1 && nq > 0) memcpy(X, Q, w); /* distance 0 */
    } else {
        int16_t *q16 = Q;
        for (size_t i = 0; i < qbytes / 2; i++) q16[i] = extreme ? -128 : (int16_t)(int8_t)rnd();
        for (size_t i = 0; i < xbytes / xe; i++) {
            int8_t v = extreme ? -128 : (int8_t)rnd();
            if (kind == K_DOT16) ((int16_t *)X)[i] = v;
            else ((int8_t *)X)[i] = v;
        }
    }
    int32_t *ref = malloc((onum + 1) * 4);
    for (size_t i = 0; i < onum; i++) ref[i] = JUNK32;
    /* 1 <= nq <= 4 is the contract; any other nq must write nothing (kernels.h) */
    for (size_t q = 0; q < (nq <= 4 ? nq : 0); q++)
        for (size_t r = 0; r < nrows; r++) {
            int32_t d;
            if (kind == K_HAMMING) d = ref_hamming((uint8_t *)Q + q * qstride, (uint8_t *)X + r * xstride, w);
            else if (kind == K_DOT) d = ref_dot8((int16_t *)Q + q * qstride, (int8_t *)X + r * xstride, w);
            else d = ref_dot16((int16_t *)Q + q * qstride, (int16_t *)X + r * xstride, w);
            ref[q * ostride + r] = d;
        }
    for (int t = 0; t < ntab; t++) {
        check_tier = pplx_isa_names[tabs[t].isa];
        const pplx_table *T = &tabs[t];
        const size_t oo = (oq + (size_t)t + 2) % 4 * 4;
        int32_t *out = xalloc(onum * 4, oo);
        if (kind == K_HAMMING) T->hamming_block(Q, nq, qstride, X, nrows, w, xstride, out, ostride);
        else if (kind == K_DOT) T->dot_block(Q, nq, qstride, X, nrows, w, xstride, out, ostride);
        else T->dot16_block(Q, nq, qstride, X, nrows, w, xstride, out, ostride);
        size_t bad = onum;
        for (size_t i = onum; i-- > 0;)
            if (out[i] != ref[i]) bad = i;
        CHECK(bad == onum, "%s w=%zu nrows=%zu nq=%zu strides q%zu x%zu o%zu: out[%zu] = %d, want %d",
              block_names[kind], w, nrows, nq, qstride, xstride, ostride, bad, bad < onum ? out[bad] : 0,
              bad < onum ? ref[bad] : 0);
        xfree(out, oo);
    }
    check_tier = "";
    free(ref);
    xfree(Q, oq * qe);
    xfree(X, ox * xe);
}

static void test_blocks(void) {
    static const size_t extra_w[] = {96, 320, 992};
    /* Hamming also: whole 4-row tiles followed by 2 and 3 rows (the avx512
     * kernel's tiles and each count of rows left over; ROWS has 1). */
    static const size_t extra_rows[] = {6, 7, 11};
    for (int kind = 0; kind < 3; kind++)
        for (size_t wi = 0; wi < NELEM(DIMS) + NELEM(extra_w); wi++) {
            const size_t w = wi < NELEM(DIMS) ? DIMS[wi] : extra_w[wi - NELEM(DIMS)];
            const size_t nrows_all = NELEM(ROWS) + (kind == K_HAMMING ? NELEM(extra_rows) : 0);
            for (size_t ri = 0; ri < nrows_all; ri++)
                for (size_t nq = 0; nq <= 5; nq++)
                    for (int variant = 0; variant < 3; variant++) {
                        const size_t nrows = ri < NELEM(ROWS) ? ROWS[ri] : extra_rows[ri - NELEM(ROWS)];
                        if (variant == 2 && nrows > 5 && ri < NELEM(ROWS)) continue;
                        /* past a few hundred kB of work per call, one layout is enough */
                        if (variant == 1 && nrows * w > 100000) continue;
                        test_block(kind, w, nrows, nq, variant);
                    }
        }
}

/* ---- hamming8_filter: eight transposed queries, the top-k test fused ------- */

/* One call of each tier's filter (and the serial reference) on nrows rows of
 * nw words (xstride bytes apart, starting off bytes past a 64-byte boundary,
 * in exact-size buffers) against 8 queries, with bounds of kind: 0 every row
 * passes (INT32_MAX), 1 none can (0, and INT32_MIN for "no query in this
 * lane"), 2 each query's bound its distance to one row (that row does not
 * pass for it: the test is strict), 3 random bounds around the median
 * distance.  Kept rows, their order and all 8 distances must be the
 * reference's; nothing is written past the kept rows. */
static void h8_case(size_t nw, size_t nrows, size_t xstride, size_t off, int kind) {
    const size_t w = 8 * nw, xbytes = span(nrows, xstride, w);
    AT("hamming8_filter nw=%zu nrows=%zu xstride=%zu off=%zu kind=%d", nw, nrows, xstride, off, kind);
    uint8_t *X = xalloc(xbytes, off), *Qc = malloc(8 * w + 1);
    uint64_t *Qt = xalloc(nw * 64 + 1, 0);
    fill_random(X, xbytes);
    fill_random(Qc, 8 * w);
    if (nrows > 1) memcpy(X + xstride, Qc + 2 * w, w); /* query 2 at distance 0 from row 1 */
    if (nrows > 2 && w) memset(X + 2 * xstride, 0xFF, w);  /* every bit set */
    for (size_t i = 0; i < 8; i++)
        for (size_t j = 0; j < nw; j++) memcpy(Qt + 8 * j + i, Qc + i * w + 8 * j, 8);
    int32_t worst[8];
    for (size_t i = 0; i < 8; i++) {
        const size_t r = nrows ? (i * 7) % nrows : 0;
        worst[i] = kind == 0 ? INT32_MAX
                 : kind == 1 ? (i % 3 ? 0 : INT32_MIN)
                 : kind == 2 ? (nrows ? ref_hamming(Qc + i * w, X + r * xstride, w) : 0)
                             : (int32_t)(w * 4) + (int32_t)(rnd() % 9) - 4;
    }
    /* the reference, from ref_hamming */
    uint32_t *rrow = malloc(nrows * 4 + 4);
    int32_t *rd = malloc(nrows * 32 + 4);
    size_t rn = 0;
    for (size_t r = 0; r < nrows; r++) {
        int32_t d[8];
        int hit = 0;
        for (size_t i = 0; i < 8; i++) {
            d[i] = ref_hamming(Qc + i * w, X + r * xstride, w);
            hit |= d[i] < worst[i];
        }
        if (!hit) continue;
        rrow[rn] = (uint32_t)r;
        memcpy(rd + 8 * rn, d, sizeof d);
        rn++;
    }
    for (int t = -1; t < ntab; t++) {
        if (t >= 0 && !tabs[t].hamming8_filter) continue;
        check_tier = t < 0 ? "serial reference" : pplx_isa_names[tabs[t].isa];
        /* room for every row, junk beyond what the reference keeps */
        uint32_t *hrow = xalloc(nrows * 4, 0);
        int32_t *hd = xalloc(nrows * 32, 0);
        memset(hrow, JUNK, nrows * 4);
        memset(hd, JUNK, nrows * 32);
        const size_t n = t < 0 ? pplx_hamming8_filter_serial(Qt, nw, X, nrows, xstride, worst, hrow, hd)
                               : tabs[t].hamming8_filter(Qt, nw, X, nrows, xstride, worst, hrow, hd);
        CHECK(n == rn, "hamming8_filter nw=%zu nrows=%zu xstride=%zu kind=%d: kept %zu rows, want %zu", nw, nrows,
              xstride, kind, n, rn);
        size_t bad = SIZE_MAX;
        for (size_t h = 0; h < (n < rn ? n : rn) && bad == SIZE_MAX; h++)
            if (hrow[h] != rrow[h] || memcmp(hd + 8 * h, rd + 8 * h, 32)) bad = h;
        CHECK(bad == SIZE_MAX, "hamming8_filter nw=%zu nrows=%zu xstride=%zu kind=%d: kept row %zu is %u, want %u",
              nw, nrows, xstride, kind, bad, bad == SIZE_MAX ? 0 : hrow[bad], bad == SIZE_MAX ? 0 : rrow[bad]);
        int junk = 1;
        for (size_t h = n; h < nrows; h++) junk &= hrow[h] == 0xA5A5A5A5u && hd[8 * h] == JUNK32;
        CHECK(junk, "hamming8_filter nw=%zu nrows=%zu: wrote past the %zu kept rows", nw, nrows, n);
        xfree(hrow, 0);
        xfree(hd, 0);
    }
    check_tier = "";
    free(rrow);
    free(rd);
    free(Qc);
    xfree(Qt, 0);
    xfree(X, off);
}

static void test_hamming8_filters(void) {
    /* words: 1024 dims (16, the kernels' register-held width) and around it,
     * 2560 dims (40), and 0 (every distance 0) */
    static const size_t nws[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 40};
    /* around the 4-row steps, and one scan tile */
    static const size_t rows[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 13, 512};
    for (size_t wi = 0; wi < NELEM(nws); wi++)
        for (size_t ri = 0; ri < NELEM(rows); ri++)
            for (int kind = 0; kind < 4; kind++)
                for (int gap = 0; gap < 2; gap++) {
                    if (rows[ri] == 512 && (gap || kind == 2)) continue;
                    /* padded rows start off 8-byte alignment: rows are read a word at a time */
                    h8_case(nws[wi], rows[ri], 8 * nws[wi] + (gap ? 3 : 0), gap ? 1 + ri % 3 : 0, kind);
                }
}

/* ---- fused top-k drivers --------------------------------------------------- */

enum { M_HAMMING, M_DOT, M_COSINE, NMETRIC };
static const char *const metric_names[] = {"scan_hamming", "scan_int8 dot", "scan_int8 cosine"};

#define NQMAX 9

typedef struct {
    double prim;  /* smaller is better; ties go to the lower row */
    int64_t row;
    int32_t key;  /* the heap key the scan must report (hamming, -dot) */
    float cos;    /* the cosine it must report */
} ent;

static int ent_cmp(const void *a, const void *b) {
    const ent *x = a, *y = b;
    if (x->prim != y->prim) return x->prim < y->prim ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

typedef struct {
    size_t dim, nrows, qstride, xstride;
    uint8_t *Xb;     /* rows as codes (hamming) */
    int8_t *X8;      /* the same bytes as int8 rows (dot, cosine) */
    uint8_t *Qb;     /* NQMAX query codes, qstride apart */
    int16_t *Q16;    /* the same queries as int8 values widened */
    float *qn_all;   /* query norms */
    float *xn;       /* row norms, exactly nrows */
    int32_t *D, *P;  /* [NQMAX][nrows] reference distances and dot products */
    size_t r0, r1;   /* the row range scanned */
    int64_t base;
    ent *ord[NMETRIC][NQMAX]; /* rows [r0, r1) best first, per metric and query */
} drv_data;

static float ref_cosine(int32_t dot, float qn, float xn) {
    double den = (double)qn * (double)xn;
    return den > 0 ? (float)((double)dot / den) : 0.0f;
}

/* The reference answer for rows [r0, r1): every row of the range sorted. */
static void set_window(drv_data *d, size_t r0, size_t r1, int64_t base) {
    d->r0 = r0;
    d->r1 = r1;
    d->base = base;
    for (int m = 0; m < NMETRIC; m++)
        for (size_t q = 0; q < NQMAX; q++) {
            ent *e = realloc(d->ord[m][q], (r1 - r0 + 1) * sizeof(ent));
            if (!e) exit(2);
            for (size_t r = r0; r < r1; r++) {
                int32_t dist = d->D[q * d->nrows + r], dot = d->P[q * d->nrows + r];
                float c = ref_cosine(dot, d->qn_all[q], d->xn[r]);
                ent *x = &e[r - r0];
                x->row = (int64_t)r;
                x->prim = m == M_HAMMING ? dist : m == M_DOT ? -(double)dot : -(double)c;
                x->key = m == M_HAMMING ? dist : -dot;
                x->cos = c;
            }
            qsort(e, r1 - r0, sizeof(ent), ent_cmp);
            d->ord[m][q] = e;
        }
}

/* Sorted heaps of queries [0, nq), k entries each, against the reference:
 * the k best rows of the range, then (PPLX_NO_KEY, PPLX_NO_ROW) padding. */
static void check_heaps(const drv_data *d, int metric, size_t nq, size_t k, const int32_t *hk, const int64_t *hi,
                        const char *how) {
    const size_t cnt = d->r1 - d->r0;
    for (size_t q = 0; q < nq; q++) {
        const ent *e = d->ord[metric][q];
        size_t bad = k;
        for (size_t j = k; j-- > 0;) {
            const int32_t key = hk[q * k + j];
            const int64_t idx = hi[q * k + j];
            int ok;
            if (j >= cnt) {
                ok = key == PPLX_NO_KEY && idx == PPLX_NO_ROW;
            } else if (metric == M_COSINE) {
                float got = pplx_score_of_key(key);
                ok = idx == d->base + e[j].row && memcmp(&got, &e[j].cos, 4) == 0;
            } else {
                ok = idx == d->base + e[j].row && key == e[j].key;
            }
            if (!ok) bad = j;
        }
        CHECK(bad == k,
              "%s (%s) dim=%zu rows [%zu,%zu) of %zu strides q%zu x%zu nq=%zu k=%zu: query %zu entry %zu is "
              "(%d, %lld), want row %lld",
              metric_names[metric], how, d->dim, d->r0, d->r1, d->nrows, d->qstride, d->xstride, nq, k, q, bad,
              bad < k ? hk[q * k + bad] : 0, bad < k ? (long long)hi[q * k + bad] : 0LL,
              bad < cnt && bad < k ? (long long)(d->base + e[bad].row) : -1LL);
    }
}

/* Q: the queries as codes (hamming) or widened to int16 (passed on only to
 * the tables that read it: NULL to the others, as _search.pyx does); Q8: as
 * int8 (the same bytes as the codes). */
static void run_scan(const pplx_table *T, const drv_data *d, int metric, const void *Q, const int8_t *Q8, size_t nq,
                     const float *qn, size_t r0, size_t r1, size_t k, int32_t *hk, int64_t *hi) {
    if (metric == M_HAMMING)
        pplx_scan_hamming(T, Q, nq, d->qstride, d->Xb, r0, r1, d->dim, d->xstride, k, d->base, hk, hi);
    else
        pplx_scan_int8(T, Q8, d->qstride, pplx_int8_reads_q16(T) ? Q : NULL, nq, d->qstride, d->X8, r0, r1, d->dim,
                       d->xstride, metric == M_DOT ? PPLX_METRIC_DOT : PPLX_METRIC_COSINE,
                       metric == M_COSINE ? qn : NULL, metric == M_COSINE ? d->xn : NULL, k, d->base, hk, hi);
}

/* Exactly-sized copies of the first nq queries (and their norms). */
static void *queries(const drv_data *d, int codes, size_t nq, size_t off) {
    const size_t bytes = span(nq, d->qstride, d->dim) * (codes ? 1 : 2);
    void *Q = xalloc(bytes, off);
    memcpy(Q, codes ? (const void *)d->Qb : (const void *)d->Q16, bytes);
    return Q;
}

/* One metric, nq queries, heaps of k: the scan of the whole range, then
 * (split) the range scanned in two parts whose heaps are merged, which is
 * what a row-parallel search does. */
static void test_scan(const drv_data *d, int metric, size_t nq, size_t k, int split) {
    const size_t qe = metric == M_HAMMING ? 1 : 2, oq = (nq + k) % 4 * qe, on = nq % 4 * 4;
    AT("%s dim=%zu rows [%zu,%zu) of %zu strides q%zu x%zu nq=%zu k=%zu", metric_names[metric], d->dim, d->r0, d->r1,
       d->nrows, d->qstride, d->xstride, nq, k);
    void *Q = queries(d, metric == M_HAMMING, nq, oq);
    const size_t o8 = (nq + 3) % 4;
    int8_t *Q8 = queries(d, 1, nq, o8);
    float *qn = xalloc(nq * 4, on);
    memcpy(qn, d->qn_all, nq * 4);
    for (int t = 0; t < ntab; t++) {
        check_tier = pplx_isa_names[tabs[t].isa];
        const size_t ok_ = (size_t)t % 4 * 4, oi = (size_t)(t + 1) % 4 * 8;
        int32_t *hk = xalloc(nq * k * 4, ok_);
        int64_t *hi = xalloc(nq * k * 8, oi);
        pplx_heap_init(hk, hi, nq * k);
        run_scan(&tabs[t], d, metric, Q, Q8, nq, qn, d->r0, d->r1, k, hk, hi);
        for (size_t q = 0; q < nq; q++) pplx_heap_sort(hk + q * k, hi + q * k, k);
        check_heaps(d, metric, nq, k, hk, hi, "one range");
        if (split && d->r1 - d->r0 >= 2) {
            const size_t mid = d->r0 + (d->r1 - d->r0) / 3 + 1;
            int32_t *sk = xalloc(nq * k * 4, 0);
            int64_t *si = xalloc(nq * k * 8, 0);
            pplx_heap_init(hk, hi, nq * k);
            pplx_heap_init(sk, si, nq * k);
            run_scan(&tabs[t], d, metric, Q, Q8, nq, qn, d->r0, mid, k, hk, hi);
            run_scan(&tabs[t], d, metric, Q, Q8, nq, qn, mid, d->r1, k, sk, si);
            for (size_t q = 0; q < nq; q++) {
                pplx_heap_merge(hk + q * k, hi + q * k, sk + q * k, si + q * k, k);
                pplx_heap_sort(hk + q * k, hi + q * k, k);
            }
            check_heaps(d, metric, nq, k, hk, hi, "two ranges merged");
            xfree(sk, 0);
            xfree(si, 0);
        }
        xfree(hk, ok_);
        xfree(hi, oi);
    }
    check_tier = "";
    xfree(Q, oq);
    xfree(Q8, o8);
    xfree(qn, on);
}

/* The full (nq, nrows) matrix, row stride nrows as the callers use it, over
 * rows [r0, r1): those columns hold the reference, the others are untouched. */
static void test_matrix(const drv_data *d, int hamming, size_t nq) {
    const size_t qe = hamming ? 1 : 2, oq = (nq + 1) % 4 * qe, n = d->nrows;
    AT("%s dim=%zu rows [%zu,%zu) of %zu strides q%zu x%zu nq=%zu", hamming ? "matrix_hamming" : "matrix_dot", d->dim,
       d->r0, d->r1, n, d->qstride, d->xstride, nq);
    void *Q = queries(d, hamming, nq, oq);
    const size_t o8 = (nq + 2) % 4;
    int8_t *Q8 = queries(d, 1, nq, o8);
    for (int t = 0; t < ntab; t++) {
        check_tier = pplx_isa_names[tabs[t].isa];
        const size_t oo = (nq + (size_t)t) % 4 * 4;
        int32_t *out = xalloc(nq * n * 4, oo);
        if (hamming) pplx_matrix_hamming(&tabs[t], Q, nq, d->qstride, d->Xb, d->r0, d->r1, d->dim, d->xstride, out, n);
        else pplx_matrix_dot(&tabs[t], Q8, d->qstride, pplx_int8_reads_q16(&tabs[t]) ? Q : NULL, nq, d->qstride, d->X8,
                             d->r0, d->r1, d->dim, d->xstride, out, n);
        size_t bad = nq * n;
        for (size_t i = nq * n; i-- > 0;) {
            const size_t r = i % n;
            const int32_t want = r < d->r0 || r >= d->r1 ? JUNK32 : hamming ? d->D[i] : d->P[i];
            if (out[i] != want) bad = i;
        }
        CHECK(bad == nq * n, "%s dim=%zu rows [%zu,%zu) of %zu strides q%zu x%zu nq=%zu: out[%zu] is %d, want %d",
              hamming ? "matrix_hamming" : "matrix_dot", d->dim, d->r0, d->r1, n, d->qstride, d->xstride, nq, bad,
              bad < nq * n ? out[bad] : 0,
              bad < nq * n ? (bad % n < d->r0 || bad % n >= d->r1 ? JUNK32 : hamming ? d->D[bad] : d->P[bad]) : 0);
        xfree(out, oo);
    }
    check_tier = "";
    xfree(Q, oq);
    xfree(Q8, o8);
}

/* Every driver for rows of dim bytes / dimensions.  Light cases (up to
 * LIGHT elements of rows) run every query count 0..9 (past 4 the int8 scans
 * take the widened-tile path), three heap sizes (one past the row count when
 * the rows are few), two row ranges, padded strides and the two-range merge;
 * heavy ones a subset (1 query, and 5 or 9: groups of 4 plus a remainder),
 * so the whole run stays in seconds under the sanitizers. */
#define LIGHT 10000
static void test_drivers_one(size_t dim, size_t nrows, int padded) {
    drv_data d;
    memset(&d, 0, sizeof d);
    d.dim = dim;
    d.nrows = nrows;
    d.qstride = dim + (padded ? 1 : 0);
    d.xstride = dim + (padded ? 3 : 0);
    const size_t xbytes = span(nrows, d.xstride, dim), ox = padded ? 1 + nrows % 3 : 0, qlen = NQMAX * d.qstride;
    d.Xb = xalloc(xbytes, ox);
    d.X8 = (int8_t *)d.Xb;
    d.xn = xalloc(nrows * 4, ox * 4);
    d.Qb = malloc(qlen + 1);
    d.Q16 = malloc(qlen * 2 + 2);
    d.qn_all = malloc(NQMAX * 4);
    d.D = malloc(NQMAX * nrows * 4 + 4);
    d.P = malloc(NQMAX * nrows * 4 + 4);
    /* Ties on purpose: every 5th row repeats the one before, every 7th is
     * zero (cosine 0 for every query), query 3 is zero, query 4 is row 2. */
    fill_random(d.Xb, xbytes);
    for (size_t r = 0; r < nrows; r++) {
        if (r % 5 == 4) memcpy(d.Xb + r * d.xstride, d.Xb + (r - 1) * d.xstride, dim);
        if (r % 7 == 6) memset(d.Xb + r * d.xstride, 0, dim);
    }
    fill_random(d.Qb, qlen);
    memset(d.Qb + 3 * d.qstride, 0, dim);
    if (nrows > 2) memcpy(d.Qb + 4 * d.qstride, d.Xb + 2 * d.xstride, dim);
    for (size_t i = 0; i < qlen; i++) d.Q16[i] = (int8_t)d.Qb[i];
    for (size_t q = 0; q < NQMAX; q++) {
        int64_t s = 0;
        for (size_t j = 0; j < dim; j++) s += (int64_t)d.Q16[q * d.qstride + j] * d.Q16[q * d.qstride + j];
        d.qn_all[q] = (float)sqrt((double)s);
        for (size_t r = 0; r < nrows; r++) {
            const uint8_t *xr = d.Xb + r * d.xstride;
            d.D[q * nrows + r] = ref_hamming(d.Qb + q * d.qstride, xr, dim);
            d.P[q * nrows + r] = ref_dot8(d.Q16 + q * d.qstride, (const int8_t *)xr, dim);
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        int64_t s = 0;
        for (size_t j = 0; j < dim; j++) s += (int64_t)d.X8[r * d.xstride + j] * d.X8[r * d.xstride + j];
        d.xn[r] = (float)sqrt((double)s);
    }

    const int light = nrows * dim <= LIGHT;
    static const size_t nqs_light[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, nqs_heavy[] = {0, 1, 5, 9};
    static const size_t nqs_heaviest[] = {1, 9};
    const size_t *nqs = light ? nqs_light : nrows * dim <= 20 * LIGHT ? nqs_heavy : nqs_heaviest;
    const size_t nnq = light ? NELEM(nqs_light) : nrows * dim <= 20 * LIGHT ? NELEM(nqs_heavy) : NELEM(nqs_heaviest);
    for (int win = 0; win < (light ? 2 : 1); win++) {
        if (win && nrows < 3) break;
        /* [1, n - 1) with base 1000: rows are reported as base + index */
        set_window(&d, win, win ? nrows - 1 : nrows, win ? 1000 : 0);
        /* heap sizes vary once per shape; the kernels they drive do not */
        const size_t ks_all[] = {1, 3, nrows <= 17 ? nrows + 1 : 40}, ks_one[] = {light ? 3 : 7};
        const int all_k = light && !win && !padded;
        const size_t *ks = all_k ? ks_all : ks_one;
        const size_t nk = all_k ? NELEM(ks_all) : NELEM(ks_one);
        for (size_t qi = 0; qi < nnq; qi++) {
            for (size_t ki = 0; ki < nk; ki++)
                for (int metric = 0; metric < NMETRIC; metric++) test_scan(&d, metric, nqs[qi], ks[ki], light);
            test_matrix(&d, 1, nqs[qi]);
            test_matrix(&d, 0, nqs[qi]);
        }
    }
    for (int m = 0; m < NMETRIC; m++)
        for (size_t q = 0; q < NQMAX; q++) free(d.ord[m][q]);
    xfree(d.Xb, ox);
    xfree(d.xn, ox * 4);
    free(d.Qb);
    free(d.Q16);
    free(d.qn_all);
    free(d.D);
    free(d.P);
}

static void test_drivers(void) {
    for (size_t di = 0; di < NELEM(DIMS); di++)
        for (size_t ri = 0; ri < NELEM(ROWS); ri++)
            for (int padded = 0; padded < 2; padded++)
                if (!padded || ROWS[ri] * DIMS[di] <= LIGHT) test_drivers_one(DIMS[di], ROWS[ri], padded);
}

static void test_reverse_avx512_variants(void);
static void test_base64_blocks(void);
static void test_json_scanners(void);
static void test_dot_i8_blocks(void);
static void test_calibration(void);
static void test_hamming8_filters(void);
static void test_dot_i8t_filters(void);

#include "peaks.h"

int main(void) {
    signal(SIGABRT, on_fatal);
    signal(SIGFPE, on_fatal);
    const unsigned detected = pplx_isa_detected();
    for (int isa = 0; isa < PPLX_ISA_COUNT; isa++)
        if (detected >> isa & 1) pplx_table_fill(&tabs[ntab++], isa);
    if (ntab == 0 || tabs[0].isa != PPLX_ISA_SERIAL) {
        printf("sanitize: the serial tier is missing\n");
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_base64();
    test_bits();
    test_int8();
    test_blocks();
    test_hamming8_filters();
    test_drivers();
    test_reverse_avx512_variants();
    test_base64_blocks();
    test_dot_i8_blocks();
    test_dot_i8t_filters();
    test_json_scanners();
    test_calibration();
    test_peaks();
    printf("sanitize: %llu checks, tiers", checks);
    for (int t = 0; t < ntab; t++) printf(" %s", pplx_isa_names[tabs[t].isa]);
    if (failures) printf(", %lu FAILED\n", failures);
    else printf(", ok\n");
    return failures != 0;
}

/* ---- both avx512 bit reversals -------------------------------------------- */

/* dispatch.h gives the avx512 table the GFNI reversal when CPUID reports
 * GFNI (always under SIMDe) and the nibble-table one otherwise, so the table
 * tests only one of them on a given machine: both here, when this CPU runs
 * the avx512 tier (the GFNI one only when it has GFNI). */
static void test_reverse_avx512_variants(void) {
#if PPLX_COMPILE_AVX512
    int have = 0;
    for (int t = 0; t < ntab; t++) have |= tabs[t].isa == PPLX_ISA_AVX512;
    if (!have) return;
    static const size_t extra[] = {4095, 4096, 4097};
    const size_t nsizes = NELEM(DIMS) + NELEM(BIT_EXTRA) + NELEM(extra);
    for (int gfni = 0; gfni < 2; gfni++) {
        if (gfni && !pplx_cpu_gfni()) continue;
        check_tier = gfni ? "avx512 gfni reverse_bits" : "avx512 nibble-table reverse_bits";
        for (size_t i = 0; i < nsizes; i++) {
            const size_t n = i < NELEM(DIMS)                     ? DIMS[i]
                             : i < NELEM(DIMS) + NELEM(BIT_EXTRA) ? BIT_EXTRA[i - NELEM(DIMS)]
                                                                   : extra[i - NELEM(DIMS) - NELEM(BIT_EXTRA)];
            const size_t os = off_of(i, (size_t)gfni), od = off_of(i + 1, (size_t)gfni + 2);
            AT("reverse_bits %s n=%zu", check_tier, n);
            uint8_t *s = xalloc(n, os), *d = xalloc(n, od);
            fill_random(s, n);
            if (gfni) pplx_reverse_bits_avx512_gfni(s, n, d);
            else pplx_reverse_bits_avx512(s, n, d);
            size_t badj = n;
            for (size_t j = n; j-- > 0;) {
                unsigned want = 0;
                for (int b = 0; b < 8; b++) want |= (unsigned)(s[j] >> b & 1) << (7 - b);
                if (d[j] != want) badj = j;
            }
            CHECK(badj == n, "reverse_bits n=%zu: first wrong byte at %zu", n, badj);
            xfree(s, os);
            xfree(d, od);
        }
    }
    check_tier = "";
#endif
}

/* ---- base64 around 64-char blocks ---------------------------------------
 * The avx512 and neon decoders take 64-char blocks, four to a group whose
 * validity is tested once, and leave the last quad to the serial code; the
 * < 16 quads after the last whole block go to one masked block (avx512:
 * read and written under masks, every count of them) or to the serial code
 * (neon).  Their encoders take 48-byte blocks (avx512: 64-byte loads while
 * 64 bytes are readable, then one exact 48-byte block, then the < 16 whole
 * triples left as one masked block).  Texts whose body (all but the last
 * quad) ends on, just before and just after 1, 2, 3, 4, 5 and 8 blocks, every
 * body up to two blocks (every masked tail behind 0, 1 and 2 blocks), the
 * real rows (1024 bits: 172 chars; 1024 int8: 1368 chars), with a bad char at
 * every position (test_base64 samples the positions of long texts), pairs of
 * bad chars (the first must be named, whichever block or group holds the
 * second), and encodes of every length up to 290 bytes and around multiples
 * of 48 bytes. */
static void test_base64_blocks(void) {
    static const size_t bodies[] = {4,   8,   12,  16,  20,  24,  28,  32,  36,  40,  44,  48,  52,  56,  60,
                                    64,  68,  72,  76,  80,  84,  88,  92,  96,  100, 104, 108, 112, 116, 120,
                                    124, 128, 132, 168, 188, 192, 196, 252, 256, 260, 316, 320, 324, 508, 512,
                                    516, 1364};
    /* 0xC1 and 0xEF are 'A' and 'o' with the high bit set: a 7-bit lookup
     * finds a valid entry for them, only their own sign bit rejects them. */
    static const uint8_t bad[] = {'=', '!', 0x80, 0xC1, 0xEF};
    static const size_t spots[] = {0, 1, 3, 4, 61, 63, 64, 65, 127, 128, 191, 192,
                                   252, 255, 256, 257, 319, 320, 447, 448, 511, 512};
    for (size_t bi = 0; bi < NELEM(bodies); bi++) {
        const size_t m = bodies[bi] + 4, n = m / 4 * 3;
        uint8_t *src = malloc(n), *plain = malloc(n);
        uint8_t *text = xalloc(m, bi % 4);
        fill_random(src, n);
        ref_b64_encode(src, n, text);
        size_t err;
        AT("b64_decode blocks: %zu chars", m);
        ptrdiff_t r = b64_decode_all(text, m, (bi + 1) % 4, plain, &err);
        CHECK(r == (ptrdiff_t)n && memcmp(plain, src, n) == 0, "b64_decode blocks round trip m=%zu: %td", m, r);
        for (size_t p = 0; p < m; p++) {
            for (size_t b = 0; b < NELEM(bad); b++) {
                uint8_t keep = text[p];
                text[p] = bad[b];
                AT("b64_decode blocks: %zu chars, 0x%02x at %zu", m, bad[b], p);
                r = b64_decode_all(text, m, (p + b) % 4, NULL, &err);
                size_t ref_err = p;
                ptrdiff_t ref = p + 4 < m ? PPLX_B64_BADCHAR : ref_last_quad(text, m, &ref_err);
                if (ref >= 0) ref += (ptrdiff_t)(m / 4 - 1) * 3;
                CHECK(r == ref && (r >= 0 || err == ref_err),
                      "b64_decode blocks m=%zu char 0x%02x at %zu: %td at %zu, reference %td at %zu", m, bad[b], p,
                      r, err, ref, ref_err);
                text[p] = keep;
            }
        }
        for (size_t i = 0; i < NELEM(spots); i++) {
            for (size_t j = i + 1; j < NELEM(spots); j++) {
                const size_t p = spots[i], q = spots[j];
                if (q + 4 >= m) continue;
                uint8_t kp = text[p], kq = text[q];
                text[p] = bad[(i + j) % NELEM(bad)];
                text[q] = bad[(i + j + 1) % NELEM(bad)];
                AT("b64_decode blocks: %zu chars, bad at %zu and %zu", m, p, q);
                r = b64_decode_all(text, m, (i + j) % 4, NULL, &err);
                CHECK(r == PPLX_B64_BADCHAR && err == p, "b64_decode blocks m=%zu bad at %zu and %zu: %td at %zu", m,
                      p, q, r, err);
                text[p] = kp;
                text[q] = kq;
            }
        }
        xfree(text, bi % 4);
        free(src);
        free(plain);
    }
    for (size_t base = 48; base <= 480; base += 48) {
        for (size_t n = base < 300 ? base - 47 : base - 2; n <= base + 2; n++) {
            const size_t m = pplx_b64_encoded_len(n);
            uint8_t *want = malloc(m);
            AT("b64_encode blocks n=%zu", n);
            for (size_t off = 0; off < 4; off++) {
                uint8_t *src = xalloc(n, off);
                fill_random(src, n);
                ref_b64_encode(src, n, want);
                for (int t = 0; t < ntab; t++) {
                    check_tier = pplx_isa_names[tabs[t].isa];
                    uint8_t *enc = xalloc(m, 3 - off);
                    size_t w = tabs[t].b64_encode(src, n, enc);
                    CHECK(w == m && memcmp(enc, want, m) == 0, "b64_encode blocks n=%zu off=%zu", n, off);
                    xfree(enc, 3 - off);
                }
                check_tier = "";
                xfree(src, off);
            }
            free(want);
        }
    }
}

/* ---- dot_i8_block of every tier, called directly -------------------------- */

/* The drivers above use at most 9 queries, so a tier's i8_qblock (8 or 16)
 * is barely exercised through them.  Here every tier's dot_i8_block, against
 * a plain reference, for nq = 0 .. i8_qblock + 1 (0 and i8_qblock + 1 must
 * write nothing), dimensions around the kernels' 16-, 32- and 64-element
 * steps, row counts around their 1- to 6-row tiles, tight and odd
 * strides with starts 1..3 bytes off a 64-byte boundary, exact-size buffers,
 * and extreme values: -128 everywhere, rows of 127 against queries of -128
 * (the largest biased sums of the VNNI kernel: they wrap int32 over the
 * longest rows, the result must not), random -128/127 mixes; the same at
 * PPLX_DOT_MAX_DIM.  Then the int8 scan and matrix with 8, 9, 17 and 33
 * queries (one group; full groups and a remainder for every i8_qblock) over
 * one tile and over several (with more than one group, each call prefetches
 * its share of the next tile), against the serial table; the int16 copy of
 * the queries goes only to the tables that read it (pplx_int8_reads_q16),
 * the others get NULL, so a read of it would be a crash here. */
static void dot_i8_fill(int8_t *p, size_t n, int kind, int query) {
    for (size_t i = 0; i < n; i++) {
        const uint64_t r = rnd();
        p[i] = kind == 0   ? (int8_t)r
               : kind == 1 ? -128
               : kind == 2 ? (query ? -128 : 127)
                           : (r & 1 ? 127 : -128);
    }
}

static void dot_i8_case(const pplx_table *T, size_t dim, size_t nrows, size_t nq, int kind, int odd) {
    const size_t qstride = dim + (odd ? 3 : 0), xstride = dim + (odd ? 5 : 0), ostride = nrows + (odd ? 3 : 0);
    const size_t oq = odd ? 1 + (dim + nq) % 3 : 0, ox = odd ? 1 + (dim + nrows) % 3 : 0, oo = odd ? 4 * (1 + nq % 3) : 0;
    const size_t qbytes = span(nq, qstride, dim), xbytes = span(nrows, xstride, dim), onum = span(nq, ostride, nrows);
    AT("dot_i8_block dim=%zu nrows=%zu nq=%zu kind=%d strides q%zu x%zu o%zu", dim, nrows, nq, kind, qstride, xstride,
       ostride);
    int8_t *Q = xalloc(qbytes, oq), *X = xalloc(xbytes, ox);
    dot_i8_fill(Q, qbytes, kind, 1);
    dot_i8_fill(X, xbytes, kind, 0);
    int32_t *ref = malloc((onum + 1) * 4), *out = xalloc(onum * 4, oo);
    for (size_t i = 0; i < onum; i++) ref[i] = JUNK32;
    if (nq >= 1 && nq <= T->i8_qblock)
        for (size_t q = 0; q < nq; q++)
            for (size_t r = 0; r < nrows; r++) {
                int64_t s = 0;
                for (size_t j = 0; j < dim; j++) s += (int64_t)Q[q * qstride + j] * X[r * xstride + j];
                ref[q * ostride + r] = (int32_t)s;
            }
    T->dot_i8_block(Q, nq, qstride, X, nrows, dim, xstride, out, ostride);
    size_t bad = onum;
    for (size_t i = onum; i-- > 0;)
        if (out[i] != ref[i]) bad = i;
    CHECK(bad == onum, "dot_i8_block dim=%zu nrows=%zu nq=%zu kind=%d strides q%zu x%zu o%zu: out[%zu] = %d, want %d",
          dim, nrows, nq, kind, qstride, xstride, ostride, bad, bad < onum ? out[bad] : 0, bad < onum ? ref[bad] : 0);
    xfree(out, oo);
    free(ref);
    xfree(Q, oq);
    xfree(X, ox);
}

/* pplx_scan_int8 (dot and cosine) and pplx_matrix_dot of every tier against
 * the serial table's, nq queries over rows [r0, nrows). */
static void dot_i8_scan_case(size_t dim, size_t nrows, size_t nq, size_t r0) {
    const size_t qstride = dim + 1, xstride = dim + 2, k = 5;
    AT("scan_int8/matrix_dot dim=%zu nrows=%zu nq=%zu r0=%zu", dim, nrows, nq, r0);
    int8_t *Q8 = xalloc(span(nq, qstride, dim), 1), *X = xalloc(span(nrows, xstride, dim), 2);
    int16_t *Q16 = xalloc(span(nq, qstride, dim) * 2, 2);
    dot_i8_fill(Q8, span(nq, qstride, dim), 0, 1);
    dot_i8_fill(X, span(nrows, xstride, dim), 0, 0);
    for (size_t i = 0; i < span(nq, qstride, dim); i++) Q16[i] = Q8[i];
    float *qn = xalloc(nq * 4, 0), *xn = xalloc(nrows * 4, 0);
    for (size_t q = 0; q < nq; q++) {
        int64_t s = 0;
        for (size_t j = 0; j < dim; j++) s += (int64_t)Q8[q * qstride + j] * Q8[q * qstride + j];
        qn[q] = (float)sqrt((double)s);
    }
    for (size_t r = 0; r < nrows; r++) {
        int64_t s = 0;
        for (size_t j = 0; j < dim; j++) s += (int64_t)X[r * xstride + j] * X[r * xstride + j];
        xn[r] = (float)sqrt((double)s);
    }
    int32_t *mat0 = xalloc(nq * nrows * 4, 0), *hk0 = xalloc(nq * k * 4, 0), *hk = xalloc(nq * k * 4, 0);
    int64_t *hi0 = xalloc(nq * k * 8, 0), *hi = xalloc(nq * k * 8, 0);
    int32_t *mat = xalloc(nq * nrows * 4, 0);
    for (int metric = 0; metric < 3; metric++)
        for (int t = 0; t < ntab; t++) {
            const pplx_table *T = &tabs[t];
            check_tier = pplx_isa_names[T->isa];
            int32_t *m = t ? mat : mat0, *key = t ? hk : hk0;
            int64_t *idx = t ? hi : hi0;
            const int16_t *q16 = pplx_int8_reads_q16(T) ? Q16 : NULL;
            CHECK(pplx_int8_reads_q16(T) == !T->dot_i8_block, "pplx_int8_reads_q16");
            if (metric == 2) {
                memset(m, JUNK, nq * nrows * 4);
                pplx_matrix_dot(T, Q8, qstride, q16, nq, qstride, X, r0, nrows, dim, xstride, m, nrows);
            } else {
                pplx_heap_init(key, idx, nq * k);
                pplx_scan_int8(T, Q8, qstride, q16, nq, qstride, X, r0, nrows, dim, xstride,
                               metric ? PPLX_METRIC_COSINE : PPLX_METRIC_DOT, qn, xn, k, 7, key, idx);
                for (size_t q = 0; q < nq; q++) pplx_heap_sort(key + q * k, idx + q * k, k);
            }
            if (t == 0) continue;
            if (metric == 2)
                CHECK(memcmp(m, mat0, nq * nrows * 4) == 0, "matrix_dot dim=%zu nrows=%zu nq=%zu r0=%zu differs from serial",
                      dim, nrows, nq, r0);
            else
                CHECK(memcmp(key, hk0, nq * k * 4) == 0 && memcmp(idx, hi0, nq * k * 8) == 0,
                      "scan_int8 %s dim=%zu nrows=%zu nq=%zu r0=%zu differs from serial", metric ? "cosine" : "dot", dim,
                      nrows, nq, r0);
        }
    check_tier = "";
    xfree(mat0, 0);
    xfree(mat, 0);
    xfree(hk0, 0);
    xfree(hk, 0);
    xfree(hi0, 0);
    xfree(hi, 0);
    xfree(qn, 0);
    xfree(xn, 0);
    xfree(Q8, 1);
    xfree(Q16, 2);
    xfree(X, 2);
}

/* dot_i8t_filter: each tier's kernel (and the serial reference) against a
 * plain int64 reference, on exact-size buffers: 16 queries of fill kind
 * `kind` (dot_i8_fill: random, all -128, the largest products, extremes)
 * transposed and biased as topk.h does it, rows xstride apart.  test 0: dot
 * metric with bounds no dot reaches (INT32_MAX), 1: every row kept
 * (INT32_MIN), 2: cosine with bounds at a middle cosine and a zero row
 * norm (kept: 0 < 0 is false), 3: dot with each lane's bound its dot with
 * one row (that row not kept for it: the test is strict).  The row sums are
 * computed (sums_known 0) and then given back (1): both must be exact. */
static void i8t_case(size_t dim, size_t nrows, size_t xstride, int kind, int test) {
    const size_t nd = (dim + 3) / 4, xbytes = span(nrows, xstride, dim);
    AT("dot_i8t_filter dim=%zu nrows=%zu xstride=%zu kind=%d test=%d", dim, nrows, xstride, kind, test);
    int8_t *Qv = malloc(16 * dim + 1), *X = xalloc(xbytes, 1 + nrows % 3);
    uint8_t *Qt = xalloc(64 * nd, 0);
    dot_i8_fill(Qv, 16 * dim, kind, 1);
    dot_i8_fill(X, xbytes, kind, 0);
    memset(Qt, 0, 64 * nd);
    for (size_t i = 0; i < 16; i++)
        for (size_t j = 0; j < dim; j++) Qt[64 * (j / 4) + 4 * i + j % 4] = (uint8_t)(Qv[i * dim + j] + 128);
    int32_t *want = malloc(nrows * 64 + 4), wsum[600];
    float *xn = xalloc(nrows * 4 + 4, 0), flim[16];
    int32_t lim[16];
    for (size_t r = 0; r < nrows; r++) {
        int64_t ss = 0, sum = 0;
        for (size_t j = 0; j < dim; j++) ss += X[r * xstride + j] * X[r * xstride + j], sum += X[r * xstride + j];
        xn[r] = r == 1 ? 0.0f : (float)sqrt((double)ss);
        wsum[r] = (int32_t)sum;
        for (size_t i = 0; i < 16; i++) {
            int64_t d = 0;
            for (size_t j = 0; j < dim; j++) d += (int64_t)Qv[i * dim + j] * X[r * xstride + j];
            want[16 * r + i] = (int32_t)d;
        }
    }
    for (size_t i = 0; i < 16; i++) {
        lim[i] = test == 0 ? INT32_MAX : test == 1 ? INT32_MIN : nrows ? want[16 * ((i * 5) % nrows) + i] : 0;
        flim[i] = 0.5f * (float)sqrt((double)(dim * 128 * 128)) * (i % 2 ? 1.0f : -1.0f);
    }
    const float *xs = test == 2 ? xn : NULL;
    for (int t = -1; t < ntab; t++) {
        if (t >= 0 && !tabs[t].dot_i8t_filter) continue;
        check_tier = t < 0 ? "serial reference" : pplx_isa_names[tabs[t].isa];
        for (int known = 0; known < 2; known++) {
            int32_t *rowsum = xalloc(nrows * 4, 0);
            uint32_t *hrow = xalloc(nrows * 4, 0);
            int32_t *hd = xalloc(nrows * 64, 0);
            memset(hrow, JUNK, nrows * 4);
            memset(hd, JUNK, nrows * 64);
            if (known) memcpy(rowsum, wsum, nrows * 4);
            else memset(rowsum, JUNK, nrows * 4);
            const size_t n = t < 0 ? pplx_dot_i8t_filter_serial(Qt, X, nrows, dim, xstride, rowsum, known, lim, flim,
                                                                  xs, hrow, hd)
                                   : tabs[t].dot_i8t_filter(Qt, X, nrows, dim, xstride, rowsum, known, lim, flim, xs,
                                                            hrow, hd);
            CHECK(memcmp(rowsum, wsum, nrows * 4) == 0, "dot_i8t_filter dim=%zu nrows=%zu known=%d: row sums", dim,
                  nrows, known);
            size_t h = 0, bad = SIZE_MAX;
            for (size_t r = 0; r < nrows; r++) {
                int keep = 0;
                for (size_t i = 0; i < 16; i++)
                    keep |= xs ? !((float)want[16 * r + i] < flim[i] * xs[r]) : want[16 * r + i] > lim[i];
                if (!keep) continue;
                if (bad == SIZE_MAX && (h >= n || hrow[h] != r || memcmp(hd + 16 * h, want + 16 * r, 64))) bad = r;
                h++;
            }
            CHECK(h == n && bad == SIZE_MAX,
                  "dot_i8t_filter dim=%zu nrows=%zu xstride=%zu kind=%d test=%d known=%d: kept %zu rows, want %zu; "
                  "first wrong row %zu", dim, nrows, xstride, kind, test, known, n, h, bad);
            int junk = 1;
            for (size_t j = n; j < nrows; j++) junk &= hrow[j] == 0xA5A5A5A5u && hd[16 * j] == JUNK32;
            CHECK(junk, "dot_i8t_filter dim=%zu nrows=%zu: wrote past the %zu kept rows", dim, nrows, n);
            xfree(rowsum, 0);
            xfree(hrow, 0);
            xfree(hd, 0);
        }
    }
    check_tier = "";
    free(Qv);
    free(want);
    xfree(Qt, 0);
    xfree(xn, 0);
    xfree(X, 1 + nrows % 3);
}

static void test_dot_i8t_filters(void) {
    static const size_t dims[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127, 128, 129, 1024, 2560};
    /* around the 12- and 4-row steps, and one int8 tile */
    static const size_t rows[] = {0, 1, 2, 3, 4, 5, 11, 12, 13, 16, 17, 25, 60};
    for (size_t di = 0; di < NELEM(dims); di++)
        for (size_t ri = 0; ri < NELEM(rows); ri++)
            for (int kind = 0; kind < 4; kind++)
                for (int test = 0; test < 4; test++) {
                    if (kind && (rows[ri] > 13 || dims[di] > 129) && test != 1) continue;
                    i8t_case(dims[di], rows[ri], dims[di] + (ri % 2 ? 3 : 0), kind, test);
                }
    /* the longest rows: every lane's dot reaches 2^14 * 131071 in magnitude */
    for (int kind = 1; kind < 4; kind++) i8t_case(PPLX_DOT_MAX_DIM, 3, PPLX_DOT_MAX_DIM, kind, 1);
}

static void test_dot_i8_blocks(void) {
    static const size_t dims[] = {0,  1,  2,  3,  4,  5,   6,   7,   8,    9,   15, 16, 17,
                                  31, 32, 33, 63, 64, 65, 127, 128, 129, 1024, 2560};
    /* around the kernels' row blocks (1..4 for one query, 6 for 2..4
     * queries, 4 for 5..6, 3 for 7..8) and every remainder after one or
     * two blocks of them */
    static const size_t rows[] = {0, 1, 2, 3, 4, 5, 6, 7, 9, 11, 12, 13};
    for (int t = 0; t < ntab; t++) {
        const pplx_table *T = &tabs[t];
        if (!T->dot_i8_block) continue;
        check_tier = pplx_isa_names[T->isa];
        CHECK(T->i8_qblock >= 1 && T->i8_qblock <= PPLX_QBLOCK_MAX, "i8_qblock %zu", T->i8_qblock);
        for (size_t di = 0; di < NELEM(dims); di++)
            for (size_t ri = 0; ri < NELEM(rows); ri++)
                for (size_t nq = 0; nq <= T->i8_qblock + 1; nq++)
                    for (int kind = 0; kind < 4; kind++)
                        for (int odd = 0; odd < 2; odd++) {
                            if (kind && odd && dims[di] > 129) continue;
                            dot_i8_case(T, dims[di], rows[ri], nq, kind, odd);
                        }
        /* the longest rows: the dot products reach -128 * 127 * 131071 and 2^14 * 131071 */
        for (int kind = 1; kind < 4; kind++) {
            dot_i8_case(T, PPLX_DOT_MAX_DIM, 5, T->i8_qblock, kind, 1);
            dot_i8_case(T, PPLX_DOT_MAX_DIM, 3, 1, kind, 0);
        }
    }
    check_tier = "";
    static const size_t sdims[] = {1, 17, 64, 65, 129, 1024}, snq[] = {8, 9, 17, 33};
    for (size_t di = 0; di < NELEM(sdims); di++)
        for (size_t qi = 0; qi < NELEM(snq); qi++) {
            dot_i8_scan_case(sdims[di], sdims[di] > 129 ? 70 : 600, snq[qi], 0);
            dot_i8_scan_case(sdims[di], 37, snq[qi], 3);
        }
}

/* ---- the JSON byte scanners of the streaming decoder (simd/json) ----------- */

/* Not table entries: codec/_stream.pyx picks the scanner tier from the active
 * table (pplx_json_tier).  Every compiled and usable tier against the serial
 * twin: every length 0..160 at every offset 0..3 past a 64-byte boundary (in
 * exact-size buffers: ASan catches a read past the end), each kind of stop
 * byte at every position, a second stop after it, and every byte value at
 * every position of 1..70-byte runs. */
static void test_json_scan_one(const uint8_t *s, size_t n) {
    size_t want_s = pplx_json_special_serial(s, n), want_q = pplx_json_quote_serial(s, n);
    for (int t = PPLX_JSON_SSE2; t <= PPLX_JSON_NEON; t++) {
        if (!pplx_json_tier_usable(t)) continue;
        size_t got_s = pplx_json_special(t, s, n), got_q = pplx_json_quote(t, s, n);
        CHECK(got_s == want_s, "json special tier %d n=%zu: %zu, serial %zu", t, n, got_s, want_s);
        CHECK(got_q == want_q, "json quote tier %d n=%zu: %zu, serial %zu", t, n, got_q, want_q);
    }
}

static void test_json_scanners(void) {
    static const uint8_t stops[] = {'"', '\\', 0x00, 0x01, 0x0A, 0x1F, 0x80, 0xBF, 0xC3, 0xFF};
    static const uint8_t plain[] = {' ', '!', '#', 'A', 'z', '0', '+', '/', '=', '[', ']', 0x7F, '{', ':'};
    check_tier = "json";
    for (size_t n = 0; n <= 160; n++)
        for (size_t off = 0; off < 4; off++) {
            AT("json scanners n=%zu off=%zu", n, off);
            uint8_t *s = xalloc(n, off);
            for (size_t i = 0; i < n; i++) s[i] = plain[(i + n) % NELEM(plain)];
            test_json_scan_one(s, n);
            CHECK(pplx_json_special_serial(s, n) == n && pplx_json_quote_serial(s, n) == n, "json serial n=%zu", n);
            for (size_t k = 0; k < n; k++)
                for (size_t c = 0; c < NELEM(stops); c++) {
                    uint8_t was = s[k];
                    s[k] = stops[c];
                    CHECK(pplx_json_special_serial(s, n) == k, "json serial special n=%zu k=%zu", n, k);
                    test_json_scan_one(s, n);
                    if (k + 1 < n) {
                        size_t k2 = k + 1 + (k * 7 + c) % (n - k - 1);
                        uint8_t was2 = s[k2];
                        s[k2] = stops[(c + 1) % NELEM(stops)];
                        test_json_scan_one(s, n);
                        s[k2] = was2;
                    }
                    s[k] = was;
                }
            xfree(s, off);
        }
    for (size_t n = 1; n <= 70; n++) {
        AT("json scanners byte values n=%zu", n);
        uint8_t *s = xalloc(n, n % 4);
        for (size_t k = 0; k < n; k++)
            for (int v = 0; v < 256; v++) {
                memset(s, 'A', n);
                s[k] = (uint8_t)v;
                test_json_scan_one(s, n);
            }
        xfree(s, n % 4);
    }
    /* pplx_json_same: the literal the decoder compares, every prefix, one byte off anywhere */
    static const char lit[] = "\"},{\"object\":\"embedding\",\"index\":";
    for (size_t n = 0; n < sizeof lit; n++) {
        AT("json same n=%zu", n);
        uint8_t *p = xalloc(n, n % 4);
        memcpy(p, lit, n);
        CHECK(pplx_json_same(p, lit, n), "json same n=%zu", n);
        for (size_t k = 0; k < n; k++) {
            p[k] ^= 0x20;
            CHECK(!pplx_json_same(p, lit, n), "json same n=%zu k=%zu", n, k);
            p[k] ^= 0x20;
        }
        xfree(p, n % 4);
    }
    check_tier = "";
}

/* ---- the calibration's workloads and the mixed table ------------------------ */

/* Every workload of calibrate.h runs under every tier (the sanitizers watch
 * its buffers), and a table mixed family by family (pplx_table_take) runs
 * each family's code of the tier it took it from: the same entries as that
 * tier's table, and the same results as serial on a workload's outputs. */
static void test_calibration(void) {
    pplx_cal *c = pplx_cal_new();
    CHECK(c != NULL, "pplx_cal_new failed");
    if (!c) return;
    for (int t = 0; t < ntab; t++) {
        check_tier = pplx_isa_names[tabs[t].isa];
        for (int f = 0; f < PPLX_FAM_COUNT; f++) {
            for (int shape = 0; shape < pplx_cal_nshapes[f]; shape++)
                CHECK(pplx_cal_run(&tabs[t], c, f, shape) >= 0.0, "pplx_cal_run family %d shape %d", f, shape);
            CHECK(pplx_cal_run(&tabs[t], c, f, pplx_cal_nshapes[f]) < 0.0, "pplx_cal_run family %d past its shapes", f);
            CHECK(pplx_family_same(&tabs[t], &tabs[t], f), "family %d differs from itself", f);
        }
        /* the scores of the batched dot shape: every tier as serial */
        pplx_cal_run(&tabs[0], c, PPLX_FAM_DOT, 0);
        int32_t want[PPLX_CAL_QUERIES * 64];
        memcpy(want, c->out, sizeof want);
        pplx_cal_run(&tabs[t], c, PPLX_FAM_DOT, 0);
        CHECK(memcmp(want, c->out, sizeof want) == 0, "calibration dot scores differ from serial");
    }
    check_tier = "mixed";
    for (int t = 1; t < ntab; t++) {
        for (int f = 0; f < PPLX_FAM_COUNT; f++) {
            pplx_table mixed = tabs[0];
            mixed.isa = PPLX_ISA_MIXED;
            pplx_table_take(&mixed, &tabs[t], f);
            CHECK(pplx_family_same(&mixed, &tabs[t], f) && mixed.fam[f] == tabs[t].fam[f],
                  "family %d not taken from %s", f, pplx_isa_names[tabs[t].isa]);
            for (int g = 0; g < PPLX_FAM_COUNT; g++)
                CHECK(g == f || pplx_family_same(&mixed, &tabs[0], g), "taking family %d changed family %d", f, g);
            for (int shape = 0; shape < pplx_cal_nshapes[f]; shape++)
                CHECK(pplx_cal_run(&mixed, c, f, shape) >= 0.0, "mixed table family %d shape %d", f, shape);
        }
    }
    pplx_cal_free(c);
}
