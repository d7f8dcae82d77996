/* int8/avx512.h - the avx512 tier of the int8 kernels. */
#ifndef PPLX_INT8_AVX512_H
#define PPLX_INT8_AVX512_H

#include "avx2.h"

#if PPLX_COMPILE_AVX512

#endif /* PPLX_COMPILE_AVX512 */
#endif
