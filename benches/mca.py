#!/usr/bin/env python3
"""Static cycle estimates for the ARM SHA-256d kernels with llvm-mca.

No Raspberry Pi is at hand in CI, so BENCHMARKS.md gives cycles per nonce as
llvm-mca predicts them for the Pi's cores. This script emits the release assembly
of picluster-core for aarch64 and armv7, cuts each kernel's main loop into its
straight-line parts and inner loops, asks llvm-mca for the steady-state cycles of
each part on a CPU model, weighs each loop by its trip count, and divides by the
nonces per batch.

    python3 benches/mca.py            # needs llvm-mca, the aarch64/armv7 targets
                                      # and cross linkers (see .cargo/config.toml)
    CPUMINER_SRC=/path/to/cpuminer-opt python3 benches/mca.py
                                      # and cpuminer-opt's kernels side by side

With CPUMINER_SRC (a checkout of cpuminer-opt, GPL, never vendored here), its
aarch64 SHA-256d kernels are compiled with the Debian cross gcc
(`aarch64-linux-gnu-gcc -O3`) and estimated the same way: its NEON 4-way scan
(`-march=armv8-a`, the Pi 3 and 4) is `sha256_4x32_final_rounds` plus
`sha256_4x32_transform_le` per four nonces, its ARMv8 SHA2 scan
(`-march=armv8-a+crypto`, the Pi 5) two `sha256_neon_x2sha_transform_le` per two
nonces. cpuminer-opt does not build for 32-bit ARM (it needs `__int128`), so
neon32 has no peer.

Limits: llvm-mca models the core alone (no cache misses; the working set is a
few KiB), and treats each part's branches as straight code.
"""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOISE = re.compile(r"^\s*\.(loc|file|cfi_|p2align|type|size|section|globl|fnstart|vsave|save|pad|setfp)|^\s*//|^\s*@|^\s*$")


def asm_of(target):
    subprocess.run(
        ["cargo", "rustc", "-q", "-p", "picluster-core", "--lib", "--release",
         "--target", target, "--", "--emit", "asm"],
        cwd=ROOT, check=True)
    files = glob.glob(f"{ROOT}/target/{target}/release/deps/picluster_core-*.s")
    return max(files, key=os.path.getmtime)


def function(path, symbol_part):
    lines = open(path).read().splitlines()
    start = next(i for i, l in enumerate(lines)
                 if l.endswith(":") and symbol_part in l and not l.startswith("."))
    body = []
    for l in lines[start + 1:]:
        if ".cfi_endproc" in l or l.strip() == ".fnend":
            break
        if not NOISE.search(l):
            body.append(l)
    return body


def mca(lines, triple, cpu):
    text = "\n".join(l for l in lines if not l.startswith(".L")) + "\n"
    out = subprocess.run(
        ["llvm-mca", f"-mtriple={triple}", f"-mcpu={cpu}", "-iterations=200"],
        input=text, capture_output=True, text=True, check=True).stdout
    cycles = int(re.search(r"Total Cycles:\s+(\d+)", out).group(1))
    instrs = int(re.search(r"Instructions:\s+(\d+)", out).group(1))
    return cycles / 200, instrs / 200


def loops(body):
    """(start, end) line indices of each backward-branch loop: label .. branch."""
    labels = {l[:-1]: i for i, l in enumerate(body) if re.match(r"^\.L\w+:$", l)}
    found = []
    for i, l in enumerate(body):
        m = re.search(r"\b(b\.\w+|bne|cbnz|cbz|b)\s+(\.L\w+)", l)
        if m and m.group(2) in labels and labels[m.group(2)] < i:
            found.append((labels[m.group(2)], i))
    return found


def estimate(body, outer, inner, triple, cpu):
    """Cycles of one iteration of the `outer` loop whose inner loops run `inner`
    times each (in order of appearance)."""
    start, end = outer
    straight, total, instrs = [], 0.0, 0.0
    inside = [lp for lp in loops(body) if start < lp[0] and lp[1] < end]
    assert len(inside) == len(inner), (inside, inner)
    cursor = start
    for (a, b), trips in zip(inside, inner):
        straight += body[cursor:a]
        c, n = mca(body[a:b + 1], triple, cpu)
        total += trips * c
        instrs += trips * n
        cursor = b + 1
    straight += body[cursor:end + 1]
    c, n = mca(straight, triple, cpu)
    return total + c, instrs + n


