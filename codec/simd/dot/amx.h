/* dot/amx.h - the AMX tier of the dot kernels. */
#ifndef PPLX_DOT_AMX_H
#define PPLX_DOT_AMX_H

#include "avx512.h"

#if PPLX_COMPILE_AMX

#endif /* PPLX_COMPILE_AMX */
#endif
