// Teacher-forced comparison of the runtime with llama.cpp, for any GGUF model.
//
// tools/make_forced_golden writes what llama.cpp computes for a few prompts (golden/
// forced_*.json): the prompt ids, its greedy continuation, and at every step its top-1 /
// top-2 margin and its top_k logits (plus, at step 0, a sample spread over the whole
// vocabulary). RunForced() feeds the runtime the same prompt and then llama.cpp's tokens,
// one at a time, and records at every step our argmax and our logits at llama.cpp's top_k
// ids. A test then asks: wherever llama.cpp's margin exceeds a threshold, is our argmax
// llama.cpp's? And are our logits within the distance the threshold assumes?
//
// The threshold (derived in golden/README.md, "Teacher-forced comparison"): let
// e_k = ours_k - llama_k be our error at candidate k. We order two candidates a, b as
// llama.cpp does whenever |llama_a - llama_b| > |e_a - e_b|, so if the errors of llama.cpp's
// top_k candidates span at most D (max_k e_k - min_k e_k <= D, the "pair difference"),
// our argmax is llama.cpp's top-1 wherever its top-1 / top-2 margin exceeds D (tokens
// beyond its top_k are further below and are covered by the step-0 vocabulary sample).
// D is measured between pairs of correct implementations (ours int8 / ours f32 /
// llama.cpp / llama.cpp with an F16 KV cache) and bounded with a safety factor; a test
// then checks both that premise (our pair differences stay within the bound) and the
// tokens above it.
#ifndef RUNTIME_FORCED_GOLDEN_H_
#define RUNTIME_FORCED_GOLDEN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/model.h"

namespace fk {

struct ForcedCase {
  std::string name, text;
  bool chat = false;
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> greedy_ids;   // llama.cpp's argmax at each step
  std::vector<double> margins;       // llama.cpp's top-1 minus top-2 logit at each step
  std::vector<double> probe_diff;    // llama.cpp F16-KV vs F32-KV: pair difference per step
  std::vector<std::vector<int32_t>> top_ids;  // per step, best first
  std::vector<std::vector<float>> top_logits;
  std::vector<int32_t> sample_ids;   // step 0: a sample over the vocabulary
  std::vector<float> sample_logits;
};

struct ForcedGolden {
  std::string generator, oracle, settings, model_file, model_sha256;
  int64_t model_size = 0, n_vocab = 0;
  int steps = 0, top_k = 0;
  std::vector<ForcedCase> cases;
};

// Reads and checks a golden file (every per-step list has `steps` entries, ids in range).
absl::StatusOr<ForcedGolden> ReadForcedGolden(const std::string& path);

// max_k (a_k - b_k) - min_k (a_k - b_k): how much the differences between candidates
// change from b to a (0 for a common shift of all logits).
double PairDiff(const std::vector<float>& a, const std::vector<float>& b);

struct ForcedResult {
  std::vector<int32_t> argmax;     // ours, per step
  std::vector<std::vector<float>> top_logits;  // per step: ours at llama.cpp's top_k ids
  std::vector<double> top_diff;    // per step: max |ours - llama.cpp| over llama.cpp's top_k
  std::vector<double> pair_diff;   // per step: PairDiff(ours, llama.cpp) over its top_k
  std::vector<float> first_logits; // ours after the prompt (the whole vocabulary)
  double sample_max_diff = 0;      // step 0, over the sample: max |ours - llama.cpp|
  double sample_cosine = 0;        //   and the cosine of the two sample vectors

  // Steps whose llama.cpp margin exceeds `threshold`, and how many of those agree.
  int Compared(const ForcedCase& c, double threshold) const;
  int Agreed(const ForcedCase& c, double threshold) const;
  // Steps where our argmax differs although llama.cpp's margin exceeds `threshold`:
  // "step 7 (margin 3.1): ours 1234, llama.cpp 567".
  std::vector<std::string> Disagreements(const ForcedCase& c, double threshold) const;
  double MaxTopDiff() const;
  double MaxPairDiff() const;
};

// Prefill of c.prompt_ids, then c.greedy_ids[0 .. steps - 2] one at a time (the first
// `steps` steps, at most the golden's). Errors: ids outside the model's vocabulary, a
// session that cannot be created.
absl::StatusOr<ForcedResult> RunForced(const Model& model, const ForcedCase& c,
                                       const RunOptions& options, int steps);

}  // namespace fk

#endif  // RUNTIME_FORCED_GOLDEN_H_
