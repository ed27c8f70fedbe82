// attention_row for the avx2 variant: the shared SIMD body, compiled with AVX2 flags.
#include "kernels/simd/attention-inl.h"

namespace fk {

void attention_row__avx2(const AttentionRow& row) { attention_row_simd(row); }

}  // namespace fk
