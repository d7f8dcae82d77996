/* check.h - the one assertion of the C harnesses in tests/c/.
 *
 * CHECK(cond, fmt, ...) counts every comparison and keeps going on a failure,
 * so one run reports every broken case rather than the first; the first 40
 * failures are printed with file:line, the tier being run (check_tier, set
 * by harnesses that loop over tiers) and the printf-style message.
 * CHECK_COND(cond) prints the condition's text instead of a message.
 * AT(fmt, ...) records the case being run in `where` for a harness's fatal
 * signal handler (a sanitizer report names the line, this names the sizes). */
#ifndef PPLX_TEST_CHECK_H
#define PPLX_TEST_CHECK_H

#include <stdio.h>

static unsigned long long checks;
static unsigned long failures;
static const char *check_tier = "";
static char where[256] __attribute__((unused)) = "setup"; /* (gcc and clang build the harnesses) */

#define AT(...) snprintf(where, sizeof where, __VA_ARGS__)

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        checks++;                                                           \
        if (!(cond) && failures++ < 40) {                                   \
            printf("FAIL %s:%d", __FILE__, __LINE__);                       \
            if (*check_tier) printf(" [%s]", check_tier);                   \
            printf(" ");                                                    \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
        }                                                                   \
    } while (0)

#define CHECK_COND(cond) CHECK(cond, "%s", #cond)

#endif
