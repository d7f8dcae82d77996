/* hamming/neon.h - the neon tier of the hamming kernels. */
#ifndef PPLX_HAMMING_NEON_H
#define PPLX_HAMMING_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON

#endif /* PPLX_COMPILE_NEON */
#endif
