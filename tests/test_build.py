"""The compiled core: real extension modules, GIL released around kernels,
AVX2 only where dispatched (no global -mavx2), thread safety."""

import importlib
import importlib.machinery
import os
import platform
import re
import shlex
import shutil
import subprocess
import sysconfig
import threading
from pathlib import Path

import numpy as np
import pytest

import pplx_codec as pc
import reference as ref

EXTENSIONS = ["_dispatch", "_base64", "_bits", "_int8", "_search", "_peaks"]
ROOT = Path(__file__).resolve().parent.parent
X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def module_file(name: str) -> str:
    return importlib.import_module(f"pplx_codec.{name}").__file__


def disassemble(path: str) -> dict[str, list[str]]:
    """{function symbol: [instruction text, ...]} from objdump."""
    objdump = shutil.which("objdump")
    assert objdump, "objdump (binutils, installed with any C toolchain) is needed to inspect the build"
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                          check=True).stdout
    funcs, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            current = funcs.setdefault(m.group(1), [])
        elif current is not None and re.match(r"^\s+[0-9a-f]+:\t", line):
            current.append(line.split("\t", 1)[1].strip())
    return funcs


def is_vex(instruction: str) -> bool:
    """VEX/EVEX-encoded (AVX and later): every such mnemonic starts with 'v'."""
    mnemonic = instruction.split()[0] if instruction else ""
    return mnemonic.startswith("v") and mnemonic not in ("verr", "verw")


@pytest.mark.parametrize("name", EXTENSIONS)
def test_extensions_are_compiled(name):
    mod = importlib.import_module(f"pplx_codec.{name}")
    ext_suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert ext_suffix in importlib.machinery.EXTENSION_SUFFIXES
    assert mod.__file__.endswith(ext_suffix), mod.__file__
    assert isinstance(mod.__spec__.loader, importlib.machinery.ExtensionFileLoader)
    pkg_dir = Path(mod.__file__).parent
    assert not (pkg_dir / f"{name}.py").exists()
    assert Path(mod.__file__).name.startswith(name + ".")


def test_public_functions_come_from_the_extensions():
    from pplx_codec import _base64, _bits, _dispatch, _int8
    for fn in (_base64.b64decode, _base64.decode_rows, _base64.encode_rows, _bits.pack, _bits.unpack,
               _bits.reverse, _int8.norms, _int8.to_float32, _dispatch.set_active):
        assert type(fn).__name__ in ("cython_function_or_method", "builtin_function_or_method"), fn


# which wrapper in which module must run its kernel with the GIL released
NOGIL_WRAPPERS = {
    "_base64": ["b64decode", "encode", "decode_rows", "encode_rows"],
    "_bits": ["pack", "unpack", "reverse"],
    "_int8": ["norms", "to_float32"],
    "_peaks": ["run"],  # the bench's peak loops: one per thread at once
}


@pytest.mark.parametrize("module", sorted(NOGIL_WRAPPERS))
def test_kernels_run_without_the_gil(module):
    """Every kernel wrapper calls PyEval_SaveThread (Cython's `with nogil:`)."""
    funcs = disassemble(module_file(module))
    releasing = {f for f, ins in funcs.items()
                 if any(re.search(r"\b(call|jmp|bl|b)\b.*<PyEval_SaveThread", i) for i in ins)}
    for wrapper in NOGIL_WRAPPERS[module]:
        pattern = re.compile(rf"^__pyx_p[fw]_\d+pplx_codec_\d+{module}_\d+{wrapper}(\.|$)")
        assert any(pattern.match(f) for f in releasing), (wrapper, sorted(releasing))


def test_concurrent_kernels_give_correct_results(isa):
    """Two threads running kernels at once (the GIL is released inside them):
    every result must be right, i.e. no shared scratch state."""
    rng = np.random.default_rng(0)
    blobs = [rng.bytes(3_000_000 + k) for k in range(2)]
    texts = [ref.b64encode(b) for b in blobs]
    mats = [rng.integers(-128, 127, (200, 1024), dtype=np.int8, endpoint=True) for _ in range(2)]
    items = [ref.encode_int8(m) for m in mats]
    barrier = threading.Barrier(2)
    errors = []

    def work(k):
        try:
            barrier.wait()
            for _ in range(4):
                assert pc.b64decode(texts[k]).tobytes() == blobs[k]
                assert pc.b64encode(blobs[k]) == texts[k]
                np.testing.assert_array_equal(pc.decode_int8(items[k]), mats[k])
                np.testing.assert_array_equal(pc.pack_bits(mats[k], "big"), ref.pack_bits(mats[k], "big"))
                np.testing.assert_array_equal(pc.norms(mats[k]), ref.norms(mats[k]))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


