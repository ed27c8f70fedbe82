// Where the time of a model evaluation goes: each matmul by the weight it reads, attention,
// and everything else (embedding lookup, norms, RoPE, residual adds, KV-cache copies), with
// the weight bytes each matmul streams. A Session fills one when RunOptions::profile points
// at it (two clock reads per part; none when it is null); `generate --profile` prints it.
#ifndef RUNTIME_PROFILE_H_
#define RUNTIME_PROFILE_H_

#include <array>
#include <cstdint>
#include <string>

namespace fk {

class EvalProfile {
 public:
  // The parts of an evaluation. The matmuls are named after the GGUF tensor they read.
  enum Part : int {
    kAttnQkv,     // blk.N.attn_{q,k,v}.weight, one parallel pass over the three
    kAttnOutput,  // blk.N.attn_output.weight
    kFfnGateUp,   // blk.N.ffn_{gate,up}.weight, one pass, with the gated activation
    kFfnDown,     // blk.N.ffn_down.weight
    kLmHead,      // output.weight (or token_embd.weight when tied)
    kAttention,   // scores, softmax, weighted sum of V
    kOther,       // the rest of the evaluation: wall time minus the parts above
    kNumParts
  };
  static const char* part_name(Part p);
  static bool is_matmul(Part p) { return p <= kLmHead; }

  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
    uint64_t weight_bytes = 0;  // matmuls: the bytes of the weights read, summed over calls
  };

  void Add(Part p, double seconds, uint64_t weight_bytes) {
    Entry& e = parts_[p];
    e.seconds += seconds;
    e.calls += 1;
    e.weight_bytes += weight_bytes;
  }
  // One whole evaluation (Session::Eval) of `tokens` tokens took `seconds`.
  void AddEval(int64_t tokens, double seconds) {
    evals_ += 1;
    tokens_ += tokens;
    total_seconds_ += seconds;
  }
  void Reset() { *this = EvalProfile(); }

  const Entry& part(Part p) const { return parts_[p]; }
  // kOther: wall time of the evaluations minus every timed part (never below 0).
  Entry other() const;
  int64_t evals() const { return evals_; }
  int64_t tokens() const { return tokens_; }
  double total_seconds() const { return total_seconds_; }
  // Weight bytes every matmul of the evaluations read, summed.
  uint64_t matmul_weight_bytes() const;

  // A table, one line per part: calls and milliseconds per evaluation, share of the wall
  // time, weight bytes per evaluation and GB/s (matmuls); then the totals. `title` heads it.
  std::string Table(const std::string& title) const;
  // The same numbers as one JSON object (for the model sweep).
  std::string Json() const;

 private:
  std::array<Entry, kNumParts> parts_{};
  int64_t evals_ = 0;
  int64_t tokens_ = 0;
  double total_seconds_ = 0;
};

}  // namespace fk

#endif  // RUNTIME_PROFILE_H_
