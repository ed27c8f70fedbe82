// The instruction loops of //harness:isa_rates (harness/isa_rates_main.cc), compiled with the
// AVX-512 flags they need; only called once the CPU has said it has them. Each loop runs
// `iters` iterations of one group of independent 512-bit instructions (no instruction waits
// for another's result), so its time is the instructions' throughput, not their latency.
#include "harness/isa_rates_loops.h"

namespace fk {
namespace {

// Operands: zmm20, zmm21 inputs, zmm22 a copy source, destinations zmm0..zmm15 / 24..27.
#define FK_D(r) "vpdpbusd %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_W(r) "vpdpwssd %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_MB(r) "vpmaddubsw %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_FM(r) "vfmadd231ps %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_SH(r) "vpshufb %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_PK(r) "vpackssdw %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_PW(r) "vpermw %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_SR(r) "vpsrlw $4, %%zmm20, %%zmm" #r "\n"
#define FK_CV(r) "vcvtdq2ps %%zmm20, %%zmm" #r "\n"
#define FK_A(r) "vpandd %%zmm20, %%zmm21, %%zmm" #r "\n"
#define FK_MV(r) "vmovdqa32 %%zmm22, %%zmm" #r "\n"
// Mask registers: written from a general register or by a vector compare, read by a
// merge-masked byte add (Q5_0 / Q5_1's fifth bits); any mask value will do.
#define FK_KM(k) "kmovq %%rax, %%k" #k "\n"
#define FK_TM(k) "vptestmb %%zmm20, %%zmm21, %%k" #k "\n"
#define FK_MA(r, k) "vpaddb %%zmm20, %%zmm21, %%zmm" #r "%{%%k" #k "%}\n"
#define FK_X8(m) m(0) m(1) m(2) m(3) m(4) m(5) m(6) m(7)
#define FK_CLOBBERS                                                                           \
  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",     \
      "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm20", "xmm21", "xmm22", "xmm24", "xmm25", \
      "xmm26", "xmm27", "k1", "k2", "k3", "k4", "rax", "memory"
#define FK_LOOP(fn, body)                                                   \
  void fn(int64_t iters) {                                                  \
    __asm__ volatile("vpxord %%zmm20, %%zmm20, %%zmm20\n"                   \
                     "vpxord %%zmm21, %%zmm21, %%zmm21\n"                   \
                     "vpxord %%zmm22, %%zmm22, %%zmm22\n" ::: FK_CLOBBERS); \
    for (int64_t i = 0; i < iters; ++i) __asm__ volatile(body ::: FK_CLOBBERS);  \
    __asm__ volatile("vzeroupper" ::: FK_CLOBBERS);                        \
  }

FK_LOOP(dpbusd, FK_X8(FK_D))
FK_LOOP(dpwssd, FK_X8(FK_W))
FK_LOOP(maddubs, FK_X8(FK_MB))
FK_LOOP(fma, FK_X8(FK_FM))
FK_LOOP(fma_dpbusd, FK_FM(0) FK_D(8) FK_FM(1) FK_D(9) FK_FM(2) FK_D(10) FK_FM(3) FK_D(11))
FK_LOOP(pshufb, FK_X8(FK_SH))
FK_LOOP(packssdw, FK_X8(FK_PK))
FK_LOOP(permw, FK_X8(FK_PW))
FK_LOOP(psrlw, FK_X8(FK_SR))
FK_LOOP(cvtdq2ps, FK_X8(FK_CV))
FK_LOOP(pandd, FK_X8(FK_A))
FK_LOOP(copy, FK_X8(FK_MV))
FK_LOOP(copy_dpbusd, FK_MV(0) FK_D(0) FK_MV(1) FK_D(1) FK_MV(2) FK_D(2) FK_MV(3) FK_D(3)
                         FK_MV(4) FK_D(4) FK_MV(5) FK_D(5) FK_MV(6) FK_D(6) FK_MV(7) FK_D(7))
FK_LOOP(dpbusd_pshufb, FK_D(0) FK_SH(8) FK_D(1) FK_SH(9) FK_D(2) FK_SH(10) FK_D(3) FK_SH(11))
FK_LOOP(dpbusd_pandd, FK_D(0) FK_A(8) FK_D(1) FK_A(9) FK_D(2) FK_A(10) FK_D(3) FK_A(11))
FK_LOOP(psrlw_pshufb, FK_SR(0) FK_SH(8) FK_SR(1) FK_SH(9) FK_SR(2) FK_SH(10) FK_SR(3) FK_SH(11))
FK_LOOP(kmovq, FK_KM(1) FK_KM(2) FK_KM(3) FK_KM(4) FK_KM(1) FK_KM(2) FK_KM(3) FK_KM(4))
FK_LOOP(kmovq_dpbusd, FK_KM(1) FK_D(0) FK_D(1) FK_KM(2) FK_D(2) FK_D(3) FK_KM(3) FK_D(4) FK_D(5) FK_KM(4)
                          FK_D(6) FK_D(7))
FK_LOOP(ptestmb_dpbusd, FK_TM(1) FK_D(0) FK_D(1) FK_TM(2) FK_D(2) FK_D(3) FK_TM(3) FK_D(4) FK_D(5) FK_TM(4)
                            FK_D(6) FK_D(7))
FK_LOOP(maskadd_dpbusd, FK_MA(8, 1) FK_D(0) FK_D(1) FK_MA(9, 2) FK_D(2) FK_D(3) FK_MA(10, 3) FK_D(4) FK_D(5)
                            FK_MA(11, 4) FK_D(6) FK_D(7))
FK_LOOP(dpbusd_pshufb_pandd, FK_D(0) FK_D(1) FK_SH(2) FK_SH(3) FK_A(4) FK_A(5) FK_D(6) FK_D(7)
                                 FK_SH(8) FK_SH(9) FK_A(10) FK_A(11))

}  // namespace

const std::vector<IsaLoop>& isa_loops() {
  static const std::vector<IsaLoop> loops = {
      {"vpdpbusd", 8, 0, dpbusd},
      {"vpdpwssd", 8, 0, dpwssd},
      {"vpmaddubsw", 8, 0, maddubs},
      {"vfmadd231ps", 8, 0, fma},
      {"vfmadd231ps + vpdpbusd", 8, 0, fma_dpbusd},
      {"vpshufb", 8, 0, pshufb},
      {"vpackssdw", 8, 0, packssdw},
      {"vpermw", 8, 0, permw},
      {"vpsrlw", 8, 0, psrlw},
      {"vcvtdq2ps", 8, 0, cvtdq2ps},
      {"vpandd", 8, 0, pandd},
      {"vmovdqa32 (register copy)", 8, 8, copy},
      {"vmovdqa32 + vpdpbusd", 16, 8, copy_dpbusd},
      {"vpdpbusd + vpshufb", 8, 0, dpbusd_pshufb},
      {"vpdpbusd + vpandd", 8, 0, dpbusd_pandd},
      {"vpsrlw + vpshufb", 8, 0, psrlw_pshufb},
      {"vpdpbusd + vpshufb + vpandd", 12, 0, dpbusd_pshufb_pandd},
      {"kmovq k, r64", 8, 0, kmovq},
      {"vpdpbusd x2 + kmovq k, r64", 12, 0, kmovq_dpbusd},
      {"vpdpbusd x2 + vptestmb", 12, 0, ptestmb_dpbusd},
      {"vpdpbusd x2 + vpaddb{k}", 12, 0, maskadd_dpbusd},
  };
  return loops;
}

}  // namespace fk
