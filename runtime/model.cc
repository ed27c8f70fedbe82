#include "runtime/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/tensor_loader.h"

namespace fk {
namespace {

// Upper bounds on hyperparameters: far above any llama model, low enough that products
// of them cannot overflow and buffers sized from them stay sane.
constexpr uint64_t kMaxDim = uint64_t{1} << 20;
constexpr uint64_t kMaxLayers = 4096;
// Largest KV cache a session allocates (bytes, both K and V).
constexpr double kMaxKvCacheBytes = 64.0 * (uint64_t{1} << 30);

absl::Status Err(const GgufFile& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file.name(), ": ", what));
}

// A required (or, with `fallback`, optional) positive integer key in [1, max].
absl::StatusOr<int64_t> ReadCount(const GgufFile& file, absl::string_view key, uint64_t max,
                                  std::optional<int64_t> fallback = std::nullopt) {
  if (fallback.has_value() && file.Find(key) == nullptr) return *fallback;
  absl::StatusOr<uint64_t> v = file.GetUint(key);
  if (!v.ok()) return v.status();
  if (*v == 0 || *v > max) {
    return Err(file, absl::StrCat(key, " = ", *v, " is out of range (1 .. ", max, ")"));
  }
  return static_cast<int64_t>(*v);
}

absl::StatusOr<double> ReadPositiveFloat(const GgufFile& file, absl::string_view key,
                                         double fallback) {
  if (file.Find(key) == nullptr) return fallback;
  absl::StatusOr<double> v = file.GetFloat(key);
  if (!v.ok()) return v.status();
  if (!(*v > 0) || !std::isfinite(*v)) {
    return Err(file, absl::StrCat(key, " = ", *v, " must be a positive finite number"));
  }
  return *v;
}

// Dot product with eight independent partial sums (lanes the compiler can keep in one
// vector register; a single running sum would be bound by add latency).
float Dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void RmsNorm(const float* x, const float* w, int64_t rows, int64_t n, float eps, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = out + r * n;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] * scale) * w[i];
  }
}

