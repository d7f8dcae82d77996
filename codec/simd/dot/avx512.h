/* dot/avx512.h - the avx512 tier of the dot kernels. */
#ifndef PPLX_DOT_AVX512_H
#define PPLX_DOT_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512

#endif /* PPLX_COMPILE_AVX512 */
#endif
