// The packed activation layouts of the AVX-512 int8 path, shared by its packers
// (kernels/avx512/act_packers.cc) and kernels (avx512 and avx512_vnni). Textual header for
// those libraries' .cc files only (see kernels/simd/common-inl.h).
#ifndef KERNELS_AVX512_ACT_LAYOUTS_INL_H_
#define KERNELS_AVX512_ACT_LAYOUTS_INL_H_

#include <cstdint>

namespace fk {
namespace {

// Both hold exactly the reference quantizer's values (Q8_0: fp16 d, q = roundf(x / d);
// Q8_K: float d, q = nearest_int(-127 x / max)), reordered so that a weight block's decoded
// bytes line up with them without shuffles, plus sums the kernels need, precomputed once.

// Q8_0, in groups of 4 blocks (128 elements). y holds the first halves (elements 0..15) of
// the 4 blocks, then the second halves (16..31): y[16b + t] = q_b[t], y[64 + 16b + t] =
// q_b[16 + t]. A dot over 64-byte vectors then leaves block b in int32 lanes 4b..4b+3.
// Lane l (block l / 4) sees 8 quants: y[4l .. 4l+3] and y[64 + 4l .. 64 + 4l+3]; aux[l] is
// `bias` times their sum (an integer, for Q4_0 / Q5_0 / Q8_0 offsets) or, for Q4_1, the
// float da_b * (sum of block b's 32 quants), b = l / 4. A partial last group is padded
// with zeros (da = 0).
struct alignas(64) ActQ8_0x4 {
  int8_t y[128];
  float da[16];     // lane l: the scale of block l / 4 (fp16 rounded, as a float)
  int32_t aux[16];  // see above (float bits for Q4_1)
};
static_assert(sizeof(ActQ8_0x4) == 256, "packed Q8_0 group is 256 bytes");

// Q8_K, one 256-element super-block. y is in one of the orders of YOrder below, the order in
// which a format's kernel unpacks its quants.
struct alignas(64) ActQ8_K {
  int8_t y[256];
  float d;
  int32_t sum;          // sum of all 256 quants
  int16_t nbsum16[16];  // -16 * (sum of quants 16 s .. 16 s + 15), s = 0..15 (fits int16)
  int16_t bsum32[8];    // sum of quants 32 s .. 32 s + 31, s = 0..7
  uint8_t pad[8];
};
static_assert(sizeof(ActQ8_K) == 320, "packed Q8_K super-block is 320 bytes");

// Position in ActQ8_K::y of sub-block s (32 elements) in nibble order.
constexpr int nibble_slot(int s) { return (s & ~3) + ((s & 1) << 1) + ((s >> 1) & 1); }
// ... in crumb order: group s = 4 h + r (elements 128 h + 32 r ..) at 2 r + h.
constexpr int crumb_slot(int s) { return 2 * (s & 3) + (s >> 2); }

// The orders of ActQ8_K::y:
//   element  element order (Q6_K, Q8_K);
//   nibble   32-element sub-blocks 0 2 1 3 4 6 5 7 (nibble_slot), the order of a Q4_K /
//            Q5_K block's nibbles;
//   crumb    32-element groups 0 4 1 5 2 6 3 7 (crumb_slot), the order of the 2-bit fields
//            of a Q2_K / Q3_K block's 64 qs bytes shifted right by 0, 2, 4, 6;
//   halves   per 128 elements (sub-blocks 4c .. 4c + 3), the first halves (16 elements) of
//            the 4 sub-blocks, then their second halves, the order of the low / high nibbles
//            of an IQ4_XS block's qs[64 c .. 64 c + 63].
enum class YOrder { kElement, kNibble, kCrumb, kHalves };
// Position in ActQ8_K::y of element e (0..255) of the super-block.
constexpr int y_pos(YOrder o, int e) {
  if (o == YOrder::kNibble) return 32 * nibble_slot(e / 32) + e % 32;
  if (o == YOrder::kCrumb) return 32 * crumb_slot(e / 32) + e % 32;
  if (o == YOrder::kHalves) {
    const int r = e % 128;
    return e - r + 64 * (r % 32 / 16) + 16 * (r / 32) + r % 16;
  }
  return e;
}

}  // namespace
}  // namespace fk

#endif  // KERNELS_AVX512_ACT_LAYOUTS_INL_H_
