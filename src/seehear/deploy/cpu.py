"""What the CPU offers int8 inference, from /proc/cpuinfo: it decides how weights are quantized.

On x86 without VNNI, ONNX Runtime's u8 x s8 kernels multiply with VPMADDUBSW, which adds pairs of products into a
*saturating* int16: two 255 x 127 products overflow it, and a layer with large weights (fastnet's whitening stem)
silently computes garbage. Weights quantized to 7 bits (reduce_range) keep each pair under 2^15. VNNI (VPDPBUSD)
accumulates in int32 and needs no such cut; ARM's dot-product instructions do not saturate either.
"""
from __future__ import annotations

import platform
from pathlib import Path


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def int8_isa(flags: set[str] | None = None) -> dict:
    """{"isa": a short name, "vnni": bool, "bf16": bool, "saturates": bool}; `saturates` says that u8s8 int8 kernels
    can overflow here, so weights must be quantized with reduce_range."""
    flags = cpu_flags() if flags is None else set(flags)
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "i386") or "sse2" in flags
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})
    bf16 = bool(flags & {"avx512_bf16", "amx_bf16"})
    if not x86:
        isa = "arm-dotprod" if "asimddp" in flags else (platform.machine() or "unknown")
    elif "amx_int8" in flags:
        isa = "AMX-INT8"
    elif "avx512_vnni" in flags:
        isa = "AVX-512 VNNI" + (" + BF16" if bf16 else "")
    elif "avx_vnni" in flags:
        isa = "AVX-VNNI"
    elif "avx512f" in flags:
        isa = "AVX-512 (no VNNI)"
    elif "avx2" in flags:
        isa = "AVX2 (no VNNI)"
    else:
        isa = "x86 (no AVX2)"
    return {"isa": isa, "vnni": vnni, "bf16": bf16, "saturates": x86 and not vnni}
