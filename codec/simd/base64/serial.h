/* base64/serial.h - strict RFC 4648 base64: standard alphabet, '=' padding, no
 * whitespace, no line breaks, canonical trailing bits.
 *
 * Decode.  The padding rules live in one place, pplx_b64_last_quad(): every
 * decoder handles all quads but the last as plain data and hands the last
 * one to it.
 *  - serial: one 256-entry table (0xFF = not in the alphabet), 4 chars ->
 *    24 bits -> 3 bytes.  On a bad char the offset of the first one is found
 *    by rescanning its quad.
 *  - avx2: the Mula/Lemire vector decode, 32 chars -> 24 bytes per step.
 *    Each char is classified by two pshufb lookups, one on its high nibble
 *    (a class bit) and one on its low nibble (the classes for which that
 *    low nibble is invalid); the AND of the two is non-zero exactly for the
 *    chars outside the alphabet, so validation costs one vptest per block.
 *    A third pshufb, indexed by the high nibble (minus one for '/', which
 *    shares its nibble with '+'), gives the offset that turns ASCII into the
 *    6-bit value.  pmaddubsw + pmaddwd merge 4 x 6 bits into a 24-bit lane,
 *    a byte shuffle and a dword permute squeeze 8 lanes into 24 bytes.
 *    Validity is OR-ed over four blocks and tested once; a group that fails
 *    is redone by the serial code, which names the offset.  Each step writes
 *    28 bytes for 24 (two 16-byte stores, the slack overwritten by the next
 *    step), so the loop stops while the slack still lands inside the output
 *    and the few quads left go through the serial code.
 * Encode.
 *  - serial: 3 bytes -> four 6-bit alphabet lookups.
 *  - avx2: the Mula vector encode: two 12-byte loads into the two lanes,
 *    pshufb to [b,a,c,b] per 3 bytes, mulhi/mullo to isolate the four 6-bit
 *    fields in byte order, then saturating-subtract/compare + pshufb map each
 *    6-bit value to its ASCII range offset.  24 bytes -> 32 chars per step.
 */
#ifndef PPLX_BASE64_SERIAL_H
#define PPLX_BASE64_SERIAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../cpu.h"
#include "../kernels.h"

static const uint8_t pplx_b64_value[256] = {
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x3E, 0xFF, 0xFF, 0xFF, 0x3F,
    0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
    0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F, 0x30, 0x31, 0x32, 0x33, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
};

static const char pplx_b64_alphabet[65] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Decode nq quads that may not hold '='.  Returns the offset of the first
 * invalid char, or (size_t)-1 when all were valid. */
static size_t pplx_b64_quads_serial(const uint8_t *s, size_t nq, uint8_t *d) {
    const uint8_t *v = pplx_b64_value;
    for (size_t q = 0; q < nq; q++, s += 4, d += 3) {
        uint32_t a = v[s[0]], b = v[s[1]], c = v[s[2]], e = v[s[3]];
        if ((a | b | c | e) & 0x80) {
            size_t k = 0;
            while (v[s[k]] != 0xFF) k++;
            return q * 4 + k;
        }
        uint32_t w = a << 18 | b << 12 | c << 6 | e;
        d[0] = (uint8_t)(w >> 16);
        d[1] = (uint8_t)(w >> 8);
        d[2] = (uint8_t)w;
    }
    return (size_t)-1;
}

/* The last quad of a text of length n (>= 4) whose earlier quads are done:
 * the only place '=' is allowed.  Writes 1..3 bytes at d, returns the count
 * or an error code with its offset (relative to the text) in *err. */
static ptrdiff_t pplx_b64_last_quad(const uint8_t *s, size_t n, uint8_t *d, size_t *err) {
    const uint8_t *v = pplx_b64_value;
    const uint8_t *q = s + n - 4;
    uint32_t a = v[q[0]], b = v[q[1]];
    if (a == 0xFF) { *err = n - 4; return PPLX_B64_BADCHAR; }
    if (b == 0xFF) { *err = n - 3; return PPLX_B64_BADCHAR; }
    if (q[3] == '=') {
        if (q[2] == '=') {                                   /* "xx==" : 1 byte */
            if (b & 0x0F) { *err = n - 3; return PPLX_B64_NONCANON; }
            d[0] = (uint8_t)(a << 2 | b >> 4);
            return 1;
        }
        uint32_t c = v[q[2]];                                /* "xxx=" : 2 bytes */
        if (c == 0xFF) { *err = n - 2; return PPLX_B64_BADCHAR; }
        if (c & 0x03) { *err = n - 2; return PPLX_B64_NONCANON; }
        uint32_t w = a << 18 | b << 12 | c << 6;
        d[0] = (uint8_t)(w >> 16);
        d[1] = (uint8_t)(w >> 8);
        return 2;
    }
    if (q[2] == '=') { *err = n - 1; return PPLX_B64_BADPAD; } /* "xx=x" */
    size_t bad = pplx_b64_quads_serial(q, 1, d);
    if (bad != (size_t)-1) { *err = n - 4 + bad; return PPLX_B64_BADCHAR; }
    return 3;
}

static ptrdiff_t pplx_b64_decode_serial(const uint8_t *s, size_t n, uint8_t *d, size_t *err) {
    if (n % 4) { *err = n - n % 4; return PPLX_B64_BADLEN; }
    if (n == 0) return 0;
    size_t bad = pplx_b64_quads_serial(s, n / 4 - 1, d);
    if (bad != (size_t)-1) { *err = bad; return PPLX_B64_BADCHAR; }
    ptrdiff_t last = pplx_b64_last_quad(s, n, d + (n / 4 - 1) * 3, err);
    return last < 0 ? last : (ptrdiff_t)((n / 4 - 1) * 3) + last;
}

static size_t pplx_b64_encode_serial(const uint8_t *s, size_t n, uint8_t *d) {
    const char *A = pplx_b64_alphabet;
    uint8_t *d0 = d;
    size_t i = 0;
    for (; i + 3 <= n; i += 3, d += 4) {
        uint32_t w = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        d[0] = A[w >> 18];
        d[1] = A[(w >> 12) & 63];
        d[2] = A[(w >> 6) & 63];
        d[3] = A[w & 63];
    }
    if (n - i == 1) {
        uint32_t w = (uint32_t)s[i] << 16;
        d[0] = A[w >> 18];
        d[1] = A[(w >> 12) & 63];
        d[2] = '=';
        d[3] = '=';
        d += 4;
    } else if (n - i == 2) {
        uint32_t w = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        d[0] = A[w >> 18];
        d[1] = A[(w >> 12) & 63];
        d[2] = A[(w >> 6) & 63];
        d[3] = '=';
        d += 4;
    }
    return (size_t)(d - d0);
}

#endif
