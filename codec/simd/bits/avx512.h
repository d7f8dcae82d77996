/* bits/avx512.h - the avx512 tier of the bits kernels. */
#ifndef PPLX_BITS_AVX512_H
#define PPLX_BITS_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512

#endif /* PPLX_COMPILE_AVX512 */
#endif
