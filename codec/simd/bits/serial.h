/* bits/serial.h - one bit per dimension: packing, unpacking, bit-order reversal.
 *
 * Bit order: "little" (LSB first, Perplexity's base64_binary: dimension j is
 * bit j % 8 of byte j / 8) or "big" (MSB first: numpy's default, faiss's
 * IndexBinary input, usearch b1x8, sentence-transformers ubinary).  Every
 * kernel takes msb = 0 / 1.  Trailing bits of a last partial byte are zero.
 *
 *  - pack: bit = (value > 0); NaN and -0.0 give 0.  bool bytes: bit = (byte
 *    != 0), as numpy reads a bool (a bool array viewed from raw bytes may hold
 *    2 or 255; as int8 those would be "> 0" or not by accident, so bools have
 *    their own kernel).  serial = a shift-or loop.  avx2: int8/bool compare
 *    32 lanes against zero and pmovmskb (which is already LSB-first);
 *    float32/float64 use cmpps/cmppd + movmskps/pd.  MSB order reverses each
 *    produced byte (pplx_rev8).
 *  - unpack: serial = shift-and per bit.  avx2: broadcast 4 code bytes,
 *    pshufb each byte into 8 lanes, AND with the 8 single-bit masks (in the
 *    requested order) and compare-equal, giving 0xFF/0x00 per dimension,
 *    then narrow to 0/1, -1/+1 or widen to float32 +-1.0.
 *  - reverse: serial table lookup; avx2 = two pshufb on the nibbles.
 */
#ifndef PPLX_BITS_SERIAL_H
#define PPLX_BITS_SERIAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#include "../cpu.h"

static inline uint8_t pplx_rev8(uint8_t b) {
    b = (uint8_t)((b & 0xF0) >> 4 | (b & 0x0F) << 4);
    b = (uint8_t)((b & 0xCC) >> 2 | (b & 0x33) << 2);
    b = (uint8_t)((b & 0xAA) >> 1 | (b & 0x55) << 1);
    return b;
}

/* Serial packers, written once for every input type. */
#define PPLX_PACK_SERIAL(NAME, T, SET)                                          \
    static void NAME(const T *x, size_t n, uint8_t *d, int msb) {              \
        for (size_t j = 0; j < n; j += 8) {                                    \
            size_t m = n - j < 8 ? n - j : 8;                                  \
            unsigned b = 0;                                                    \
            for (size_t k = 0; k < m; k++)                                     \
                b |= (unsigned)(x[j + k] SET) << (msb ? 7 - k : k);            \
            d[j / 8] = (uint8_t)b;                                             \
        }                                                                      \
    }
PPLX_PACK_SERIAL(pplx_pack_i8_serial, int8_t, > 0)
PPLX_PACK_SERIAL(pplx_pack_b8_serial, uint8_t, != 0)
PPLX_PACK_SERIAL(pplx_pack_f32_serial, float, > 0)
PPLX_PACK_SERIAL(pplx_pack_f64_serial, double, > 0)

/* Serial unpackers: ONE and ZERO are what a set and a clear bit become. */
#define PPLX_UNPACK_SERIAL(NAME, T, ONE, ZERO)                                  \
    static void NAME(const uint8_t *s, size_t n, T *y, int msb) {              \
        for (size_t j = 0; j < n; j++) {                                       \
            unsigned bit = (s[j / 8] >> (msb ? 7 - j % 8 : j % 8)) & 1u;       \
            y[j] = bit ? (T)(ONE) : (T)(ZERO);                                 \
        }                                                                      \
    }
PPLX_UNPACK_SERIAL(pplx_unpack_u8_serial, uint8_t, 1, 0)
PPLX_UNPACK_SERIAL(pplx_unpack_i8_serial, int8_t, 1, -1)
PPLX_UNPACK_SERIAL(pplx_unpack_f32_serial, float, 1.0f, -1.0f)

static void pplx_reverse_bits_serial(const uint8_t *s, size_t n, uint8_t *d) {
    for (size_t i = 0; i < n; i++) d[i] = pplx_rev8(s[i]);
}

#endif