// Rotates the first rope_dim dims of each of the `heads` heads of `rows` rows in place;
// row t uses the angles in cos/sin + t * rope_dim / 2.
void Rope(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rope_dim,
          const float* cos, const float* sin) {
  const int64_t half = rope_dim / 2;
  for (int64_t t = 0; t < rows; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float x0 = v[2 * i], x1 = v[2 * i + 1];
        v[2 * i] = x0 * c[i] - x1 * s[i];
        v[2 * i + 1] = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

}  // namespace

// ---- config -------------------------------------------------------------------------------

absl::StatusOr<LlamaConfig> LlamaConfig::FromGguf(const GgufFile& file) {
  absl::StatusOr<std::string> arch = file.GetString("general.architecture");
  if (!arch.ok()) return arch.status();
  if (*arch != "llama") {
    return Err(file, absl::StrCat("unsupported architecture '", *arch,
                                  "' (general.architecture); supported: llama"));
  }
  LlamaConfig c;
  absl::StatusOr<int64_t> v;
  if (!(v = ReadCount(file, "llama.embedding_length", kMaxDim)).ok()) return v.status();
  c.n_embd = *v;
  if (!(v = ReadCount(file, "llama.block_count", kMaxLayers)).ok()) return v.status();
  c.n_layer = *v;
  if (!(v = ReadCount(file, "llama.feed_forward_length", kMaxDim)).ok()) return v.status();
  c.n_ff = *v;
  if (!(v = ReadCount(file, "llama.attention.head_count", kMaxDim)).ok()) return v.status();
  c.n_head = *v;
  if (!(v = ReadCount(file, "llama.attention.head_count_kv", kMaxDim, c.n_head)).ok()) {
    return v.status();
  }
  c.n_head_kv = *v;
  if (c.n_head % c.n_head_kv != 0) {
    return Err(file, absl::StrCat("llama.attention.head_count = ", c.n_head,
                                  " is not a multiple of llama.attention.head_count_kv = ",
                                  c.n_head_kv));
  }
  const bool has_key_length = file.Find("llama.attention.key_length") != nullptr;
  if (!has_key_length && c.n_embd % c.n_head != 0) {
    return Err(file, absl::StrCat("llama.embedding_length = ", c.n_embd,
                                  " is not a multiple of llama.attention.head_count = ",
                                  c.n_head));
  }
  if (!(v = ReadCount(file, "llama.attention.key_length", kMaxDim, c.n_embd / c.n_head))
           .ok()) {
    return v.status();
  }
  c.head_dim = *v;
  if (!(v = ReadCount(file, "llama.attention.value_length", kMaxDim, c.head_dim)).ok()) {
    return v.status();
  }
  if (*v != c.head_dim) {
    return Err(file, absl::StrCat("llama.attention.value_length = ", *v,
                                  " differs from the key length ", c.head_dim,
                                  " (not supported)"));
  }
  if (c.n_head * c.head_dim > static_cast<int64_t>(kMaxDim)) {
    return Err(file, absl::StrCat("head_count * key_length = ", c.n_head * c.head_dim,
                                  " is too large"));
  }
  if (!(v = ReadCount(file, "llama.rope.dimension_count", kMaxDim, c.head_dim)).ok()) {
    return v.status();
  }
  c.rope_dim = *v;
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    return Err(file, absl::StrCat("llama.rope.dimension_count = ", c.rope_dim,
                                  " must be even and at most the head size ", c.head_dim));
  }
  if (!(v = ReadCount(file, "llama.context_length", uint64_t{1} << 30, int64_t{0})).ok()) {
    return v.status();
  }
  c.n_ctx_train = *v;
  absl::StatusOr<double> f;
  if (!(f = ReadPositiveFloat(file, "llama.rope.freq_base", 10000.0)).ok()) return f.status();
  c.rope_freq_base = *f;
  if (!(f = ReadPositiveFloat(file, "llama.attention.layer_norm_rms_epsilon", 1e-5)).ok()) {
    return f.status();
  }
  c.rms_eps = static_cast<float>(*f);

  // RoPE scaling: none, or linear (positions divided by the factor).
  double linear_factor = 1.0;
  if (file.Find("llama.rope.scaling.type") != nullptr) {
    absl::StatusOr<std::string> type = file.GetString("llama.rope.scaling.type");
    if (!type.ok()) return type.status();
    if (*type == "linear") {
      if (!(f = ReadPositiveFloat(file, "llama.rope.scaling.factor", 1.0)).ok()) {
        return f.status();
      }
      linear_factor = *f;
    } else if (*type != "none") {
      return Err(file, absl::StrCat("unsupported RoPE scaling '", *type,
                                    "' (llama.rope.scaling.type); supported: none, linear"));
    }
  } else if (file.Find("llama.rope.scale_linear") != nullptr) {
    if (!(f = ReadPositiveFloat(file, "llama.rope.scale_linear", 1.0)).ok()) return f.status();
    linear_factor = *f;
  }
  c.rope_freq_scale = 1.0 / linear_factor;
  return c;
}

const char* weight_mode_name(WeightMode mode) {
  return mode == WeightMode::kNative ? "native" : "f32";
}

absl::StatusOr<WeightMode> parse_weight_mode(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "native") return WeightMode::kNative;
  if (lower == "f32") return WeightMode::kF32;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown weight mode '", name, "'; valid: native, f32"));
}

