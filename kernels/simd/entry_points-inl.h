// Defines the registry's kernel functions of one ISA translation unit from
// kernels/registry.inc, so the registry row is the only place that names them (textual
// header; include it inside namespace fk, after the kernels it runs).
//
// Before including, the translation unit defines, for the (variant, path) whose rows it
// implements, FK_ENTRY_<VARIANT>_<PATH>(FORMAT, MIN_M) as the call that runs the kernel of a
// row on (a, n_begin, n_end), e.g.
//   #define FK_ENTRY_kAvx2_kF32(FORMAT, MIN_M) run_f32<VecAvx2, Format::FORMAT>(a, n_begin, n_end)
// Every registry row of that variant and path then gets its function
//   void FUNCTION(const MatmulArgs& a, int64_t n_begin, int64_t n_end);
// rows of other variants and paths are skipped. A row whose format has no codec for the
// ISA fails to compile, naming the format.
#ifndef FK_ENTRY_POINTS_INCLUDED_FOR_THIS_TU
#define FK_ENTRY_POINTS_INCLUDED_FOR_THIS_TU

#define FK_ENTRY_DEFINE(FUNCTION, CALL) \
  void FUNCTION(const MatmulArgs& a, int64_t n_begin, int64_t n_end) { CALL; }

// One selector per (variant, path): defines the row's function when the translation unit
// asked for that pair, nothing otherwise.
#define FK_ENTRY_SKIP(FORMAT, MIN_M, FUNCTION)
#define FK_ENTRY_SELECT_kScalar_kF32 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kScalar_kInt8 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kScalar_kBf16 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kAvx2_kBf16 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kAvx512Vnni_kBf16 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kScalar_kF16 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kAvx512Vnni_kF16 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kAmx_kF32 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kAmx_kBf16 FK_ENTRY_SKIP
#define FK_ENTRY_SELECT_kAmx_kF16 FK_ENTRY_SKIP
#ifdef FK_ENTRY_kAmx_kInt8
#define FK_ENTRY_SELECT_kAmx_kInt8(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAmx_kInt8(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAmx_kInt8 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx512_kF16
#define FK_ENTRY_SELECT_kAvx512_kF16(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx512_kF16(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx512_kF16 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx2_kF16
#define FK_ENTRY_SELECT_kAvx2_kF16(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx2_kF16(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx2_kF16 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx512_kBf16
#define FK_ENTRY_SELECT_kAvx512_kBf16(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx512_kBf16(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx512_kBf16 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx2_kF32
#define FK_ENTRY_SELECT_kAvx2_kF32(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx2_kF32(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx2_kF32 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx2_kInt8
#define FK_ENTRY_SELECT_kAvx2_kInt8(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx2_kInt8(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx2_kInt8 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx512_kF32
#define FK_ENTRY_SELECT_kAvx512_kF32(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx512_kF32(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx512_kF32 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx512_kInt8
#define FK_ENTRY_SELECT_kAvx512_kInt8(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx512_kInt8(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx512_kInt8 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx512Vnni_kF32
#define FK_ENTRY_SELECT_kAvx512Vnni_kF32(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx512Vnni_kF32(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx512Vnni_kF32 FK_ENTRY_SKIP
#endif
#ifdef FK_ENTRY_kAvx512Vnni_kInt8
#define FK_ENTRY_SELECT_kAvx512Vnni_kInt8(FORMAT, MIN_M, FUNCTION) \
  FK_ENTRY_DEFINE(FUNCTION, FK_ENTRY_kAvx512Vnni_kInt8(FORMAT, MIN_M))
#else
#define FK_ENTRY_SELECT_kAvx512Vnni_kInt8 FK_ENTRY_SKIP
#endif

#define FK_KERNEL(FORMAT, VARIANT, PATH, FEATURES, MIN_M, M_TILE, N_TILE, FUNCTION, ACT) \
  FK_ENTRY_SELECT_##VARIANT##_##PATH(FORMAT, MIN_M, FUNCTION)
#include "kernels/registry.inc"
#undef FK_KERNEL

#endif  // FK_ENTRY_POINTS_INCLUDED_FOR_THIS_TU
