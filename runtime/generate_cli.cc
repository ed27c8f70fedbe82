#include "runtime/generate_cli.h"

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "kernels/matmul.h"
#include "kernels/registry.h"
#include "kernels/thread_pool.h"
#include "runtime/gguf.h"
#include "runtime/model.h"
#include "runtime/sampler.h"
#include "runtime/tokenizer.h"
#include "runtime/user_path.h"

namespace fk {
namespace {

constexpr int kMaxThreads = 256;

struct Flags {
  std::string model;
  std::optional<std::string> prompt;
  int64_t max_tokens = 128;
  bool chat = false;
  bool ignore_eog = false;
  bool profile = false;
  bool mmap = false;
  int threads = 1;
  std::optional<Variant> variant;
  std::optional<Path> path;
  WeightMode weights = WeightMode::kNative;
  SamplerOptions sampler;
  bool help = false;
};

int DefaultThreads() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(std::min<unsigned>(n, kMaxThreads));
}

absl::Status FlagError(absl::string_view name, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, ": ", why));
}

absl::Status ParseInt(absl::string_view name, absl::string_view value, int64_t lo, int64_t hi,
                      int64_t* out) {
  int64_t v;
  if (!absl::SimpleAtoi(value, &v)) return FlagError(name, value, "not an integer");
  if (v < lo || v > hi) {
    return FlagError(name, value, absl::StrCat("must be in ", lo, " .. ", hi));
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseFloat(absl::string_view name, absl::string_view value, float* out) {
  float v;
  if (!absl::SimpleAtof(value, &v) || !std::isfinite(v)) {
    return FlagError(name, value, "not a finite number");
  }
  *out = v;
  return absl::OkStatus();
}

absl::Status ParseBool(absl::string_view name, absl::string_view value, bool* out) {
  if (value == "true" || value == "1" || value == "yes") {
    *out = true;
  } else if (value == "false" || value == "0" || value == "no") {
    *out = false;
  } else {
    return FlagError(name, value, "not a boolean (true or false)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  Flags f;
  f.threads = DefaultThreads();
  static const char* const kValueFlags[] = {"model",    "prompt",      "max_tokens", "threads",
                                            "variant",  "path",        "weights",    "temperature",
                                            "top_k",    "top_p",       "seed"};
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "-h" || arg == "--help" || arg == "-help") {
      f.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "-")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (flags look like --name=value)"));
    }
    arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
    std::string name(arg.substr(0, arg.find('=')));
    std::optional<std::string> value;
    if (arg.find('=') != absl::string_view::npos) {
      value = std::string(arg.substr(arg.find('=') + 1));
    }
    if (name == "chat" || name == "nochat" || name == "ignore_eog" || name == "profile" ||
        name == "mmap") {
      bool b = true;
      if (value) {
        absl::Status s = ParseBool(name, *value, &b);
        if (!s.ok()) return s;
      }
      if (name == "ignore_eog") {
        f.ignore_eog = b;
      } else if (name == "profile") {
        f.profile = b;
      } else if (name == "mmap") {
        f.mmap = b;
      } else {
        f.chat = name == "chat" ? b : !b;
      }
      continue;
    }
    bool known = false;
    for (const char* k : kValueFlags) known = known || name == k;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
      value = args[++i];
    }
    const std::string& v = *value;
    absl::Status s;
    int64_t n = 0;
    if (name == "model") {
      if (v.empty()) return FlagError(name, v, "empty path");
      f.model = v;
    } else if (name == "prompt") {
      f.prompt = v;
    } else if (name == "max_tokens") {
      s = ParseInt(name, v, 0, int64_t{1} << 30, &f.max_tokens);
    } else if (name == "threads") {
      s = ParseInt(name, v, 1, kMaxThreads, &n);
      f.threads = static_cast<int>(n);
    } else if (name == "variant") {
      absl::StatusOr<Variant> parsed = parse_variant(v);
      if (!parsed.ok()) return FlagError(name, v, parsed.status().message());
      f.variant = *parsed;
    } else if (name == "path") {
      absl::StatusOr<Path> parsed = parse_path(v);
      if (!parsed.ok()) return FlagError(name, v, parsed.status().message());
      f.path = *parsed;
    } else if (name == "weights") {
      absl::StatusOr<WeightMode> parsed = parse_weight_mode(v);
      if (!parsed.ok()) return FlagError(name, v, parsed.status().message());
      f.weights = *parsed;
    } else if (name == "temperature") {
      s = ParseFloat(name, v, &f.sampler.temperature);
      if (s.ok() && f.sampler.temperature < 0) s = FlagError(name, v, "must be >= 0 (0: greedy)");
    } else if (name == "top_k") {
      s = ParseInt(name, v, 0, INT32_MAX, &n);
      f.sampler.top_k = static_cast<int32_t>(n);
    } else if (name == "top_p") {
      s = ParseFloat(name, v, &f.sampler.top_p);
      if (s.ok() && !(f.sampler.top_p > 0 && f.sampler.top_p <= 1)) {
        s = FlagError(name, v, "must be in (0, 1]");
      }
    } else if (name == "seed") {
      uint64_t seed;
      if (!absl::SimpleAtoi(v, &seed)) s = FlagError(name, v, "not a non-negative integer");
      f.sampler.seed = seed;
    }
    if (!s.ok()) return s;
  }
  if (f.help) return f;
  if (f.model.empty()) {
    return absl::InvalidArgumentError("--model is required (a GGUF file; see --help)");
  }
  if (!f.prompt) return absl::InvalidArgumentError("--prompt is required (see --help)");
  if (f.weights == WeightMode::kF32 && f.path == Path::kInt8) {
    return absl::InvalidArgumentError(
        "--path=int8 needs quantized weights: --weights=f32 runs every matmul on the f32 path");
  }
  return f;
}

