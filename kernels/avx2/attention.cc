// attention_row for the avx2 variant: the shared SIMD body, compiled with AVX2 flags; blocks
// of rows run it row by row.
#include "kernels/simd/attention-inl.h"

namespace fk {

void attention_row__avx2(const AttentionRow& row) { attention_row_simd(row); }

void attention_rows__avx2(const AttentionRows& rows) {
  attention_rows_one_by_one(rows, &attention_row__avx2);
}

}  // namespace fk
