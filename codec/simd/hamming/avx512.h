/* hamming/avx512.h - the avx512 tier of the hamming kernels. */
#ifndef PPLX_HAMMING_AVX512_H
#define PPLX_HAMMING_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512

#endif /* PPLX_COMPILE_AVX512 */
#endif