// ~/x -> $HOME/x; a relative path is taken from where `bazel run` was called.
std::string ResolvePath(const std::string& path) {
  if (absl::StartsWith(path, "~/")) {
    const char* home = std::getenv("HOME");
    if (home != nullptr && *home != '\0') return absl::StrCat(home, path.substr(1));
  }
  return UserPath(path);
}

// The process's own peak resident set: VmHWM from /proc/self/status. Not getrusage's
// ru_maxrss, which Linux carries over exec() from the parent (a 600 MB Python launcher
// made a 1 MB model report 613 MiB).
int64_t PeakRssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      int64_t kb = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(
                               absl::StripSuffix(line.substr(6), "kB")), &kb)) {
        return kb * 1024;
      }
    }
  }
  struct rusage usage;  // no /proc: the best fallback there is
  if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux: kilobytes
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// The whole run; any error comes back as a Status (printed once by RunGenerate).
absl::Status Generate(const Flags& flags, std::ostream& out, std::ostream& err) {
  const std::string path = ResolvePath(flags.model);
  absl::StatusOr<GgufFile> file =
      GgufFile::Open(path, flags.mmap ? GgufLoad::kMap : GgufLoad::kHugePages);
  if (!file.ok()) return file.status();
  absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromGguf(*file);
  if (!tokenizer.ok()) return tokenizer.status();
  if (flags.weights == WeightMode::kF32) {
    err << "generate: dequantizing every weight to F32 (--weights=f32)..." << std::endl;
  }
  absl::StatusOr<std::unique_ptr<Model>> model = Model::Load(*file, flags.weights);
  if (!model.ok()) return model.status();
  const ModelConfig& cfg = (*model)->config();
  if (tokenizer->vocab_size() > cfg.n_vocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": the tokenizer has ", tokenizer->vocab_size(),
        " tokens but token_embd.weight only ", cfg.n_vocab, " rows"));
  }

  std::string text = *flags.prompt;
  if (flags.chat && file->Find("tokenizer.chat_template") == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " has no chat template (tokenizer.chat_template; a base model?): leave out "
        "--chat and give the prompt as plain text"));
  }
  if (flags.chat) {
    text = tokenizer->ApplyChatTemplate({{"user", text}}, /*add_generation_prompt=*/true);
  }
  const std::vector<int32_t> prompt =
      tokenizer->Encode(text, /*add_special=*/true, /*parse_special=*/true);
  if (prompt.empty()) {
    return absl::InvalidArgumentError("the prompt is empty (it gives no tokens)");
  }
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  if (cfg.n_ctx_train > 0 && n_prompt > cfg.n_ctx_train) {
    return absl::InvalidArgumentError(absl::StrCat("the prompt has ", n_prompt,
                                                   " tokens, more than the model's context of ",
                                                   cfg.n_ctx_train));
  }
  int64_t context = n_prompt + flags.max_tokens;
  if (cfg.n_ctx_train > 0) context = std::min(context, cfg.n_ctx_train);

  ThreadPool pool(flags.threads);
  RunOptions run;
  run.variant = flags.variant;
  run.path = flags.path;
  // The CLI's default path is f32, not the dispatcher's int8: the f32 path adds no
  // activation rounding. SmolLM2-135M Q4_1's greedy answer to the plain Paris chat prompt
  // flips on that rounding (llama.cpp, which also quantizes activations, says "L'Etoile,
  // ..."). The price is speed: both stream the same weight bytes, but the f32 path's float
  // decode is slower (Intel Xeon, 2 threads: Q2_K decode 3.7x-4.0x faster on int8, Q4_0 1.7x,
  // Q8_0 1.05x; README "Activation path").
  if (!run.path) {
    const char* env = std::getenv("FK_PATH");
    if (env == nullptr || *env == '\0') {
      run.path = Path::kF32;
    } else {
      // Parsed here so that the model applies it per weight format (runtime/model.h).
      absl::StatusOr<Path> parsed = parse_path(env);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("FK_PATH: ", parsed.status().message()));
      }
      run.path = *parsed;
    }
  }
  run.pool = &pool;
  EvalProfile profile;
  if (flags.profile) run.profile = &profile;
  absl::StatusOr<std::unique_ptr<Session>> session =
      Session::Create(**model, context, run);
  if (!session.ok()) return session.status();
  absl::StatusOr<Sampler> sampler = Sampler::Create(flags.sampler, cfg.n_vocab);
  if (!sampler.ok()) return sampler.status();

  err << "generate: " << cfg.n_layer << " layers, " << (*model)->format_summary() << " ("
      << weight_mode_name(flags.weights) << " weights), kernels "
      << (*session)->kernel_summary() << ", " << flags.threads << " thread"
      << (flags.threads == 1 ? "" : "s") << ", " << n_prompt << " prompt tokens" << std::endl;
  for (const std::string& w : (*session)->kernel_warnings()) err << "generate: warning: " << w << std::endl;

  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  absl::Status s = (*session)->Eval(prompt);
  if (!s.ok()) return s;
  const double prefill_s = Seconds(Clock::now() - t0);
  const EvalProfile prefill_profile = profile;
  profile.Reset();

  int64_t generated = 0, decode_evals = 0;
  double decode_s = 0;
  while (generated < flags.max_tokens) {
    const int32_t token = sampler->Sample((*session)->logits());
    ++generated;
    if (tokenizer->IsEog(token) && !flags.ignore_eog) break;
    out << tokenizer->TokenToPiece(token) << std::flush;
    if (generated == flags.max_tokens || (*session)->n_past() >= context) break;
    const auto t = Clock::now();
    if (!(s = (*session)->Eval({&token, 1})).ok()) return s;
    decode_s += Seconds(Clock::now() - t);
    ++decode_evals;
  }
  out << std::endl;

  const size_t weight_bytes = (*model)->weight_memory_bytes();
  const int64_t rss = PeakRssBytes();
  err << absl::StrFormat(
             "stats: prompt %d tokens, prefill %.1f tok/s; decode %d tokens, %.1f tok/s; "
             "weights %d bytes (%.1f MiB, %s); peak RSS %d bytes (%.1f MiB)",
             n_prompt, prefill_s > 0 ? n_prompt / prefill_s : 0.0, decode_evals,
             decode_s > 0 ? decode_evals / decode_s : 0.0, weight_bytes,
             weight_bytes / 1048576.0, weight_mode_name(flags.weights), rss,
             rss / 1048576.0)
      << std::endl;
  if (flags.profile) {
    err << prefill_profile.Table("profile, prefill (per evaluation of the whole prompt)")
        << profile.Table("profile, decode (per token)");
  }
  return absl::OkStatus();
}

}  // namespace

