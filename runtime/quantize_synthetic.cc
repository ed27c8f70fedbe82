#include "runtime/quantize_synthetic.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "kernels/thread_pool.h"
#include "runtime/gguf.h"
#include "runtime/quantize.h"

namespace fk {
namespace {

constexpr char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space

uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

struct SplitMix64 {
  uint64_t state;
  uint64_t Next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1].
  double Uniform() { return (static_cast<double>(Next() >> 11) + 1.0) * 0x1.0p-53; }
};

struct TensorPlan {
  std::string name;
  int64_t cols, rows;  // rows == 1 for norms (1-D)
  bool is_norm;
};

std::vector<TensorPlan> Plan(const SyntheticLlamaConfig& c) {
  const int64_t head_dim = c.hidden / c.heads;
  const int64_t kv_dim = head_dim * c.kv_heads;
  std::vector<TensorPlan> p;
  p.push_back({"token_embd.weight", c.hidden, c.vocab, false});
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string b = absl::StrCat("blk.", l, ".");
    p.push_back({b + "attn_norm.weight", c.hidden, 1, true});
    p.push_back({b + "attn_q.weight", c.hidden, c.hidden, false});
    p.push_back({b + "attn_k.weight", c.hidden, kv_dim, false});
    p.push_back({b + "attn_v.weight", c.hidden, kv_dim, false});
    p.push_back({b + "attn_output.weight", c.hidden, c.hidden, false});
    p.push_back({b + "ffn_norm.weight", c.hidden, 1, true});
    p.push_back({b + "ffn_gate.weight", c.hidden, c.ffn, false});
    p.push_back({b + "ffn_up.weight", c.hidden, c.ffn, false});
    p.push_back({b + "ffn_down.weight", c.ffn, c.hidden, false});
  }
  p.push_back({"output_norm.weight", c.hidden, 1, true});
  p.push_back({"output.weight", c.hidden, c.vocab, false});
  return p;
}

absl::Status CheckConfig(const SyntheticLlamaConfig& c) {
  if (c.hidden <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.ffn <= 0 ||
      c.hidden % c.heads != 0 || c.heads % c.kv_heads != 0 || (c.hidden / c.heads) % 2 != 0 ||
      c.vocab < 259 + 64 || c.context <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "synthetic model %s: invalid shape (hidden %d, layers %d, heads %d, kv heads %d, ffn "
        "%d, vocab %d, context %d)",
        c.name, c.hidden, c.layers, c.heads, c.kv_heads, c.ffn, c.vocab, c.context));
  }
  return absl::OkStatus();
}

}  // namespace

int64_t SyntheticParameterCount(const SyntheticLlamaConfig& c) {
  int64_t n = 0;
  for (const TensorPlan& t : Plan(c)) n += t.cols * t.rows;
  return n;
}

std::string SyntheticModelPath(const std::string& dir, const SyntheticLlamaConfig& c,
                               Format format) {
  return absl::StrCat(dir, "/", c.name, "-", kSyntheticVersion, "/", traits(format).name,
                      ".gguf");
}

std::vector<std::string> SyntheticVocabulary(int64_t vocab) {
  std::vector<std::string> v = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) v.push_back(absl::StrFormat("<0x%02X>", b));
  std::vector<std::string> pieces = {kSpace};
  for (char ch = 33; ch < 127; ++ch) pieces.push_back(std::string(1, ch));
  for (char ch = 33; ch < 127; ++ch) pieces.push_back(kSpace + std::string(1, ch));
  // Lowercase pieces of growing length: "ab" = "a" + "b", "▁abc" = "▁ab" + "c", so every
  // piece is reachable by merging two shorter ones.
  std::vector<std::string> prev;
  for (char ch = 'a'; ch <= 'z'; ++ch) prev.push_back(std::string(1, ch));
  while (static_cast<int64_t>(v.size() + pieces.size()) < vocab) {
    std::vector<std::string> next;
    for (const std::string& p : prev) {
      for (char ch = 'a'; ch <= 'z'; ++ch) next.push_back(p + ch);
    }
    for (const std::string& p : next) pieces.push_back(p);
    for (const std::string& p : next) pieces.push_back(kSpace + p);
    prev = std::move(next);
  }
  for (const std::string& p : pieces) {
    if (static_cast<int64_t>(v.size()) >= vocab) break;
    v.push_back(p);
  }
  return v;
}

