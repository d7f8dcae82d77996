"""Build the compiled core: one extension per src/pplx_codec/*.pyx, named by its path.

The Cython sources sit beside the Python modules that import them
(src/pplx_codec/_search.pyx is pplx_codec._search, imported by search.py), so
a module's import names a file in the package.  The C they include is pure C
under codec/simd/ (no Python.h), found through include_dirs.

Directives are set once here.  PPLX_CODEC_DEBUG=1 turns bounds checks,
wraparound and line tracing on (for debugging and coverage), at a cost.

No OpenMP: searches run their parts on threads of their own
(codec/simd/threads.h), so any C compiler builds the package (gcc, clang,
Apple clang, MSVC) and the wheel carries no OpenMP runtime.
"""
import os
import sys
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("PPLX_CODEC_DEBUG") == "1"

# Compile flags by compiler family, chosen once the compiler is known (on
# Windows it may be MSVC or MinGW's gcc): GCC-style (gcc, clang, Apple clang)
# or MSVC.  Baseline flags only: AVX2 code is compiled per function through
# __attribute__((target)) in codec/simd, never with a global -mavx2; MSVC
# builds the serial kernels (see cpu.h).
# -g0 overrides the -g in Python's own CFLAGS: debug info for ~5 MB of
# generated C is a third of the compile time of a source install (gcc 12:
# 41 s -> 29 s for the six extensions on one core) and most of each .so's size;
# PPLX_CODEC_DEBUG=1 keeps it.
FLAGS = {
    "msvc": ["/O2"],
    "gnu": (["-O1", "-g", "-Wno-unused-function"] if DEBUG
            else ["-O3", "-g0", "-fno-strict-aliasing", "-Wno-unused-function"]),
}

# POSIX threads: -pthread also links libpthread where it is not part of libc
# (glibc before 2.34, which manylinux wheels target).  Windows uses its own threads.
PTHREAD = [] if sys.platform == "win32" else ["-pthread"]


class BuildExt(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # The extensions compile independently: one per core unless -j says
        # otherwise (a source install, the README's first line, is mostly this).
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        # Longest compiles first, so the cores finish together: the parallel
        # build hands out extensions in list order.  _dispatch holds every
        # tier's kernels (8.5 s with gcc 12 -O3, from only 0.5 MB of C), then
        # the rest by the size of their generated C, which tracks their time
        # (_stream 6.4 s ... _int8 2.4 s).  Alphabetical order took 21 s on
        # two cores.
        self.extensions.sort(key=lambda e: (e.name != "pplx_codec._dispatch",
                                            -sum(os.path.getsize(s) for s in e.sources if os.path.exists(s))))
        for ext in self.extensions:
            ext.extra_compile_args = FLAGS["msvc" if msvc else "gnu"] + ([] if msvc else PTHREAD)
            ext.extra_link_args = [] if msvc else PTHREAD
        super().build_extensions()


macros = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
if DEBUG:
    macros += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

PACKAGE = Path("src", "pplx_codec")
sources = sorted(PACKAGE.glob("*.pyx"))
if not sources:
    # An sdist without the Cython sources would otherwise build a wheel with
    # no compiled module at all, which installs and then fails on import.
    raise SystemExit(f"setup.py: no {PACKAGE}/*.pyx under {Path.cwd()}: the source tree or sdist is incomplete")

extensions = [
    Extension(
        f"pplx_codec.{pyx.stem}",
        [str(pyx)],
        include_dirs=["codec", np.get_include()],
        define_macros=macros,
        depends=[str(h) for h in Path("codec").rglob("*.h")] + [str(p) for p in PACKAGE.glob("*.px[di]")],
    )
    for pyx in sources
]

setup(
    cmdclass={"build_ext": BuildExt},
    ext_modules=cythonize(
        extensions,
        nthreads=0 if sys.platform == "win32" else os.cpu_count() or 1,  # spawn would re-run setup.py
        include_path=["src"],
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
            "cdivision": True,
            "embedsignature": True,
            "linetrace": DEBUG,
        },
    ),
)
