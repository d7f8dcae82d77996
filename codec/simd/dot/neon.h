/* dot/neon.h - the neon tier of the dot kernels. */
#ifndef PPLX_DOT_NEON_H
#define PPLX_DOT_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON

#endif /* PPLX_COMPILE_NEON */
#endif
