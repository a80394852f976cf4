"""llama.cpp is built for a fixed, portable baseline (the Makefile: x86-64-v3), never for the build machine.

A build with -march=native uses whatever the build host has; on another CPU, or a VM that advertises AMX
without granting it, the first reply dies with SIGILL. The installed libraries are disassembled to check
that no AVX-512 or AMX instruction is in them, whatever this machine supports.
"""

import hashlib
import importlib.util
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the instruction checks are for x86-64")

# AVX-512: its registers (zmm, the mask registers k0-k7, xmm/ymm 16-31) and the instructions that exist only
# in it (EVEX-encoded on xmm or ymm, so no zmm needed). AMX: tile registers and tile instructions.
AVX512 = re.compile(
    r"%zmm|%k[0-7]\b|%[xy]mm(1[6-9]|2\d|3[01])\b"
    r"|\s(k(mov|and|andn|or|xor|xnor|not|ortest|test|shift[lr]|unpck|add)[bwdq]"
    r"|vpternlog[dq]|vperm[it]2|v(p)?compress|v(p)?expand|vpconflict|vplzcnt|vpopcnt[bwdq]|vrndscale|vgetexp"
    r"|vgetmant|vscalef|vfixupimm|vrange|valign[dq]|vpmovm2|vpmov[bwdq]2m|vpmullq|vpsraq|vpabsq|vp(min|max)[su]q"
    r"|vcvt(t)?p[sd]2u|vcvt(u)?qq2p|vcvtne2ps2bf16|vdpbf16ps)\b"
)
AMX = re.compile(r"%tmm\d|\s(ldtilecfg|sttilecfg|tileloadd(t1)?|tilestored|tilerelease|tilezero|tdp\w+)\b")


def llama_libraries():
    """The shared libraries of the installed llama-cpp-python (libllama, ggml's, libmtmd), each file once."""
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None, "llama-cpp-python is not installed: run `make install`"
    folder = Path(spec.origin).parent / "lib"
    # A wheel holds libx.so, libx.so.0 and libx.so.0.1.2 as copies, not links: check each content once.
    contents = {hashlib.sha256(path.read_bytes()).digest(): path for path in sorted(folder.glob("lib*.so*"))}
    found = sorted(contents.values())
    assert found, f"no llama.cpp library in {folder}"
    return found


def disassembly(library):
    """objdump's disassembly of a library's code."""
    objdump = shutil.which("objdump")
    assert objdump, "objdump is missing: install binutils"
    return subprocess.run([objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True).stdout


def offending(text, pattern, limit=5):
    """The first lines of a disassembly that match pattern."""
    return [line.strip() for line in text.splitlines() if pattern.search(line)][:limit]


@pytest.mark.parametrize("library", llama_libraries(), ids=lambda path: path.name)
def test_llama_cpp_holds_no_avx512_or_amx_instruction(library):
    text = disassembly(library)
    assert "Disassembly of section .text" in text
    assert offending(text, AVX512) == []
    assert offending(text, AMX) == []


def test_the_cpu_backend_is_the_one_checked_and_uses_avx2():
    # The matrix code is in ggml's CPU backend: AVX2 (ymm registers, FMA) there proves the check read it.
    [cpu] = [library for library in llama_libraries() if library.name.startswith("libggml-cpu")]
    text = disassembly(cpu)
    assert "%ymm" in text and re.search(r"\svfmadd\w+\s", text)
