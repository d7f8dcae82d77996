/* int8/neon.h - the neon tier of the int8 kernels. */
#ifndef PPLX_INT8_NEON_H
#define PPLX_INT8_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON

#endif /* PPLX_COMPILE_NEON */
#endif
