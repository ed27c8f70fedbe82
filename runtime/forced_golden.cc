#include "runtime/forced_golden.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace fk {
namespace {

using nlohmann::json;

int32_t Argmax(absl::Span<const float> x) {
  return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

}  // namespace

absl::StatusOr<ForcedGolden> ReadForcedGolden(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  const auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
  };
  ForcedGolden g;
  try {
    const json j = json::parse(ss.str());
    g.generator = j.at("generator").get<std::string>();
    g.oracle = j.at("oracle").get<std::string>();
    g.settings = j.at("settings").get<std::string>();
    g.model_file = j.at("model_file").get<std::string>();
    g.model_sha256 = j.at("model_sha256").get<std::string>();
    g.model_size = j.at("model_size").get<int64_t>();
    g.n_vocab = j.at("n_vocab").get<int64_t>();
    g.steps = j.at("steps").get<int>();
    g.top_k = j.at("top_k").get<int>();
    for (const json& c : j.at("cases")) {
      ForcedCase k;
      k.name = c.at("name").get<std::string>();
      k.text = c.at("text").get<std::string>();
      k.chat = c.at("chat").get<bool>();
      k.prompt_ids = c.at("prompt_ids").get<std::vector<int32_t>>();
      k.greedy_ids = c.at("greedy_ids").get<std::vector<int32_t>>();
      k.margins = c.at("margins").get<std::vector<double>>();
      k.probe_diff = c.at("probe_diff").get<std::vector<double>>();
      k.top_ids = c.at("top_ids").get<std::vector<std::vector<int32_t>>>();
      k.top_logits = c.at("top_logits").get<std::vector<std::vector<float>>>();
      k.sample_ids = c.at("sample_ids").get<std::vector<int32_t>>();
      k.sample_logits = c.at("sample_logits").get<std::vector<float>>();
      g.cases.push_back(std::move(k));
    }
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  if (g.steps < 1 || g.top_k < 2 || g.n_vocab < 2 || g.cases.empty()) {
    return bad("needs steps >= 1, top_k >= 2, n_vocab >= 2 and at least one case");
  }
  const auto in_vocab = [&](const std::vector<int32_t>& ids) {
    return std::all_of(ids.begin(), ids.end(),
                       [&](int32_t t) { return t >= 0 && t < g.n_vocab; });
  };
  for (const ForcedCase& c : g.cases) {
    const size_t s = static_cast<size_t>(g.steps);
    bool ok = !c.prompt_ids.empty() && c.greedy_ids.size() == s && c.margins.size() == s &&
              c.probe_diff.size() == s && c.top_ids.size() == s && c.top_logits.size() == s &&
              c.sample_ids.size() == c.sample_logits.size() && in_vocab(c.prompt_ids) &&
              in_vocab(c.greedy_ids) && in_vocab(c.sample_ids);
    for (size_t i = 0; ok && i < s; ++i) {
      ok = c.top_ids[i].size() == static_cast<size_t>(g.top_k) &&
           c.top_logits[i].size() == c.top_ids[i].size() && in_vocab(c.top_ids[i]) &&
           c.top_ids[i][0] == c.greedy_ids[i];
    }
    if (!ok) return bad(absl::StrCat("case '", c.name, "' is inconsistent"));
  }
  return g;
}

int ForcedResult::Compared(const ForcedCase& c, double threshold) const {
  int n = 0;
  for (size_t i = 0; i < argmax.size(); ++i) n += c.margins[i] > threshold;
  return n;
}

int ForcedResult::Agreed(const ForcedCase& c, double threshold) const {
  int n = 0;
  for (size_t i = 0; i < argmax.size(); ++i) {
    n += c.margins[i] > threshold && argmax[i] == c.greedy_ids[i];
  }
  return n;
}

std::vector<std::string> ForcedResult::Disagreements(const ForcedCase& c,
                                                     double threshold) const {
  std::vector<std::string> out;
  for (size_t i = 0; i < argmax.size(); ++i) {
    if (c.margins[i] > threshold && argmax[i] != c.greedy_ids[i]) {
      out.push_back(absl::StrFormat("step %d (margin %.3f): ours %d, llama.cpp %d", i,
                                    c.margins[i], argmax[i], c.greedy_ids[i]));
    }
  }
  return out;
}

double ForcedResult::MaxTopDiff() const {
  double m = 0;
  for (double d : top_diff) m = std::max(m, d);
  return m;
}

double ForcedResult::MaxPairDiff() const {
  double m = 0;
  for (double d : pair_diff) m = std::max(m, d);
  return m;
}

double PairDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t k = 0; k < a.size() && k < b.size(); ++k) {
    const double e = double{a[k]} - b[k];
    lo = std::min(lo, e);
    hi = std::max(hi, e);
  }
  return hi >= lo ? hi - lo : 0;
}

absl::StatusOr<ForcedResult> RunForced(const Model& model, const ForcedCase& c,
                                       const RunOptions& options, int steps) {
  steps = std::min<int>(steps, static_cast<int>(c.greedy_ids.size()));
  if (steps < 1) return absl::InvalidArgumentError("RunForced: no steps");
  const int64_t context = static_cast<int64_t>(c.prompt_ids.size()) + steps;
  absl::StatusOr<std::unique_ptr<Session>> session =
      Session::Create(model, context, options, std::min<int64_t>(context, 512));
  if (!session.ok()) return session.status();
  Session& s = **session;
  const int64_t n_vocab = model.config().n_vocab;
  const auto outside = [&](const std::vector<int32_t>& ids) {
    return std::any_of(ids.begin(), ids.end(), [&](int32_t t) { return t >= n_vocab; });
  };
  bool bad = outside(c.sample_ids);
  for (int i = 0; i < steps; ++i) bad = bad || outside(c.top_ids[i]);
  if (bad) {
    return absl::InvalidArgumentError(absl::StrCat(
        "case '", c.name, "': golden token ids outside the model's vocabulary of ", n_vocab));
  }
  ForcedResult r;
  absl::Status st = s.Eval(c.prompt_ids);
  if (!st.ok()) return st;
  for (int i = 0; i < steps; ++i) {
    const absl::Span<const float> logits = s.logits();
    r.argmax.push_back(Argmax(logits));
    std::vector<float> ours;
    double d = 0;
    for (size_t k = 0; k < c.top_ids[i].size(); ++k) {
      ours.push_back(logits[c.top_ids[i][k]]);
      d = std::max(d, std::fabs(double{ours.back()} - c.top_logits[i][k]));
    }
    r.top_diff.push_back(d);
    r.pair_diff.push_back(PairDiff(ours, c.top_logits[i]));
    r.top_logits.push_back(std::move(ours));
    if (i == 0) {
      r.first_logits.assign(logits.begin(), logits.end());
      double ab = 0, aa = 0, bb = 0;
      for (size_t k = 0; k < c.sample_ids.size(); ++k) {
        const double a = logits[c.sample_ids[k]], b = c.sample_logits[k];
        r.sample_max_diff = std::max(r.sample_max_diff, std::fabs(a - b));
        ab += a * b;
        aa += a * a;
        bb += b * b;
      }
      r.sample_cosine = aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : 0;
    }
    if (i + 1 < steps) {
      const int32_t t = c.greedy_ids[i];
      if (!(st = s.Eval({&t, 1})).ok()) return st;
    }
  }
  return r;
}

}  // namespace fk
