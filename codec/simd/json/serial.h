/* json/serial.h - byte scanning for the streaming JSON decoder (codec/_stream.pyx).
 *
 * The decoder's state machine looks at a byte only where JSON structure can
 * change.  Inside a string (a key, a value other than an `embedding`) that is
 * where a byte is '"' (the end), '\\' (an escape), a control character
 * (< 0x20, an error) or a non-ASCII byte (>= 0x80, which starts UTF-8
 * validation); every other byte is plain and is skipped in bulk.  Inside an
 * `embedding` string only '"' and '\\' stop the run handed to the base64
 * decoder (any other byte that is not base64 is reported by the decoder).
 *
 *   pplx_json_special_<tier>(s, n): index of the first '"', '\\', byte < 0x20
 *                                   or byte >= 0x80 in s[0..n); n if none
 *   pplx_json_quote_<tier>(s, n):   index of the first '"' or '\\'; n if none
 *
 * Tiers (chosen at run time from the active kernel table, see json/json.h):
 *  - serial (this file): one byte at a time; the reference the others are
 *    tested against (tests/test_stream_scan.py, every length and position).
 *  - sse2, avx2 (json/avx2.h): 16 or 32 bytes per compare, see there.
 *  - neon (json/neon.h): 16 bytes per compare.
 * No tier ever reads outside s[0..n): the vector tiers load whole blocks only
 * while one fits, and finish with one block that ends exactly at s + n (it
 * overlaps bytes already known to be plain, so the first hit in it is the
 * first hit after them), or with this serial code when n is under one block.
 *
 * pplx_json_same(p, lit, n): p[0..n) == lit[0..n), as 8-byte words whose
 * differences are OR-ed and tested once (the last word overlaps the one
 * before it); with a literal and a constant n the compiler turns the words
 * of lit into immediates.  It compares the bytes the service writes between
 * two items (`"},{"object":"embedding","index":`, 33 bytes) in five loads.
 */
#ifndef PPLX_JSON_SERIAL_H
#define PPLX_JSON_SERIAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "../cpu.h"

static inline size_t pplx_json_special_serial(const uint8_t *s, size_t n) {
    size_t i = 0;
    for (; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
    }
    return i;
}

static inline size_t pplx_json_quote_serial(const uint8_t *s, size_t n) {
    size_t i = 0;
    for (; i < n; i++)
        if (s[i] == '"' || s[i] == '\\') break;
    return i;
}

static inline int pplx_json_same(const uint8_t *p, const char *lit, size_t n) {
    if (n < 8) {
        for (size_t i = 0; i < n; i++)
            if (p[i] != (uint8_t)lit[i]) return 0;
        return 1;
    }
    uint64_t a, b, diff = 0;
    for (size_t i = 0; i + 8 < n; i += 8) {
        memcpy(&a, p + i, 8);
        memcpy(&b, lit + i, 8);
        diff |= a ^ b;
    }
    memcpy(&a, p + n - 8, 8);
    memcpy(&b, lit + n - 8, 8);
    return (diff | (a ^ b)) == 0;
}

#endif