// ---- model --------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const GgufFile& file,
                                                             WeightMode mode) {
  absl::StatusOr<LlamaConfig> config = LlamaConfig::FromGguf(file);
  if (!config.ok()) return config.status();
  std::unique_ptr<LlamaModel> m(new LlamaModel);
  m->config_ = *config;
  m->mode_ = mode;
  LlamaConfig& c = m->config_;
  const TensorLoader loader(file);

  // A matrix from the file, converted to F32 in f32 mode.
  const auto load = [&](const std::string& name, int64_t rows, int64_t cols,
                        WeightFormat* out) -> absl::Status {
    absl::StatusOr<WeightFormat> w = loader.Load(name, rows, cols);
    if (!w.ok()) return w.status();
    if (mode == WeightMode::kF32 && w->format() != Format::kF32) {
      absl::StatusOr<WeightFormat> f32 = w->ToF32Weights();
      if (!f32.ok()) {
        return absl::Status(f32.status().code(),
                            absl::StrCat(file.name(), ": ", name, ": ", f32.status().message()));
      }
      w = std::move(f32);
    }
    *out = *std::move(w);
    return absl::OkStatus();
  };
  const auto load_vector = [&](const std::string& name, int64_t len,
                               std::vector<float>* out) -> absl::Status {
    absl::StatusOr<std::vector<float>> v = loader.LoadVector(name, len);
    if (!v.ok()) return v.status();
    *out = *std::move(v);
    return absl::OkStatus();
  };

  absl::Status s = load("token_embd.weight", -1, c.n_embd, &m->token_embd_);
  if (!s.ok()) return s;
  c.n_vocab = m->token_embd_.rows();
  if (file.Find("llama.vocab_size") != nullptr) {
    absl::StatusOr<uint64_t> vocab = file.GetUint("llama.vocab_size");
    if (!vocab.ok()) return vocab.status();
    if (*vocab != static_cast<uint64_t>(c.n_vocab)) {
      return Err(file, absl::StrCat("llama.vocab_size = ", *vocab, " but token_embd.weight has ",
                                    c.n_vocab, " rows"));
    }
  }
  if (loader.Has("output.weight")) {
    if (!(s = load("output.weight", c.n_vocab, c.n_embd, &m->lm_head_)).ok()) return s;
  } else {
    m->tied_ = true;
  }
  if (!(s = load_vector("output_norm.weight", c.n_embd, &m->output_norm_)).ok()) return s;
  if (loader.Has("rope_freqs.weight")) {
    if (!(s = load_vector("rope_freqs.weight", c.rope_dim / 2, &m->rope_freqs_)).ok()) return s;
    for (size_t i = 0; i < m->rope_freqs_.size(); ++i) {
      if (!(m->rope_freqs_[i] > 0) || !std::isfinite(m->rope_freqs_[i])) {
        return Err(file, absl::StrCat("rope_freqs.weight[", i, "] = ", m->rope_freqs_[i],
                                      " must be a positive finite number"));
      }
    }
  }

  const int64_t q_dim = c.n_head * c.head_dim;
  const int64_t kv_dim = c.n_head_kv * c.head_dim;
  // One layer at a time: llama.block_count alone (up to kMaxLayers) must not size anything
  // before the file has shown the tensors of that many layers.
  for (int64_t l = 0; l < c.n_layer; ++l) {
    LlamaLayer& layer = m->layers_.emplace_back();
    const std::string p = absl::StrCat("blk.", l, ".");
    if (!(s = load_vector(p + "attn_norm.weight", c.n_embd, &layer.attn_norm)).ok() ||
        !(s = load(p + "attn_q.weight", q_dim, c.n_embd, &layer.attn.wq)).ok() ||
        !(s = load(p + "attn_k.weight", kv_dim, c.n_embd, &layer.attn.wk)).ok() ||
        !(s = load(p + "attn_v.weight", kv_dim, c.n_embd, &layer.attn.wv)).ok() ||
        !(s = load(p + "attn_output.weight", c.n_embd, q_dim, &layer.attn.wo)).ok() ||
        !(s = load_vector(p + "ffn_norm.weight", c.n_embd, &layer.ffn_norm)).ok() ||
        !(s = load(p + "ffn_gate.weight", c.n_ff, c.n_embd, &layer.ffn.w_gate)).ok() ||
        !(s = load(p + "ffn_up.weight", c.n_ff, c.n_embd, &layer.ffn.w_up)).ok() ||
        !(s = load(p + "ffn_down.weight", c.n_embd, c.n_ff, &layer.ffn.w_down)).ok()) {
      return s;
    }
  }
  return m;
}

