/* bits/neon.h - the neon tier of the bits kernels. */
#ifndef PPLX_BITS_NEON_H
#define PPLX_BITS_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON

#endif /* PPLX_COMPILE_NEON */
#endif