void SyntheticRow(const SyntheticLlamaConfig& c, const std::string& name, int64_t row,
                  int64_t len, bool is_norm, float* out) {
  SplitMix64 rng{c.seed * 0x9E3779B97F4A7C15ull ^ Fnv1a(name) ^
                 (static_cast<uint64_t>(row) * 0xD1B54A32D192ED03ull)};
  auto gauss_pair = [&](double* a, double* b) {
    const double r = std::sqrt(-2.0 * std::log(rng.Uniform()));
    const double phi = 2.0 * M_PI * rng.Uniform();
    *a = r * std::cos(phi);
    *b = r * std::sin(phi);
  };
  double g0, g1;
  gauss_pair(&g0, &g1);
  const double row_scale = is_norm ? 1.0 : std::exp(0.25 * g0);
  for (int64_t i = 0; i < len; i += 2) {
    gauss_pair(&g0, &g1);
    const double g[2] = {g0, g1};
    for (int j = 0; j < 2 && i + j < len; ++j) {
      double v;
      if (is_norm) {
        v = 1.0 + 0.02 * g[j];
      } else {
        v = 0.02 * row_scale * g[j];
        if ((rng.Next() & 1023) == 0) v *= 6.0;  // outliers, one in 1024
      }
      out[i + j] = static_cast<float>(v);
    }
  }
}

