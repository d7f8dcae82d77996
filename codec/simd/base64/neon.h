/* base64/neon.h - the neon tier of the base64 kernels. */
#ifndef PPLX_BASE64_NEON_H
#define PPLX_BASE64_NEON_H

#include "serial.h"

#if PPLX_COMPILE_NEON

#endif /* PPLX_COMPILE_NEON */
#endif
