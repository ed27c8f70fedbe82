// Our runtime's side of the model sweep (harness/model_sweep.py runs it once per
// configuration, so load time and peak RSS are per configuration). Calls the runtime's
// library API in-process: GgufFile::Open, Model::Load, Session::Eval.
//
//   model_sweep_worker --model=F.gguf --weights=native|f32 --threads=N --prompt_ids=1,2,..
//       [--decode_tokens=64] [--reps=3] [--warmup_prompt=16] [--warmup_decode=4]
//       [--ll_ids=...] [--ll_chunk=512] [--variant=..] [--path=..] [--adjacent_probe]
//   model_sweep_worker --machine [--bandwidth_threads=1,2] [--settle_s=60] [--reason=start]
//       [--probes_in=FILE]   (DRAM probes by the roofline rule of harness/machine.h: wait for
//       a quiet machine, every probe with its load, the best of these and FILE's earlier
//       probes (a JSON array) is the roofline, trusted once one was quiet; progress on stderr)
//   model_sweep_worker --model=F.gguf --tokenize_file=TEXT
//   model_sweep_worker --format_table   (the format table, kernels/formats.inc, as JSON)
//
// Prints one JSON object on stdout. Timings: prefill = one Eval of the whole prompt (one
// batch); decode = the Evals of the (decode_tokens - 1) tokens after the first, which
// comes from the prefill's logits; greedy argmax in between. The log-likelihood of --ll_ids:
// the ids in chunks of --ll_chunk (the last one shorter), each evaluated from an empty cache
// with every row's logits (Session::EvalAll); each id after a chunk's first is scored
// against the rows before it in its chunk (model_sweep_llama.py scores the same pairs).
// loglik_all lists the scores in order, mean_loglik is their mean. --adjacent_probe: after
// each timed repetition, a DRAM probe with the same thread count (harness/machine.h's
// MeasureReadBandwidth, the best of 5 passes as the run's own probes; with 2 passes it read
// 5-9 % below them), so each decode speed has a roofline taken seconds, not an hour, from
// it: dram_adjacent_gbs_all in order, dram_adjacent_gbs their median (a shared host's
// memory speed drifts by 5-10 % within an hour). Exit code 2 on error.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "harness/machine.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "kernels/formats_json.h"
#include "nlohmann/json.hpp"
#include "runtime/profile.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