std::string GenerateUsage() {
  return absl::StrCat(
      "Usage: generate --model=PATH --prompt=TEXT [flags]\n"
      "Runs a GGUF model (architecture llama or gemma3) on the fused dequantize+matmul\n"
      "kernels.\n"
      "Generated text goes to stdout; progress and a final stats line (prompt tokens,\n"
      "prefill and decode tok/s, weight memory, peak RSS) to stderr.\n\n"
      "  --model=PATH       GGUF file (relative to where `bazel run` was called; ~/ works)\n"
      "  --prompt=TEXT      the prompt\n"
      "  --chat             wrap the prompt as a user message in the model's chat template\n"
      "  --max_tokens=N     most tokens to generate (default 128; 0: prefill only)\n"
      "  --ignore_eog       do not stop at end-of-generation tokens (for timing runs)\n"
      "  --profile          after the stats line, where the time of prefill and of each\n"
      "                     decoded token went: each matmul by weight (ms, GB/s of its\n"
      "                     weights), attention, everything else\n"
      "  --threads=N        threads (default: the CPU count, here ",
      DefaultThreads(), "; 1 .. ", kMaxThreads,
      ")\n"
      "  --variant=NAME     kernel variant: ",
      variant_names(),
      " (default: $FK_VARIANT, else the best this CPU runs)\n"
      "  --path=NAME        activations: ",
      path_names(),
      " (default: $FK_PATH, else f32: no activation rounding;\n"
      "                     int8: quantized weights' activations to 8 bits, as llama.cpp\n"
      "                     does, and faster: decode 1.05x (Q8_0) to 3.8x (Q2_K) on an\n"
      "                     Intel Xeon; bf16: BF16 weights' activations to bf16; f16:\n"
      "                     F16 weights' activations to fp16 and fp16 sums; other\n"
      "                     weights stay on f32)\n"
      "  --weights=MODE     native (as in the file, default) or f32 (dequantized at load)\n"
      "  --mmap             map the file instead of reading it into 2 MB pages: starts\n"
      "                     sooner and shares the page cache, but with a model larger than\n"
      "                     the caches a decoded token took up to 25 % longer (measured on\n"
      "                     an Intel Xeon; depends on the page cache's state)\n"
      "  --temperature=T    0 (default): greedy; > 0: sample\n"
      "  --top_k=K          sample among the K most likely tokens (default 40; 0: all)\n"
      "  --top_p=P          then among the fewest whose probability reaches P (default 0.95)\n"
      "  --seed=N           random seed for sampling (default 0)\n"
      "  --help             this text\n\n"
      "Bad input (flags, files, models) prints one line and exits with code 2.\n");
}

int RunGenerate(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Flags> flags = ParseFlags(args);
  if (flags.ok() && flags->help) {
    out << GenerateUsage();
    return 0;
  }
  absl::Status s = flags.ok() ? Generate(*flags, out, err) : flags.status();
  if (!s.ok()) {
    err << "generate: " << s.message() << std::endl;
    return kExitBadInput;
  }
  return 0;
}

}  // namespace fk
