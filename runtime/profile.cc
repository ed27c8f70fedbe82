#include "runtime/profile.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fk {

const char* EvalProfile::part_name(Part p) {
  switch (p) {
    case kAttnQkv: return "attn_qkv";
    case kAttnOutput: return "attn_output";
    case kFfnGateUp: return "ffn_gate_up";
    case kFfnDown: return "ffn_down";
    case kLmHead: return "lm_head";
    case kAttention: return "attention";
    case kOther: return "other";
    case kNumParts: break;
  }
  return "?";
}

EvalProfile::Entry EvalProfile::other() const {
  Entry e;
  double timed = 0;
  for (int p = 0; p < kOther; ++p) timed += parts_[p].seconds;
  e.seconds = std::max(0.0, total_seconds_ - timed);
  e.calls = evals_;
  return e;
}

uint64_t EvalProfile::matmul_weight_bytes() const {
  uint64_t b = 0;
  for (int p = 0; p <= kLmHead; ++p) b += parts_[p].weight_bytes;
  return b;
}

std::string EvalProfile::Table(const std::string& title) const {
  const double per = evals_ > 0 ? 1.0 / static_cast<double>(evals_) : 0.0;
  std::string s = absl::StrFormat(
      "%s: %d evaluation(s), %d token(s), %.3f ms per evaluation\n"
      "  %-12s %8s %10s %7s %12s %8s\n",
      title, evals_, tokens_, 1e3 * total_seconds_ * per, "part", "calls", "ms", "share",
      "weight MB", "GB/s");
  for (int i = 0; i < kNumParts; ++i) {
    const Part p = static_cast<Part>(i);
    const Entry e = p == kOther ? other() : parts_[i];
    const double share = total_seconds_ > 0 ? 100.0 * e.seconds / total_seconds_ : 0.0;
    if (is_matmul(p)) {
      absl::StrAppendFormat(&s, "  %-12s %8.1f %10.3f %6.1f%% %12.3f %8.2f\n", part_name(p),
                            e.calls * per, 1e3 * e.seconds * per, share,
                            1e-6 * static_cast<double>(e.weight_bytes) * per,
                            e.seconds > 0 ? 1e-9 * static_cast<double>(e.weight_bytes) / e.seconds
                                          : 0.0);
    } else {
      absl::StrAppendFormat(&s, "  %-12s %8.1f %10.3f %6.1f%%\n", part_name(p), e.calls * per,
                            1e3 * e.seconds * per, share);
    }
  }
  double mm_s = 0;
  for (int p = 0; p <= kLmHead; ++p) mm_s += parts_[p].seconds;
  const double bytes = static_cast<double>(matmul_weight_bytes());
  absl::StrAppendFormat(
      &s,
      "  matmuls: %.1f%% of the time, %.3f MB of weights per evaluation at %.2f GB/s; "
      "whole evaluation: %.2f GB/s of weights\n",
      total_seconds_ > 0 ? 100.0 * mm_s / total_seconds_ : 0.0, 1e-6 * bytes * per,
      mm_s > 0 ? 1e-9 * bytes / mm_s : 0.0,
      total_seconds_ > 0 ? 1e-9 * bytes / total_seconds_ : 0.0);
  return s;
}

std::string EvalProfile::Json() const {
  std::string s = absl::StrFormat(R"({"evals": %d, "tokens": %d, "seconds": %.9g, "parts": {)",
                                  evals_, tokens_, total_seconds_);
  for (int i = 0; i < kNumParts; ++i) {
    const Part p = static_cast<Part>(i);
    const Entry e = p == kOther ? other() : parts_[i];
    absl::StrAppendFormat(&s, R"(%s"%s": {"seconds": %.9g, "calls": %d, "weight_bytes": %d})",
                          i == 0 ? "" : ", ", part_name(p), e.seconds, e.calls, e.weight_bytes);
  }
  s += "}}";
  return s;
}

}  // namespace fk