absl::StatusOr<uint64_t> WriteSyntheticLlama(
    const SyntheticLlamaConfig& c, Format format, const std::string& path, int threads,
    const std::function<void(uint64_t, uint64_t)>& progress) {
  if (absl::Status s = CheckConfig(c); !s.ok()) return s;
  const std::vector<TensorPlan> plan = Plan(c);
  const std::vector<std::string> vocab = SyntheticVocabulary(c.vocab);

  std::vector<GgufKv> kv;
  auto add = [&](const std::string& k, GgufValue v) { kv.push_back({k, std::move(v)}); };
  add("general.architecture", GgufValue::String("llama"));
  add("general.name", GgufValue::String(absl::StrCat(c.name, "-", kSyntheticVersion)));
  add("general.description",
      GgufValue::String("Random weights of realistic scale for speed and memory measurements "
                        "(written by //runtime:make_synthetic_model); generates no sensible "
                        "text."));
  add("llama.context_length", GgufValue::Uint32(static_cast<uint32_t>(c.context)));
  add("llama.embedding_length", GgufValue::Uint32(static_cast<uint32_t>(c.hidden)));
  add("llama.block_count", GgufValue::Uint32(static_cast<uint32_t>(c.layers)));
  add("llama.feed_forward_length", GgufValue::Uint32(static_cast<uint32_t>(c.ffn)));
  add("llama.rope.dimension_count", GgufValue::Uint32(static_cast<uint32_t>(c.hidden / c.heads)));
  add("llama.attention.head_count", GgufValue::Uint32(static_cast<uint32_t>(c.heads)));
  add("llama.attention.head_count_kv", GgufValue::Uint32(static_cast<uint32_t>(c.kv_heads)));
  add("llama.attention.layer_norm_rms_epsilon",
      GgufValue::Float32(static_cast<float>(c.rms_eps)));
  add("llama.rope.freq_base", GgufValue::Float32(static_cast<float>(c.rope_base)));
  add("llama.vocab_size", GgufValue::Uint32(static_cast<uint32_t>(c.vocab)));
  const int ftype = traits(format).llama_ftype;
  if (ftype >= 0) add("general.file_type", GgufValue::Uint32(static_cast<uint32_t>(ftype)));
  add("general.quantization_version", GgufValue::Uint32(2));
  // Tokenizer: SentencePiece-style ("llama"), as TinyLlama's.
  std::vector<float> scores(vocab.size(), 0.0f);
  std::vector<int32_t> types(vocab.size(), 1);  // normal
  types[0] = 2;                                 // unknown
  types[1] = types[2] = 3;                      // control
  for (int b = 0; b < 256; ++b) types[3 + b] = 6;  // byte
  for (size_t i = 259; i < vocab.size(); ++i) scores[i] = -static_cast<float>(i - 259);
  add("tokenizer.ggml.model", GgufValue::String("llama"));
  add("tokenizer.ggml.tokens", GgufValue::StringArray(vocab));
  add("tokenizer.ggml.scores", GgufValue::Float32Array(scores));
  add("tokenizer.ggml.token_type", GgufValue::Int32Array(types));
  add("tokenizer.ggml.bos_token_id", GgufValue::Uint32(1));
  add("tokenizer.ggml.eos_token_id", GgufValue::Uint32(2));
  add("tokenizer.ggml.unknown_token_id", GgufValue::Uint32(0));
  add("tokenizer.ggml.add_bos_token", GgufValue::Bool(true));
  add("tokenizer.ggml.add_eos_token", GgufValue::Bool(false));

  std::vector<GgufStreamWriter::TensorSpec> specs;
  std::vector<Format> formats;
  uint64_t total = 0;
  for (const TensorPlan& t : plan) {
    const Format f = t.is_norm ? Format::kF32 : format_for_row_length(format, t.cols);
    formats.push_back(f);
    if (t.is_norm) {
      specs.push_back({t.name, {static_cast<uint64_t>(t.cols)}, gguf_type::kF32});
    } else {
      specs.push_back({t.name,
                       {static_cast<uint64_t>(t.cols), static_cast<uint64_t>(t.rows)},
                       traits(f).gguf_type});
    }
    total += static_cast<uint64_t>(t.cols * t.rows);
  }
  absl::StatusOr<GgufStreamWriter> writer = GgufStreamWriter::Create(path, kv, specs);
  if (!writer.ok()) return writer.status();

  ThreadPool pool(std::max(1, threads));
  std::vector<uint8_t> out;
  uint64_t done = 0;
  for (size_t ti = 0; ti < plan.size(); ++ti) {
    const TensorPlan& t = plan[ti];
    const FormatTraits& ft = traits(formats[ti]);
    const int64_t row_bytes = t.cols / ft.block_elems * ft.block_bytes;
    out.resize(static_cast<size_t>(row_bytes * t.rows));
    const int64_t rows_per_task = std::max<int64_t>(1, (int64_t{1} << 16) / t.cols);
    const int64_t rows_per_slice = rows_per_task * 64;
    for (int64_t r0 = 0; r0 < t.rows; r0 += rows_per_slice) {
      const int64_t r1 = std::min(t.rows, r0 + rows_per_slice);
      pool.ParallelFor((r1 - r0 + rows_per_task - 1) / rows_per_task, [&](int64_t task) {
        std::vector<float> buf(static_cast<size_t>(t.cols));
        const int64_t a = r0 + task * rows_per_task, b = std::min(r1, a + rows_per_task);
        for (int64_t r = a; r < b; ++r) {
          SyntheticRow(c, t.name, r, t.cols, t.is_norm, buf.data());
          ft.quantize_row(buf.data(), out.data() + r * row_bytes, t.cols);
        }
      });
      done += static_cast<uint64_t>((r1 - r0) * t.cols);
      if (progress) progress(done, total);
    }
    if (absl::Status s = writer->WriteTensor(out); !s.ok()) return s;
  }
  return writer->Finish();
}

}  // namespace fk