std::vector<std::pair<std::string, const WeightFormat*>> LlamaModel::matmul_weights() const {
  std::vector<std::pair<std::string, const WeightFormat*>> out;
  out.emplace_back("token_embd.weight", &token_embd_);
  if (!tied_) out.emplace_back("output.weight", &lm_head_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    const LlamaLayer& y = layers_[l];
    out.emplace_back(p + "attn_q.weight", &y.attn.wq);
    out.emplace_back(p + "attn_k.weight", &y.attn.wk);
    out.emplace_back(p + "attn_v.weight", &y.attn.wv);
    out.emplace_back(p + "attn_output.weight", &y.attn.wo);
    out.emplace_back(p + "ffn_gate.weight", &y.ffn.w_gate);
    out.emplace_back(p + "ffn_up.weight", &y.ffn.w_up);
    out.emplace_back(p + "ffn_down.weight", &y.ffn.w_down);
  }
  return out;
}

size_t LlamaModel::weight_memory_bytes() const {
  size_t bytes = 0;
  for (const auto& [name, w] : matmul_weights()) bytes += w->memory_bytes();
  size_t floats = output_norm_.size() + rope_freqs_.size();
  for (const LlamaLayer& y : layers_) floats += y.attn_norm.size() + y.ffn_norm.size();
  return bytes + floats * sizeof(float);
}

std::string LlamaModel::format_summary() const {
  std::map<std::string, int> counts;
  for (const auto& [name, w] : matmul_weights()) ++counts[w->format_name()];
  std::vector<std::string> parts;
  for (const auto& [format, n] : counts) parts.push_back(absl::StrCat(format, " x", n));
  return absl::StrJoin(parts, ", ");
}

// ---- session ------------------------------------------------------------------------------

LlamaSession::LlamaSession(const LlamaModel& model, int64_t max_context, int64_t max_batch,
                           const RunOptions& options)
    : model_(model),
      cfg_(model.config()),
      max_context_(max_context),
      max_batch_(max_batch),
      options_(options) {
  const LlamaConfig& c = cfg_;
  const size_t b = static_cast<size_t>(max_batch);
  const size_t q_dim = static_cast<size_t>(c.n_head * c.head_dim);
  const size_t kv_dim = static_cast<size_t>(c.n_head_kv * c.head_dim);
  x_.resize(b * c.n_embd);
  xn_.resize(b * c.n_embd);
  q_.resize(b * q_dim);
  k_.resize(b * kv_dim);
  v_.resize(b * kv_dim);
  attn_.resize(b * q_dim);
  proj_.resize(b * c.n_embd);
  gate_.resize(b * c.n_ff);
  up_.resize(b * c.n_ff);
  rope_cos_.resize(b * c.rope_dim / 2);
  rope_sin_.resize(b * c.rope_dim / 2);
  scores_.resize(static_cast<size_t>(c.n_head * max_context));
  kcache_.resize(static_cast<size_t>(c.n_layer * max_context) * kv_dim);
  vcache_.resize(kcache_.size());
  logits_.resize(static_cast<size_t>(c.n_vocab));
}

absl::StatusOr<std::unique_ptr<LlamaSession>> LlamaSession::Create(const LlamaModel& model,
                                                                   int64_t max_context,
                                                                   const RunOptions& options,
                                                                   int64_t max_batch) {
  const LlamaConfig& c = model.config();
  if (max_context < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("context size ", max_context, " must be at least 1"));
  }
  if (c.n_ctx_train > 0 && max_context > c.n_ctx_train) {
    return absl::InvalidArgumentError(absl::StrCat("context size ", max_context,
                                                   " exceeds the model's context length ",
                                                   c.n_ctx_train, " (llama.context_length)"));
  }
  if (max_batch < 1 || max_batch > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size ", max_batch, " must be in 1 .. 4096"));
  }
  const double kv_bytes = 2.0 * sizeof(float) * static_cast<double>(c.n_layer) *
                          static_cast<double>(max_context) *
                          static_cast<double>(c.n_head_kv * c.head_dim);
  if (kv_bytes > kMaxKvCacheBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "a KV cache of ", max_context, " positions would take ", kv_bytes / (1 << 30),
        " GiB; use a shorter context"));
  }
  // Every weight format must have a kernel that runs here under these options.
  for (const auto& [name, w] : model.matmul_weights()) {
    MatmulOptions o;
    o.variant = options.variant;
    o.path = !has_int8_path(w->format_traits()) ? std::optional<Path>(Path::kF32) : options.path;
    absl::StatusOr<const KernelEntry*> e = select_kernel(w->format(), o);
    if (!e.ok()) {
      return absl::Status(e.status().code(), absl::StrCat("no kernel for ", name, " (",
                                                          w->format_name(), "): ",
                                                          e.status().message()));
    }
  }
  return std::unique_ptr<LlamaSession>(
      new LlamaSession(model, max_context, std::min(max_batch, max_context), options));
}

