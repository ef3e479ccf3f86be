/* What the SHA-NI instructions cost on this x86 CPU, in core cycles: the figures
 * behind the `shani` kernel's design (BENCHMARKS.md). Each test runs eight of one
 * instruction per iteration with no dependency between iterations, alone and next
 * to 96 `paddd`s, which can run on any of the three vector ALU ports (0, 1, 5 on
 * Intel). An instruction that holds one of those ports for c cycles makes the second
 * figure about (96 + 8c) / 3 cycles. Core cycles come from a chain of dependent
 * `add`s (one cycle each), so TSC and turbo clocks do not matter.
 *
 *   gcc -O2 -msha -msse4.1 benches/ports.c -o /tmp/ports && /tmp/ports
 */
#include <stdint.h>
#include <stdio.h>
#include <x86intrin.h>

#define ITERS 20000000ULL
#define CLOBBERS "eax", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
                 "xmm8", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15"
/* op on a fresh copy of xmm9 with xmm10 (and xmm0 for sha256rnds2): no chains. */
#define ONE(op, reg) "movdqa %%xmm9, %%" reg "\n" op " %%xmm10, %%" reg "\n"
#define EIGHT(op) ONE(op, "xmm1") ONE(op, "xmm2") ONE(op, "xmm3") ONE(op, "xmm4") \
                  ONE(op, "xmm5") ONE(op, "xmm6") ONE(op, "xmm7") ONE(op, "xmm8")
#define P4 "paddd %%xmm9, %%xmm11\n paddd %%xmm9, %%xmm12\n paddd %%xmm9, %%xmm13\n paddd %%xmm9, %%xmm14\n"
#define P12 P4 P4 P4
#define P96 P12 P12 P12 P12 P12 P12 P12 P12

static double tsc_per_cycle;

static uint64_t now(void) {
    unsigned aux;
    return __rdtscp(&aux);
}

#define MEASURE(label, text)                                                      \
    do {                                                                          \
        uint64_t t0 = now();                                                      \
        for (uint64_t i = 0; i < ITERS; i++) __asm__ volatile(text ::: CLOBBERS); \
        double c = (double)(now() - t0) / ITERS / tsc_per_cycle;                  \
        printf("%-34s %6.2f cycles per iteration\n", label, c);                   \
    } while (0)

int main(void) {
    __asm__ volatile("pcmpeqd %%xmm9, %%xmm9\n pxor %%xmm10, %%xmm10\n pxor %%xmm0, %%xmm0" ::
                         : "xmm0", "xmm9", "xmm10");
    uint64_t t0 = now();
    for (uint64_t i = 0; i < ITERS; i++)
        __asm__ volatile("add $1, %%eax\n add $1, %%eax\n add $1, %%eax\n add $1, %%eax" ::: "eax");
    tsc_per_cycle = (double)(now() - t0) / ITERS / 4;
    printf("TSC ticks per core cycle: %.3f\n", tsc_per_cycle);
    MEASURE("96 paddd", P96);
    MEASURE("8 sha256rnds2", EIGHT("sha256rnds2"));
    MEASURE("8 sha256rnds2 + 96 paddd", EIGHT("sha256rnds2") P96);
    MEASURE("8 sha256msg1", EIGHT("sha256msg1"));
    MEASURE("8 sha256msg1 + 96 paddd", EIGHT("sha256msg1") P96);
    MEASURE("8 sha256msg2", EIGHT("sha256msg2"));
    MEASURE("8 sha256msg2 + 96 paddd", EIGHT("sha256msg2") P96);
    MEASURE("8 pshufd", EIGHT("pshufd $14,"));
    MEASURE("8 pshufd + 96 paddd", EIGHT("pshufd $14,") P96);
    MEASURE("8 pextrd", EIGHT("pextrd $1, %%xmm10, %%eax\n #"));
    MEASURE("8 pextrd + 96 paddd", EIGHT("pextrd $1, %%xmm10, %%eax\n #") P96);
    return 0;
}
