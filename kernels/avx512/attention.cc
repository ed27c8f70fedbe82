// attention_row for the avx512 variant: the shared SIMD body, compiled with AVX-512 flags
// (the same 8-lane operations, EVEX-encoded with 32 registers; the reference's summation
// order fixes the width, see kernels/attention.h).
#include "kernels/simd/attention-inl.h"

namespace fk {

void attention_row__avx512(const AttentionRow& row) { attention_row_simd(row); }

}  // namespace fk