def gcc_asm(source, path, march, out):
    subprocess.run(
        ["aarch64-linux-gnu-gcc", "-O3", f"-march={march}", "-flax-vector-conversions",
         "-I.", "-S", path, "-o", out],
        cwd=source, check=True)
    return out


def whole(path, symbol, triple, cpu):
    """Cycles and instructions of one call of a straight-line function."""
    body = function(path, symbol + ":")
    assert not loops(body), f"{symbol} has loops; give their trip counts"
    return mca(body, triple, cpu)


def cpuminer(source):
    """cpuminer-opt's aarch64 SHA-256d kernels: (name, cpu, cycles, instructions)
    per nonce."""
    out = []
    neon = gcc_asm(source, "algo/sha/sha256-hash-4way.c", "armv8-a", "/tmp/cpuminer-4way-a64.s")
    sha2 = gcc_asm(source, "algo/sha/sha256-hash.c", "armv8-a+crypto", "/tmp/cpuminer-sha-a64.s")
    for cpu in ["cortex-a53", "cortex-a72", "cortex-a76"]:
        parts = [whole(neon, f, "aarch64", cpu) for f in
                 ["sha256_4x32_final_rounds", "sha256_4x32_transform_le",
                  "SHA256_4X32_TRANSFORM"]]
        out.append(("cpuminer-opt 4x32 (NEON)", cpu,
                    sum(c for c, _ in parts) / 4, sum(n for _, n in parts) / 4))
    c, n = whole(sha2, "sha256_neon_x2sha_transform_le", "aarch64", "cortex-a76")
    out.append(("cpuminer-opt x2 SHA2", "cortex-a76", 2 * c / 2, 2 * n / 2))
    return out


def main():
    results = []
    a64 = asm_of("aarch64-unknown-linux-gnu")
    a32 = asm_of("armv7-unknown-linux-gnueabihf")
    kernels = [
        # name, asm, symbol, triple, nonces per batch, inner loop trip counts
        ("neon (aarch64, 4 lanes)", a64, "neon5scan4", "aarch64", 4, []),
        ("armsha2 (aarch64, pipeline)", a64, "armsha214scan_pipelined", "aarch64", 2, []),
        ("neon32 (armv7, 4 lanes)", a32, "neon329compress4", "armv7", 4, [48, 8]),
    ]
    for name, path, symbol, triple, per_batch, inner in kernels:
        body = function(path, symbol)
        if symbol.endswith("compress4"):
            # Two compressions per batch of four nonces; the function is one call.
            outer = (0, len(body) - 1)
            per_call = 2
        else:
            # The outermost loop: the backward branch that spans the most lines.
            outer = max(loops(body), key=lambda lp: lp[1] - lp[0])
            per_call = 1
        for cpu in ["cortex-a53", "cortex-a72", "cortex-a76"]:
            if name.startswith("armsha2") and cpu != "cortex-a76":
                continue  # only the Pi 5's Cortex-A76 has the SHA2 instructions
            if triple == "armv7" and cpu != "cortex-a72":
                continue  # LLVM has 32-bit scheduling models for neither A53 nor A76
            cycles, instrs = estimate(body, outer, inner, triple, cpu)
            results.append((name, cpu, cycles * per_call / per_batch,
                            instrs * per_call / per_batch))
    source = os.environ.get("CPUMINER_SRC")
    if source:
        results += cpuminer(source)
    print(f"{'kernel':<30} {'cpu':<11} {'cycles/nonce':>12} {'instr/nonce':>11}")
    for name, cpu, c, n in results:
        print(f"{name:<30} {cpu:<11} {c:>12.0f} {n:>11.0f}")


if __name__ == "__main__":
    sys.exit(main())
