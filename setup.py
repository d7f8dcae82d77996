"""Build the compiled core: one extension per codec/*.pyx, as pplx_codec._<name>.

Directives are set once here.  PPLX_CODEC_DEBUG=1 turns bounds checks,
wraparound and line tracing on (for debugging and coverage), at a cost.
"""
import os
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("PPLX_CODEC_DEBUG") == "1"

if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    # Baseline flags only: AVX2 code is compiled per function through
    # __attribute__((target)) in codec/simd, never with a global -mavx2.
    compile_args = ["-O3", "-fno-strict-aliasing", "-Wno-unused-function"]
    if DEBUG:
        compile_args = ["-O1", "-g", "-Wno-unused-function"]

# Modules whose loops run on OpenMP threads (Cython prange).
OPENMP = {"_search"}
openmp_args = ["-fopenmp"]
if sys.platform == "win32":
    openmp_args = ["/openmp"]

macros = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
if DEBUG:
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

extensions = [
    Extension(
        f"pplx_codec.{pyx.stem}",
        [str(pyx)],
        include_dirs=["codec", np.get_include()],
        define_macros=macros,
        extra_compile_args=compile_args + (openmp_args if pyx.stem in OPENMP else []),
        extra_link_args=openmp_args if pyx.stem in OPENMP and sys.platform != "win32" else [],
        depends=[str(h) for h in Path("codec").rglob("*.h")] + [str(p) for p in Path("codec").glob("*.pxd")],
    )
    for pyx in sorted(Path("codec").glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["codec"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
            "cdivision": True,
            "embedsignature": True,
            "linetrace": DEBUG,
        },
    )
)