[[noreturn]] void Fail(const std::string& msg) {
  std::fprintf(stderr, "model_sweep_worker: %s\n", msg.c_str());
  std::exit(2);
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::vector<int32_t> ParseIds(const std::string& flag, const std::string& v) {
  std::vector<int32_t> out;
  for (absl::string_view s : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
    int32_t x = 0;
    if (!absl::SimpleAtoi(s, &x) || x < 0) {
      Fail(absl::StrFormat("--%s: '%s' is not a token id", flag, s));
    }
    out.push_back(x);
  }
  return out;
}

int64_t ProcStatusBytes(const char* key) {  // VmRSS, VmHWM (kB in /proc/self/status)
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (absl::StartsWith(line, key)) {
      std::istringstream is(line.substr(std::strlen(key) + 1));
      int64_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

// Resets this process's peak RSS (VmHWM) to its current RSS (Linux: "5" to
// /proc/self/clear_refs). False when the kernel does not allow it.
bool ResetPeakRss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

int32_t Argmax(absl::Span<const float> x) {
  return static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());
}

int RunMachine(const std::string& bw_threads, double settle_s, const std::string& reason,
               const std::string& probes_in) {
  fk::MachineInfo m = fk::DescribeMachine();
  json j;
  j["cpu_model"] = m.cpu_model;
  j["cpu_short"] = fk::ShortCpuName(m.cpu_model);
  j["isa_flags"] = m.isa_flags;
  j["logical_cores"] = m.logical_cores;
  j["compiler"] = m.compiler;
  j["bazel_version"] = m.bazel_version;
  j["kernel"] = m.kernel;
  std::vector<int> threads;
  for (absl::string_view s : absl::StrSplit(bw_threads, ',', absl::SkipWhitespace())) {
    int t = 0;
    if (!absl::SimpleAtoi(s, &t) || t < 1) {
      Fail(absl::StrFormat("--bandwidth_threads: '%s' is not a thread count", s));
    }
    threads.push_back(t);
  }
  fk::RooflinePolicy policy;
  policy.settle_max_s = settle_s;
  fk::RooflineEnv env;
  const size_t bytes = fk::DramProbeBytes(size_t{1} << 30, fk::LastLevelCacheBytes());
  env.probe = [bytes](int t) { return fk::MeasureReadBandwidth(t, bytes) / 1e9; };
  env.progress = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  fk::DramRoofline roof(policy, env);
  if (!probes_in.empty()) {
    std::ifstream f(probes_in);
    if (!f) Fail("--probes_in: cannot read " + probes_in);
    json earlier = json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!earlier.is_array()) Fail("--probes_in: " + probes_in + " is not a JSON array of probes");
    for (const json& e : earlier) {
      fk::DramProbe p;
      std::string why;
      if (!fk::DramProbeFromJson(nlohmann::json::parse(e.dump()), &p, &why)) {
        Fail("--probes_in: " + probes_in + ": " + why);
      }
      roof.Add(p);
    }
  }
  if (!threads.empty()) {
    const fk::DramRoofline::Settled settled = roof.WaitForQuiet("model_sweep");
    j["dram_settle"] = {{"quiet", settled.quiet}, {"waited_s", settled.waited_s}};
    for (int t : threads) {
      const fk::DramProbe& p = roof.Probe(t, reason);
      std::fprintf(stderr, "model_sweep: DRAM read %.1f GB/s with %d thread%s (%s: other work "
                   "%.2f cores)\n", p.gbps, t, t == 1 ? "" : "s",
                   p.quiet ? "quiet" : "taken under load", p.other_cores);
    }
  }
  json probes = json::array(), best = json::object(), trusted = json::object();
  for (const fk::DramProbe& p : roof.probes()) {
    probes.push_back(fk::DramProbeJson(p));
    best[std::to_string(p.threads)] = roof.Best(p.threads);
    trusted[std::to_string(p.threads)] = roof.Trusted(p.threads);
  }
  j["dram_probes"] = probes;
  j["dram_read_gbs"] = best;        // by thread count: the best probe (harness/machine.h)
  j["dram_read_trusted"] = trusted; // ... and whether a probe with that count was quiet
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_path, weights = "native", prompt_flag, ll_flag, tokenize_file, variant,
                          path, bw_threads = "1", probe_reason = "start", probes_in;
  double settle_s = 60;
  int threads = 1, decode_tokens = 64, reps = 3, warmup_prompt = 16, warmup_decode = 4,
      ll_chunk = 512;
  bool machine = false, adjacent_probe = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const size_t eq = a.find('=');
    const std::string name = a.substr(0, eq), v = eq == std::string::npos ? "" : a.substr(eq + 1);
    auto int_flag = [&](int* out, int lo, int hi) {
      if (!absl::SimpleAtoi(v, out) || *out < lo || *out > hi) {
        Fail(absl::StrFormat("%s=%s: expected an integer in [%d, %d]", name, v, lo, hi));
      }
    };
    if (name == "--model") model_path = v;
    else if (name == "--weights") weights = v;
    else if (name == "--threads") int_flag(&threads, 1, 1024);
    else if (name == "--prompt_ids") prompt_flag = v;
    else if (name == "--decode_tokens") int_flag(&decode_tokens, 0, 100000);
    else if (name == "--reps") int_flag(&reps, 0, 1000);
    else if (name == "--warmup_prompt") int_flag(&warmup_prompt, 0, 100000);
    else if (name == "--warmup_decode") int_flag(&warmup_decode, 0, 100000);
    else if (name == "--ll_ids") ll_flag = v;
    else if (name == "--ll_chunk") int_flag(&ll_chunk, 2, 1 << 20);
    else if (name == "--tokenize_file") tokenize_file = v;
    else if (name == "--variant") variant = v;
    else if (name == "--path") path = v;
    else if (name == "--machine") machine = true;
    else if (name == "--adjacent_probe") adjacent_probe = true;
    else if (name == "--format_table") {
      std::printf("%s\n", fk::FormatTableJson().dump().c_str());
      return 0;
    }
    else if (name == "--bandwidth_threads") bw_threads = v;
    else if (name == "--reason") probe_reason = v;
    else if (name == "--probes_in") probes_in = v;
    else if (name == "--settle_s") {
      if (!absl::SimpleAtod(v, &settle_s) || !(settle_s >= 0 && settle_s <= 3600)) {
        Fail(absl::StrFormat("--settle_s=%s: expected seconds in [0, 3600]", v));
      }
    }
    else if (name == "--help" || name == "-h") {
      std::printf("model_sweep_worker: one configuration of //harness:model_sweep (see the top "
                  "of harness/model_sweep_worker.cc)\n");
      return 0;
    } else {
      Fail(absl::StrFormat("unknown argument '%s'", a));
    }
  }
  if (machine) return RunMachine(bw_threads, settle_s, probe_reason, probes_in);
  if (model_path.empty()) Fail("--model=PATH is required");

  const auto t0 = Clock::now();
  absl::StatusOr<fk::GgufFile> file = fk::GgufFile::Open(model_path, fk::GgufLoad::kHugePages);
  if (!file.ok()) Fail(std::string(file.status().message()));

  if (!tokenize_file.empty()) {
    std::ifstream f(tokenize_file, std::ios::binary);
    if (!f) Fail("cannot read " + tokenize_file);
    std::stringstream ss;
    ss << f.rdbuf();
    absl::StatusOr<fk::Tokenizer> tok = fk::Tokenizer::FromGguf(*file);
    if (!tok.ok()) Fail(std::string(tok.status().message()));
    json j;
    j["ids"] = tok->Encode(ss.str(), /*add_special=*/true, /*parse_special=*/false);
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }

  absl::StatusOr<fk::WeightMode> mode = fk::parse_weight_mode(weights);
  if (!mode.ok()) Fail(std::string(mode.status().message()));
  const std::vector<int32_t> prompt = ParseIds("prompt_ids", prompt_flag);
  const std::vector<int32_t> ll = ParseIds("ll_ids", ll_flag);
  fk::RunOptions run;
  if (!variant.empty()) {
    absl::StatusOr<fk::Variant> p = fk::parse_variant(variant);
    if (!p.ok()) Fail(std::string(p.status().message()));
    run.variant = *p;
  }
  if (!path.empty()) {
    absl::StatusOr<fk::Path> p = fk::parse_path(path);
    if (!p.ok()) Fail(std::string(p.status().message()));
    run.path = *p;
  }

  absl::StatusOr<std::unique_ptr<fk::Model>> model = fk::Model::Load(*file, *mode);
  if (!model.ok()) Fail(std::string(model.status().message()));
  file = absl::InternalError("closed");  // the model's views keep the mapping they need
  fk::ThreadPool pool(threads);
  run.pool = &pool;
  const int64_t max_context = std::max<int64_t>(
      {static_cast<int64_t>(prompt.size()) + decode_tokens,
       std::min<int64_t>(static_cast<int64_t>(ll.size()), ll_chunk), warmup_prompt + warmup_decode,
       8});
  // The prompt in one batch; the held-out chunks in batches of up to 512 rows.
  const int64_t max_batch = std::clamp<int64_t>(
      std::max<int64_t>(static_cast<int64_t>(prompt.size()),
                        std::min<int64_t>(static_cast<int64_t>(ll.size()), ll_chunk)),
      1, 512);
  absl::StatusOr<std::unique_ptr<fk::Session>> session =
      fk::Session::Create(**model, max_context, run, max_batch);
  if (!session.ok()) Fail(std::string(session.status().message()));
  fk::Session& s = **session;
  const double load_s = Seconds(t0, Clock::now());
  const int64_t rss_after_load = ProcStatusBytes("VmRSS:");
  int64_t peak_rss = -1;  // the peak RSS before each --adjacent_probe

  auto eval = [&](absl::Span<const int32_t> t) {
    absl::Status st = s.Eval(t);
    if (!st.ok()) Fail(std::string(st.message()));
  };
  // Greedy: the first token from the prompt's logits, then n_decode - 1 Evals.
  auto generate = [&](const std::vector<int32_t>& p, int n_decode, double* t_prefill,
                      double* t_decode) {
    s.Reset();
    auto a = Clock::now();
    eval(p);
    *t_prefill = Seconds(a, Clock::now());
    std::vector<int32_t> out = {Argmax(s.logits())};
    *t_decode = 0;
    for (int j = 0; j + 1 < n_decode; ++j) {
      a = Clock::now();
      eval({&out.back(), 1});
      *t_decode += Seconds(a, Clock::now());
      out.push_back(Argmax(s.logits()));
    }
    return out;
  };

  json j;
  j["engine"] = "ours";
  j["model"] = model_path;
  j["weights"] = fk::weight_mode_name(*mode);
  j["threads"] = threads;
  j["load_s"] = load_s;
  j["weight_bytes"] = (*model)->weight_memory_bytes();
  j["formats"] = (*model)->format_summary();
  j["kernels"] = s.kernel_summary();
  j["rss_after_load_bytes"] = rss_after_load;
  if (!prompt.empty()) {
    std::vector<int32_t> warm;
    for (int i = 0; i < warmup_prompt; ++i) warm.push_back(prompt[i % prompt.size()]);
    double tp = 0, td = 0;
    if (!warm.empty()) generate(warm, std::max(1, warmup_decode), &tp, &td);
    json prefill = json::array(), decode = json::array();
    std::vector<int32_t> out;
    std::vector<double> adjacent;
    const size_t probe_bytes = fk::DramProbeBytes(size_t{1} << 30, fk::LastLevelCacheBytes());
    // The probe's buffer (1 GiB, freed after it) is not the model's memory: the peak before
    // each probe is kept and the kernel's peak reset after it. Without the reset the peak
    // would count the buffer, so then no probe runs.
    if (adjacent_probe) {
      peak_rss = ProcStatusBytes("VmHWM:");
      if (!ResetPeakRss()) {
        std::fprintf(stderr, "model_sweep_worker: --adjacent_probe skipped: cannot reset the "
                     "peak RSS (/proc/self/clear_refs), which the probe's buffer would raise\n");
        j["dram_adjacent_skipped"] = "cannot reset the peak RSS (/proc/self/clear_refs)";
        adjacent_probe = false;
      }
    }
    for (int r = 0; r < reps; ++r) {
      out = generate(prompt, std::max(1, decode_tokens), &tp, &td);
      prefill.push_back(prompt.size() / tp);
      if (decode_tokens > 1) decode.push_back((decode_tokens - 1) / td);
      if (adjacent_probe) {
        peak_rss = std::max(peak_rss, ProcStatusBytes("VmHWM:"));
        adjacent.push_back(fk::MeasureReadBandwidth(threads, probe_bytes) / 1e9);
        if (!ResetPeakRss()) Fail("cannot reset the peak RSS after the DRAM probe");
      }
    }
    if (!adjacent.empty()) {
      j["dram_adjacent_gbs_all"] = adjacent;
      j["dram_adjacent_gbs"] = fk::Median(adjacent);
    }
    // One more run, profiled (runtime/profile.h): where prefill's and decode's time goes.
    fk::EvalProfile prof;
    s.set_profile(&prof);
    s.Reset();
    eval(prompt);
    j["profile_prefill"] = json::parse(prof.Json());
    prof.Reset();
    std::vector<int32_t> next = {Argmax(s.logits())};
    for (int i = 0; i + 1 < decode_tokens; ++i) {
      eval({&next.back(), 1});
      next.push_back(Argmax(s.logits()));
    }
    if (decode_tokens > 1) j["profile_decode"] = json::parse(prof.Json());
    s.set_profile(nullptr);
    j["prompt_tokens"] = prompt.size();
    j["decode_tokens"] = decode_tokens;
    j["prefill_tok_s_all"] = prefill;
    j["decode_tok_s_all"] = decode;
    j["generated_ids"] = out;
  }
  if (ll.size() >= 2) {
    double total = 0;
    json per_token = json::array();
    for (size_t c0 = 0; c0 + 1 < ll.size(); c0 += ll_chunk) {
      const size_t len = std::min<size_t>(ll_chunk, ll.size() - c0);
      if (len < 2) break;
      s.Reset();
      absl::Status st = s.EvalAll({ll.data() + c0, len}, [&](int64_t i,
                                                               absl::Span<const float> x) {
        if (static_cast<size_t>(i) + 1 >= len) return;
        const int32_t next = ll[c0 + i + 1];
        if (next >= static_cast<int32_t>(x.size())) Fail("--ll_ids: id outside the vocabulary");
        double m = -INFINITY;
        for (float v : x) m = std::max(m, double{v});
        double sum = 0;
        for (float v : x) sum += std::exp(double{v} - m);
        const double lp = double{x[next]} - (m + std::log(sum));
        total += lp;
        per_token.push_back(lp);
      });
      if (!st.ok()) Fail(std::string(st.message()));
    }
    j["mean_loglik"] = total / per_token.size();
    j["loglik_tokens"] = per_token.size();
    j["loglik_chunk"] = ll_chunk;
    j["loglik_all"] = per_token;
  }
  // VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over exec() from the forked
  // parent's memory, so a child of a large parent would report the parent's size.
  // (With --adjacent_probe: the larger of the peak before each probe and after the last.)
  j["peak_rss_bytes"] = std::max(peak_rss, ProcStatusBytes("VmHWM:"));
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