def test_python_build_flags_are_baseline():
    """Extensions inherit the interpreter's CFLAGS; an AVX2 baseline there would
    make the whole binary need AVX2."""
    flags = " ".join(str(sysconfig.get_config_var(v) or "") for v in ("CFLAGS", "CCSHARED", "OPT"))
    assert not re.search(r"-m(avx|avx2|avx512\w*|fma)\b|-march=(native|haswell|skylake\S*|x86-64-v[34])", flags), flags


def is_tile(instruction: str) -> bool:
    """AMX: tile loads/stores/config and the tile dot products."""
    mnemonic = instruction.split()[0] if instruction else ""
    return mnemonic.startswith(("tile", "tdp", "ldtilecfg", "sttilecfg"))


def tier_of(function: str) -> str | None:
    """The x86 tier a kernel function belongs to, by the naming rule of
    codec/simd/<family>/<tier>.h (clones GCC makes keep the name as prefix)."""
    for tier in ("avx512", "amx", "avx2"):
        if re.search(rf"_{tier}(_\w+)?(\.\w+)*$", function):
            return tier
    return None


@pytest.mark.skipif(not X86_64, reason="AVX2 kernels exist only in x86-64 builds")
def test_wide_code_only_in_tier_kernels():
    """Built without a global -mavx2: AVX (VEX/EVEX) and AMX instructions appear
    only in the functions compiled with a tier's __attribute__((target)),
    every table kernel has an AVX2 version that uses ymm registers, 512-bit
    registers appear only in avx512/amx functions, tile instructions only in
    amx ones, and the serial kernels and all Cython code use baseline
    instructions only."""
    assert {"avx2", "avx512"} <= set(pc.capabilities()["compiled"])
    funcs = disassemble(module_file("_dispatch"))
    kernels = ["b64_decode", "b64_encode", "pack_i8", "pack_f32", "pack_f64", "unpack_u8", "unpack_i8",
               "unpack_f32", "reverse_bits", "sumsq_i8", "i8_to_f32", "hamming_block", "dot_block", "dot16_block"]
    for k in kernels:
        assert f"pplx_{k}_serial" in funcs, k  # present as real functions (the table points at them)
        avx2 = [ins for f, ins in funcs.items() if f == f"pplx_{k}_avx2" or f.startswith(f"pplx_{k}_avx2.")]
        assert avx2 and any("ymm" in i for ins in avx2 for i in ins), k
        serial = funcs[f"pplx_{k}_serial"]
        assert not [i for i in serial if is_vex(i)], k
    # every avx512 kernel really uses AVX-512: zmm registers or opmasks (%k1..%k7)
    avx512 = {f: ins for f, ins in funcs.items() if tier_of(f) == "avx512" and f.startswith("pplx_")}
    for f, ins in avx512.items():
        if any(f.startswith(f"pplx_{k}_avx512") for k in [*kernels, "dot_i8_block"]):
            assert any("zmm" in i or re.search(r"%k[1-7]", i) for i in ins), f
    for f, ins in funcs.items():
        tier = tier_of(f)
        wide = [i for i in ins if is_vex(i) or is_tile(i)]
        if tier is None:
            assert not wide[:3], f
        elif tier == "avx2":
            assert not [i for i in wide if "zmm" in i or is_tile(i)][:3], f
        elif tier == "avx512":
            assert not [i for i in wide if is_tile(i)][:3], f
    for name in ("_base64", "_bits", "_int8", "_search"):
        ins = [i for f in disassemble(module_file(name)).values() for i in f]
        assert any("xmm" in i for i in ins), name  # SSE code exists, and would be VEX under -mavx*
        assert not [i for i in ins if is_vex(i) or is_tile(i)][:5], name


@pytest.mark.skipif(not (ROOT / "codec" / "simd" / "dispatch.h").exists(), reason="needs the source tree")
def test_c_smoke_builds_with_baseline_flags_and_runs(tmp_path):
    """The kernel headers compile warning-free with no -m flags (AVX2 through
    target attributes only) and each detected ISA's table gives known answers."""
    cc = shlex.split(os.environ.get("CC", "")) or [shutil.which("cc") or shutil.which("gcc")]
    assert cc[0], "a C compiler is needed (the package itself is built with one)"
    exe = tmp_path / "smoke"
    build = subprocess.run(cc + ["-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", f"-I{ROOT / 'codec'}",
                                 str(ROOT / "tests" / "c" / "portable_smoke.c"), "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    assert r.stdout.splitlines() == [f"isa {n} ok" for n in pc.capabilities()["detected"]]
