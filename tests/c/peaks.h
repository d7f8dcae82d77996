/* peaks.h - the compute-peak loops of codec/simd/peak/ in the C harness
 * (included by sanitize.c, after its helpers; test_peaks runs from main).
 *
 * `pplx-codec bench` times these loops, so a loop that computes the wrong
 * thing would report a rate for work it did not do.  For every tier the
 * harness runs (tabs) and both kinds, every form's loop is run for 1 and 3
 * repeats over an exact-size 16 KiB buffer 0..3 bytes off a 64-byte boundary
 * (the loops load unaligned; ASan sees a read past the end) and its
 * checksum compared with pplx_peak_expect, the plain-C oracle; then
 * pplx_peak_run with no warm-up and no minimum time (one chunk), whose
 * repeat count, units and checksum must agree.  Every tier must have both
 * kinds (a tier without a peak would leave the bench's fraction blank). */
#ifndef PPLX_TEST_PEAKS_H
#define PPLX_TEST_PEAKS_H

#include "simd/peak/peak.h"

static void test_peaks(void) {
    static const char *const kinds[PPLX_PEAK_KINDS] = {"popcount", "mac"};
    for (size_t off = 0; off < 4; off++) {
        uint8_t *buf = xalloc(PPLX_PEAK_BYTES, off);
        for (size_t i = 0; i < PPLX_PEAK_BYTES; i++) buf[i] = (uint8_t)(rnd() & 0x7F); /* the bench's range */
        for (int t = 0; t < ntab; t++) {
            check_tier = pplx_isa_names[tabs[t].isa];
            for (int kind = 0; kind < PPLX_PEAK_KINDS; kind++) {
                pplx_peak_form forms[PPLX_PEAK_MAX_FORMS];
                const int n = pplx_peak_forms(tabs[t].isa, kind, forms);
                CHECK(n >= 1, "no %s peak loop", kinds[kind]);
                for (int f = 0; f < n; f++) {
                    AT("peak %s %s off=%zu", kinds[kind], forms[f].name, off);
                    CHECK(forms[f].kind == kind && forms[f].units_per_rep > 0, "%s: form fields", forms[f].name);
                    for (size_t reps = 1; reps <= 3; reps += 2) {
                        const uint64_t got = forms[f].loop(buf, reps), want = pplx_peak_expect(&forms[f], buf, reps);
                        CHECK(got == want, "peak %s %s reps=%zu: checksum %llu, want %llu", kinds[kind], forms[f].name,
                              reps, (unsigned long long)got, (unsigned long long)want);
                    }
                    pplx_peak_result res;
                    pplx_peak_run(&forms[f], buf, 0.0, 0.0, &res);
                    CHECK(res.reps == 1 && res.units == forms[f].units_per_rep && res.seconds >= 0 &&
                              res.check == pplx_peak_expect(&forms[f], buf, res.reps),
                          "peak_run %s %s: reps %llu units %g check %llu", kinds[kind], forms[f].name,
                          (unsigned long long)res.reps, res.units, (unsigned long long)res.check);
                }
            }
        }
        check_tier = "";
        xfree(buf, off);
    }
    pplx_peak_form none[PPLX_PEAK_MAX_FORMS];
    CHECK(pplx_peak_forms(PPLX_ISA_SERIAL, PPLX_PEAK_KINDS, none) == 0, "a kind that does not exist has no forms");
    CHECK(pplx_peak_forms(PPLX_ISA_COUNT, PPLX_PEAK_POPCOUNT, none) == 0, "a tier that does not exist has no forms");
}

#endif
