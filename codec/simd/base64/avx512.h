/* base64/avx512.h - the avx512 tier of the base64 kernels. */
#ifndef PPLX_BASE64_AVX512_H
#define PPLX_BASE64_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512

#endif /* PPLX_COMPILE_AVX512 */
#endif