std::string LlamaSession::kernel_summary() const {
  std::map<std::string, std::string> by_format;
  for (const auto& [name, w] : model_.matmul_weights()) {
    if (by_format.count(w->format_name())) continue;
    MatmulOptions o;
    o.variant = options_.variant;
    o.path = !has_int8_path(w->format_traits()) ? std::optional<Path>(Path::kF32) : options_.path;
    absl::StatusOr<const KernelEntry*> e = select_kernel(w->format(), o);
    by_format[w->format_name()] = e.ok() ? (*e)->name : "?";
  }
  std::vector<std::string> names;
  for (const auto& [format, kernel] : by_format) names.push_back(kernel);
  return absl::StrJoin(names, ", ");
}

absl::Status LlamaSession::Matmul(const float* in, const WeightFormat& w, int64_t m,
                                  float* out) {
  MatmulOptions o;
  o.variant = options_.variant;
  o.path = !has_int8_path(w.format_traits()) ? std::optional<Path>(Path::kF32) : options_.path;
  o.pool = options_.pool;
  return dispatch_matmul(in, w, m, w.cols(), w.rows(), out, m * w.rows(), o, &scratch_);
}

absl::Status LlamaSession::Eval(absl::Span<const int32_t> tokens) {
  if (tokens.empty()) return absl::InvalidArgumentError("Eval: no tokens");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > max_context_ - n_past_) {
    return absl::OutOfRangeError(absl::StrCat("context full: ", n_past_, " + ", n,
                                              " tokens exceed the context size ",
                                              max_context_));
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= cfg_.n_vocab) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", tokens[i], " at index ", i,
                                                     " is outside the vocabulary of ",
                                                     cfg_.n_vocab));
    }
  }
  for (int64_t at = 0; at < n; at += max_batch_) {
    absl::Status s = EvalChunk(tokens.data() + at, std::min(max_batch_, n - at));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

// Attention of head h for the n new rows (positions n_past_ .. n_past_ + n - 1), reading
// K/V of positions 0 .. pos from the cache, into attn_.
void LlamaSession::AttentionHead(int64_t layer, int64_t n, int64_t h) {
  const LlamaConfig& c = cfg_;
  const int64_t hd = c.head_dim;
  const int64_t q_dim = c.n_head * hd;
  const int64_t kv_dim = c.n_head_kv * hd;
  const int64_t g = h / (c.n_head / c.n_head_kv);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* kc = kcache_.data() + layer * max_context_ * kv_dim + g * hd;
  const float* vc = vcache_.data() + layer * max_context_ * kv_dim + g * hd;
  float* scores = scores_.data() + h * max_context_;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t pos = n_past_ + t;
    const float* q = q_.data() + t * q_dim + h * hd;
    float max_score = -INFINITY;
    for (int64_t j = 0; j <= pos; ++j) {
      scores[j] = Dot(q, kc + j * kv_dim, hd) * scale;
      max_score = std::max(max_score, scores[j]);
    }
    double sum = 0;
    for (int64_t j = 0; j <= pos; ++j) {
      scores[j] = std::exp(scores[j] - max_score);
      sum += scores[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    float* out = attn_.data() + t * q_dim + h * hd;
    std::fill(out, out + hd, 0.0f);
    for (int64_t j = 0; j <= pos; ++j) {
      const float p = scores[j] * inv;
      const float* v = vc + j * kv_dim;
      for (int64_t i = 0; i < hd; ++i) out[i] += p * v[i];
    }
  }
}

void LlamaSession::Attention(int64_t layer, int64_t n) {
  const LlamaConfig& c = cfg_;
  // Threads only pay off when there is enough work to share.
  const double work = static_cast<double>(c.n_head) * n * (n_past_ + n) * c.head_dim;
  if (options_.pool != nullptr && options_.pool->size() > 1 && work > 65536) {
    // One pointer captured: small enough for std::function to hold without allocating.
    struct Job {
      LlamaSession* self;
      int64_t layer, n;
    } job{this, layer, n};
    options_.pool->ParallelFor(c.n_head, [j = &job](int64_t h) {
      j->self->AttentionHead(j->layer, j->n, h);
    });
  } else {
    for (int64_t h = 0; h < c.n_head; ++h) AttentionHead(layer, n, h);
  }
}

absl::Status LlamaSession::EvalChunk(const int32_t* tokens, int64_t n) {
  const LlamaConfig& c = cfg_;
  const int64_t e = c.n_embd;
  const int64_t kv_dim = c.n_head_kv * c.head_dim;
  const int64_t half = c.rope_dim / 2;
  absl::Status s;

  for (int64_t t = 0; t < n; ++t) {
    if (!(s = model_.token_embd().DequantizeRow(tokens[t], x_.data() + t * e)).ok()) return s;
  }
  // Rotation angles of the n positions.
  const std::vector<float>& factors = model_.rope_freq_factors();
  for (int64_t t = 0; t < n; ++t) {
    const double pos = static_cast<double>(n_past_ + t) * c.rope_freq_scale;
    for (int64_t i = 0; i < half; ++i) {
      double theta =
          pos * std::pow(c.rope_freq_base, -2.0 * static_cast<double>(i) / c.rope_dim);
      if (!factors.empty()) theta /= factors[i];
      rope_cos_[t * half + i] = static_cast<float>(std::cos(theta));
      rope_sin_[t * half + i] = static_cast<float>(std::sin(theta));
    }
  }

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const LlamaLayer& layer = model_.layers()[l];
    RmsNorm(x_.data(), layer.attn_norm.data(), n, e, c.rms_eps, xn_.data());
    if (!(s = Matmul(xn_.data(), layer.attn.wq, n, q_.data())).ok() ||
        !(s = Matmul(xn_.data(), layer.attn.wk, n, k_.data())).ok() ||
        !(s = Matmul(xn_.data(), layer.attn.wv, n, v_.data())).ok()) {
      return s;
    }
    Rope(q_.data(), n, c.n_head, c.head_dim, c.rope_dim, rope_cos_.data(), rope_sin_.data());
    Rope(k_.data(), n, c.n_head_kv, c.head_dim, c.rope_dim, rope_cos_.data(), rope_sin_.data());
    float* kc = kcache_.data() + (l * max_context_ + n_past_) * kv_dim;
    float* vc = vcache_.data() + (l * max_context_ + n_past_) * kv_dim;
    std::memcpy(kc, k_.data(), sizeof(float) * n * kv_dim);
    std::memcpy(vc, v_.data(), sizeof(float) * n * kv_dim);
    Attention(l, n);
    if (!(s = Matmul(attn_.data(), layer.attn.wo, n, proj_.data())).ok()) return s;
    for (int64_t i = 0; i < n * e; ++i) x_[i] += proj_[i];

    RmsNorm(x_.data(), layer.ffn_norm.data(), n, e, c.rms_eps, xn_.data());
    if (!(s = Matmul(xn_.data(), layer.ffn.w_gate, n, gate_.data())).ok() ||
        !(s = Matmul(xn_.data(), layer.ffn.w_up, n, up_.data())).ok()) {
      return s;
    }
    for (int64_t i = 0; i < n * c.n_ff; ++i) {
      const float g = gate_[i];
      gate_[i] = g / (1.0f + std::exp(-g)) * up_[i];
    }
    if (!(s = Matmul(gate_.data(), layer.ffn.w_down, n, proj_.data())).ok()) return s;
    for (int64_t i = 0; i < n * e; ++i) x_[i] += proj_[i];
  }
  n_past_ += n;

  // Only the last row's logits are wanted.
  RmsNorm(x_.data() + (n - 1) * e, model_.output_norm().data(), 1, e, c.rms_eps, xn_.data());
  return Matmul(xn_.data(), model_.lm_head(), 1, logits_.data());
}

}  // namespace fk
