/* Build check for targets this machine cannot run natively (aarch64 under
 * qemu-user in CI): the kernel headers must compile without x86 intrinsics
 * and every table entry must give known answers.  The Python suite tests
 * the kernels in depth; this only proves the portable build is sound.
 *   cc -O2 -Wall -Wextra -Werror -Wno-unused-function -Icodec tests/c/portable_smoke.c */
#include <stdio.h>
#include <string.h>
#include "simd/dispatch.h"
#include "check.h"


int main(void) {
    unsigned detected = pplx_isa_detected();
    for (int isa = 0; isa < PPLX_ISA_COUNT; isa++) {
        if (!(detected >> isa & 1)) continue;
        pplx_table t;
        pplx_table_fill(&t, isa);
        /* RFC 4648 vectors, both directions */
        const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
        const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
        for (int i = 0; i < 7; i++) {
            uint8_t buf[16];
            size_t err = 0;
            ptrdiff_t r = t.b64_decode((const uint8_t *)coded[i], strlen(coded[i]), buf, &err);
            CHECK_COND(r == (ptrdiff_t)strlen(plain[i]) && memcmp(buf, plain[i], (size_t)r) == 0);
            size_t w = t.b64_encode((const uint8_t *)plain[i], strlen(plain[i]), buf);
            CHECK_COND(w == strlen(coded[i]) && memcmp(buf, coded[i], w) == 0);
        }
        size_t err = 0;
        uint8_t buf[8];
        CHECK_COND(t.b64_decode((const uint8_t *)"Zm9!", 4, buf, &err) == PPLX_B64_BADCHAR && err == 3);
        /* bits: 37 values, both orders, round trip */
        int8_t x[37];
        for (int i = 0; i < 37; i++) x[i] = (int8_t)((i * 7) % 5 - 2);
        for (int msb = 0; msb < 2; msb++) {
            uint8_t p[5], u[37], r[5], rr[5];
            t.pack_i8(x, 37, p, msb);
            t.unpack_u8(p, 37, u, msb);
            for (int i = 0; i < 37; i++) CHECK_COND(u[i] == (x[i] > 0));
            t.reverse_bits(p, 5, r);
            t.reverse_bits(r, 5, rr);
            CHECK_COND(memcmp(p, rr, 5) == 0);
        }
        int32_t want = 0;
        for (int i = 0; i < 37; i++) want += x[i] * x[i];
        CHECK_COND(t.sumsq_i8(x, 37) == want);
        printf("isa %s ok\n", pplx_isa_names[isa]);
    }
    return failures != 0;
}
