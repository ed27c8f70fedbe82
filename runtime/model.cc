#include "runtime/model.h"

#include <algorithm>
#include <chrono>
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

// Largest KV cache a session allocates (bytes, both K and V).
constexpr double kMaxKvCacheBytes = 64.0 * (uint64_t{1} << 30);

absl::Status Err(const GgufFile& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file.name(), ": ", what));
}

using ProfileClock = std::chrono::steady_clock;
double SecondsSince(ProfileClock::time_point t0) {
  return std::chrono::duration<double>(ProfileClock::now() - t0).count();
}

// RMSNorm of `rows` rows of n values each: out = x / sqrt(mean(x^2) + eps) * w. In place
// when out == x.
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
// row t uses the angles in cos/sin + t * rope_dim / 2. kNormal pairs (v[2i], v[2i+1]),
// kNeox pairs (v[i], v[i + rope_dim / 2]).
void Rope(float* x, int64_t rows, int64_t heads, int64_t head_dim, int64_t rope_dim,
          RopeStyle style, const float* cos, const float* sin) {
  const int64_t half = rope_dim / 2;
  const int64_t stride = style == RopeStyle::kNormal ? 2 : 1;   // between pairs
  const int64_t other = style == RopeStyle::kNormal ? 1 : half;  // within a pair
  for (int64_t t = 0; t < rows; ++t) {
    const float* c = cos + t * half;
    const float* s = sin + t * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        float* a = v + i * stride;
        float* b = a + other;
        const float x0 = *a, x1 = *b;
        *a = x0 * c[i] - x1 * s[i];
        *b = x0 * s[i] + x1 * c[i];
      }
    }
  }
}

// The gate function of the FFN's activation (kernels/activation.h).
GateKind GateKindOf(Activation act) {
  return act == Activation::kSilu ? GateKind::kSilu : GateKind::kGeluTanh;
}

// gate = act(gate) * up on columns [b, e) of m rows of n_ff (a MatmulEpilogue).
struct GatedRange {
  const GatedKernel* kernel;
  GateKind kind;
  float* gate;
  const float* up;
  int64_t m, n_ff;
  static void Run(void* ctx, int64_t b, int64_t e) {
    const GatedRange& g = *static_cast<const GatedRange*>(ctx);
    for (int64_t i = 0; i < g.m; ++i) {
      g.kernel->fn(g.kind, g.gate + i * g.n_ff + b, g.up + i * g.n_ff + b, e - b);
    }
  }
};

}  // namespace

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

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const GgufFile& file, WeightMode mode) {
  absl::StatusOr<ModelConfig> config = ModelConfig::FromGguf(file);
  if (!config.ok()) return config.status();
  std::unique_ptr<Model> m(new Model);
  m->config_ = *std::move(config);
  m->mode_ = mode;
  ModelConfig& c = m->config_;
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
  if (file.Find(c.key("vocab_size")) != nullptr) {
    absl::StatusOr<uint64_t> vocab = file.GetUint(c.key("vocab_size"));
    if (!vocab.ok()) return vocab.status();
    if (*vocab != static_cast<uint64_t>(c.n_vocab)) {
      return Err(file, absl::StrCat(c.key("vocab_size"), " = ", *vocab,
                                    " but token_embd.weight has ", c.n_vocab, " rows"));
    }
  }
  if (loader.Has("output.weight")) {
    if (!(s = load("output.weight", c.n_vocab, c.n_embd, &m->lm_head_)).ok()) return s;
  } else {
    m->tied_ = true;
  }
  if (!(s = load_vector("output_norm.weight", c.n_embd, &m->output_norm_)).ok()) return s;
  if (c.rope_freq_factors && loader.Has("rope_freqs.weight")) {
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
  // One layer at a time: <arch>.block_count alone (up to 4096) must not size anything
  // before the file has shown the tensors of that many layers.
  for (int64_t l = 0; l < c.n_layer; ++l) {
    Layer& layer = m->layers_.emplace_back();
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
    if (c.qk_norm &&
        (!(s = load_vector(p + "attn_q_norm.weight", c.head_dim, &layer.attn_q_norm)).ok() ||
         !(s = load_vector(p + "attn_k_norm.weight", c.head_dim, &layer.attn_k_norm)).ok())) {
      return s;
    }
    if (c.post_norms &&
        (!(s = load_vector(p + "post_attention_norm.weight", c.n_embd,
                           &layer.post_attention_norm)).ok() ||
         !(s = load_vector(p + "post_ffw_norm.weight", c.n_embd, &layer.post_ffw_norm)).ok())) {
      return s;
    }
  }
  return m;
}

std::vector<std::pair<std::string, const WeightFormat*>> Model::matmul_weights() const {
  std::vector<std::pair<std::string, const WeightFormat*>> out;
  out.emplace_back("token_embd.weight", &token_embd_);
  if (!tied_) out.emplace_back("output.weight", &lm_head_);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    const Layer& y = layers_[l];
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

size_t Model::weight_memory_bytes() const {
  size_t bytes = 0;
  for (const auto& [name, w] : matmul_weights()) bytes += w->memory_bytes();
  size_t floats = output_norm_.size() + rope_freqs_.size();
  for (const Layer& y : layers_) {
    floats += y.attn_norm.size() + y.ffn_norm.size() + y.attn_q_norm.size() +
              y.attn_k_norm.size() + y.post_attention_norm.size() + y.post_ffw_norm.size();
  }
  return bytes + floats * sizeof(float);
}

std::string Model::format_summary() const {
  std::map<std::string, int> counts;
  for (const auto& [name, w] : matmul_weights()) ++counts[w->format_name()];
  std::vector<std::string> parts;
  for (const auto& [format, n] : counts) parts.push_back(absl::StrCat(format, " x", n));
  return absl::StrJoin(parts, ", ");
}

// ---- session ------------------------------------------------------------------------------

Session::Session(const Model& model, int64_t max_context, int64_t max_batch,
                 const RunOptions& options, std::vector<std::optional<KernelChoice>> kernels,
                 const AttentionKernel& attention, const GatedKernel& gated)
    : model_(model),
      cfg_(model.config()),
      max_context_(max_context),
      max_batch_(max_batch),
      options_(options),
      kernels_(std::move(kernels)),
      attention_(attention),
      gated_(gated) {
  const ModelConfig& c = cfg_;
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
  for (const LayerAttention& la : c.layers) {
    size_t i = 0;
    while (i < rope_tables_.size() && !(rope_tables_[i].base == la.rope_freq_base &&
                                        rope_tables_[i].scale == la.rope_freq_scale)) {
      ++i;
    }
    if (i == rope_tables_.size()) {
      rope_tables_.push_back({la.rope_freq_base, la.rope_freq_scale,
                              std::vector<float>(b * c.rope_dim / 2),
                              std::vector<float>(b * c.rope_dim / 2)});
    }
    layer_rope_.push_back(static_cast<int>(i));
  }
  scores_.resize(static_cast<size_t>(kAttentionRowChunks * c.n_head * kAttentionScratchRows *
                                     max_context));
  kcache_.resize(static_cast<size_t>(c.n_layer * max_context) * kv_dim);
  vcache_.resize(kcache_.size());
  logits_.resize(static_cast<size_t>(c.n_vocab));
}

absl::StatusOr<std::unique_ptr<Session>> Session::Create(const Model& model,
                                                         int64_t max_context,
                                                         const RunOptions& options,
                                                         int64_t max_batch) {
  const ModelConfig& c = model.config();
  if (max_context < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("context size ", max_context, " must be at least 1"));
  }
  if (c.n_ctx_train > 0 && max_context > c.n_ctx_train) {
    return absl::InvalidArgumentError(absl::StrCat("context size ", max_context,
                                                   " exceeds the model's context length ",
                                                   c.n_ctx_train, " (", c.key("context_length"),
                                                   ")"));
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
  // Every weight format must have a kernel that runs here under these options; each is
  // resolved once, here.
  std::vector<std::optional<KernelChoice>> kernels(kNumFormats);
  for (const auto& [name, w] : model.matmul_weights()) {
    std::optional<KernelChoice>& slot = kernels[static_cast<size_t>(w->format())];
    if (slot.has_value()) continue;
    MatmulOptions o;
    o.variant = options.variant;
    // A weight format without the asked path (int8: quantized formats; bf16: BF16) takes
    // the f32 path.
    o.path = options.path;
    if (o.path && !has_path(w->format(), *o.path)) o.path = Path::kF32;
    if (!o.path && !has_int8_path(w->format_traits())) o.path = Path::kF32;
    absl::StatusOr<KernelChoice> choice = KernelChoice::Resolve(w->format(), o);
    if (!choice.ok()) {
      return absl::Status(choice.status().code(),
                          absl::StrCat("no kernel for ", name, " (", w->format_name(),
                                       "): ", choice.status().message()));
    }
    slot = *std::move(choice);
  }
  // Attention and the FFN's gating run the variant of the matmul kernels (the named one,
  // FK_VARIANT's, or the best this CPU runs: whatever Resolve chose), or the nearest lower
  // one that has such a kernel.
  Variant variant = Variant::kScalar;
  for (const std::optional<KernelChoice>& k : kernels) {
    if (k.has_value()) variant = std::max(variant, k->general().variant);
  }
  return std::unique_ptr<Session>(new Session(model, max_context, std::min(max_batch, max_context),
                                              options, std::move(kernels),
                                              select_attention(variant),
                                              select_gated(variant)));
}

std::map<std::string, const KernelChoice*> Session::choices_by_format() const {
  std::map<std::string, const KernelChoice*> by_format;
  for (const auto& [name, w] : model_.matmul_weights()) {
    const std::optional<KernelChoice>& c = kernels_[static_cast<size_t>(w->format())];
    by_format[w->format_name()] = c.has_value() ? &*c : nullptr;
  }
  return by_format;
}

std::string Session::kernel_summary() const {
  std::vector<std::string> names;
  for (const auto& [format, c] : choices_by_format()) names.push_back(c != nullptr ? c->general().name : "?");
  return absl::StrJoin(names, ", ");
}

std::vector<std::string> Session::kernel_warnings() const {
  std::vector<std::string> notes;
  for (const auto& [format, c] : choices_by_format()) {
    if (c != nullptr && !c->slow_note().empty()) notes.push_back(absl::StrCat(format, " weights: ", c->slow_note()));
  }
  return notes;
}

absl::Status Session::Matmul(EvalProfile::Part part, const float* in, const WeightFormat& w,
                             int64_t m, float* out) {
  return Matmuls(part, in, m, {{&w, out}});
}

absl::Status Session::Matmuls(EvalProfile::Part part, const float* in, int64_t m,
                              std::initializer_list<std::pair<const WeightFormat*, float*>> jobs,
                              const MatmulEpilogue* epilogue) {
  MatmulJob list[kMaxMatmulJobs];
  size_t n = 0;
  uint64_t bytes = 0;
  for (const auto& [w, out] : jobs) {
    const std::optional<KernelChoice>& c = kernels_[static_cast<size_t>(w->format())];
    if (!c.has_value()) {
      return absl::InternalError(absl::StrCat("no kernel resolved for ", w->format_name()));
    }
    list[n++] = {&*c, w, out, m * w->rows()};
    bytes += w->memory_bytes();
  }
  const auto t0 = ProfileClock::now();
  absl::Status s = dispatch_matmuls(absl::MakeConstSpan(list, n), in, m, options_.pool, &scratch_,
                                    epilogue);
  if (options_.profile != nullptr) options_.profile->Add(part, SecondsSince(t0), bytes);
  return s;
}

template <class Fn>
void Session::ForRows(int64_t n, const Fn& fn) {
  // Enough rows to be worth a synchronisation: a prompt, not a decoded token.
  constexpr int64_t kMinRowsToShare = 8;
  if (options_.pool == nullptr || options_.pool->size() == 1 || n < kMinRowsToShare) {
    fn(int64_t{0}, n);
    return;
  }
  struct Job {
    const Fn* fn;
    int64_t n, per;
  } job{&fn, n, (n + 4 * options_.pool->size() - 1) / (4 * options_.pool->size())};
  options_.pool->ParallelFor((n + job.per - 1) / job.per, [j = &job](int64_t t) {
    (*j->fn)(t * j->per, std::min(j->n, (t + 1) * j->per));
  });
}

absl::Status Session::Eval(absl::Span<const int32_t> tokens) {
  return EvalTokens(tokens, nullptr);
}

absl::Status Session::EvalAll(absl::Span<const int32_t> tokens, LogitsRowFn row) {
  return EvalTokens(tokens, &row);
}

absl::Status Session::EvalTokens(absl::Span<const int32_t> tokens, const LogitsRowFn* all_rows) {
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
  const auto t0 = ProfileClock::now();
  for (int64_t at = 0; at < n; at += max_batch_) {
    const int64_t len = std::min(max_batch_, n - at);
    const Want want = all_rows != nullptr ? Want::kAll : at + len == n ? Want::kLast : Want::kNone;
    absl::Status s = EvalChunk(tokens.data() + at, len, want);
    if (!s.ok()) return s;
    if (all_rows != nullptr) {
      for (int64_t i = 0; i < len; ++i) {
        (*all_rows)(at + i, absl::MakeConstSpan(all_logits_.data() + i * cfg_.n_vocab,
                                                static_cast<size_t>(cfg_.n_vocab)));
      }
    }
  }
  if (options_.profile != nullptr) options_.profile->AddEval(n, SecondsSince(t0));
  return absl::OkStatus();
}

// The kernel's block of rows against key / value head g of `layer` (its cache, window and
// scale, and `scores`, a task's scratch of kAttentionScratchRows x max_context floats); the
// caller sets the query rows.
fk::AttentionRows Session::KvHeadBlock(int64_t layer, int64_t g, float* scores) const {
  const ModelConfig& c = cfg_;
  const int64_t hd = c.head_dim;
  const int64_t kv_dim = c.n_head_kv * hd;
  fk::AttentionRows rows;
  rows.k = kcache_.data() + layer * max_context_ * kv_dim + g * hd;
  rows.v = vcache_.data() + layer * max_context_ * kv_dim + g * hd;
  rows.stride = kv_dim;
  rows.head_dim = hd;
  rows.scale = c.attention_scale;
  rows.window = c.layers[layer].sliding_window;
  rows.scores = scores;
  rows.scores_stride = max_context_;
  return rows;
}

// Attention of the one token in q_ for query heads [h0, h1), all of key / value head g:
// one block of rows at the token's position (pos_step 0).
void Session::AttentionHeadsOfToken(int64_t layer, int64_t g, int64_t h0, int64_t h1,
                                    float* scores) {
  const int64_t hd = cfg_.head_dim;
  fk::AttentionRows rows = KvHeadBlock(layer, g, scores);
  rows.q = q_.data() + h0 * hd;
  rows.q_stride = hd;
  rows.out = attn_.data() + h0 * hd;
  rows.out_stride = hd;
  rows.rows = h1 - h0;
  rows.hi0 = attn_pos0_;
  rows.pos_step = 0;
  attention_.rows_fn(rows);
}

// Attention of head h for rows [t0, t1) of the n rows in q_ (positions n_past_ + first ..
// where `first` is the number of rows of the chunk before them; see EvalChunk), reading K/V
// from the cache: every position up to pos, or the last sliding_window of them.
void Session::AttentionRows(int64_t layer, int64_t h, int64_t t0, int64_t t1, float* scores) {
  const ModelConfig& c = cfg_;
  const int64_t q_dim = c.n_head * c.head_dim;
  fk::AttentionRows rows =  // the kernel's block (not this member function)
      KvHeadBlock(layer, h / (c.n_head / c.n_head_kv), scores);
  rows.q = q_.data() + t0 * q_dim + h * c.head_dim;
  rows.q_stride = q_dim;
  rows.out = attn_.data() + t0 * q_dim + h * c.head_dim;
  rows.out_stride = q_dim;
  rows.rows = t1 - t0;
  rows.hi0 = attn_pos0_ + t0;
  attention_.rows_fn(rows);
}

void Session::Attention(int64_t layer, int64_t n) {
  const auto t0 = ProfileClock::now();
  AttentionHeads(layer, n);
  if (options_.profile != nullptr) {
    options_.profile->Add(EvalProfile::kAttention, SecondsSince(t0), 0);
  }
}

void Session::AttentionHeads(int64_t layer, int64_t n) {
  const ModelConfig& c = cfg_;
  // Threads only pay off when there is enough work to share.
  const int64_t span = c.layers[layer].sliding_window > 0
                           ? std::min(c.layers[layer].sliding_window, attn_pos0_ + n)
                           : attn_pos0_ + n;
  const double work = static_cast<double>(c.n_head) * n * span * c.head_dim;
  const bool serial = options_.pool == nullptr || options_.pool->size() == 1 || work <= 65536;
  // One token (decode) with 4 or more query heads per key / value head: the heads of a group
  // go through the kernel as one block of rows (pos_step 0), which shares the group's key and
  // value loads among up to kAttentionScratchRows heads; the same bits as head by head. Tasks
  // of up to that many heads, when there are enough of them for every thread.
  const int64_t group = c.n_head / c.n_head_kv;
  const int64_t per_task = std::min<int64_t>(group, kAttentionScratchRows);
  const int64_t tasks_per_group = (group + per_task - 1) / per_task;
  const int64_t group_tasks = c.n_head_kv * tasks_per_group;
  if (n == 1 && group >= kAttentionScratchRows &&
      (serial || group_tasks >= options_.pool->size())) {
    const auto run = [this, layer, group, per_task, tasks_per_group](int64_t task, float* scores) {
      const int64_t g = task / tasks_per_group;
      const int64_t h0 = g * group + (task % tasks_per_group) * per_task;
      const int64_t h1 = std::min((g + 1) * group, h0 + per_task);
      AttentionHeadsOfToken(layer, g, h0, h1, scores);
    };
    if (serial) {
      for (int64_t task = 0; task < group_tasks; ++task) run(task, scores_.data());
    } else {
      options_.pool->ParallelFor(group_tasks, [&](int64_t task) {
        run(task, scores_.data() + task * kAttentionScratchRows * max_context_);
      });
    }
    return;
  }
  if (serial) {
    for (int64_t h = 0; h < c.n_head; ++h) AttentionRows(layer, h, 0, n, scores_.data());
    return;
  }
  // Tasks of (row chunk, head): a prompt's rows split into up to kAttentionRowChunks chunks,
  // so 2 threads are not left with 5 heads against 4; the last chunk (the longest rows)
  // is handed out first. Each task has its own scores scratch. Rows are independent, so the
  // split does not change any bit.
  struct Job {
    Session* self;
    int64_t layer, n, chunks, rows;
  } job{this, layer, n, std::min<int64_t>(n, kAttentionRowChunks), 0};
  job.rows = (n + job.chunks - 1) / job.chunks;
  job.chunks = (n + job.rows - 1) / job.rows;
  options_.pool->ParallelFor(job.chunks * c.n_head, [j = &job](int64_t task) {
    const int64_t heads = j->self->cfg_.n_head;
    const int64_t chunk = j->chunks - 1 - task / heads, h = task % heads;
    const int64_t t0 = chunk * j->rows, t1 = std::min(j->n, t0 + j->rows);
    j->self->AttentionRows(j->layer, h, t0, t1,
                           j->self->scores_.data() +
                               task * kAttentionScratchRows * j->self->max_context_);
  });
}

absl::Status Session::EvalChunk(const int32_t* tokens, int64_t n, Want want) {
  const ModelConfig& c = cfg_;
  const int64_t e = c.n_embd;
  const int64_t hd = c.head_dim;
  const int64_t q_dim = c.n_head * hd;
  const int64_t kv_dim = c.n_head_kv * hd;
  const int64_t half = c.rope_dim / 2;
  absl::Status s;

  for (int64_t t = 0; t < n; ++t) {
    float* row = x_.data() + t * e;
    if (!(s = model_.token_embd().DequantizeRow(tokens[t], row)).ok()) return s;
    if (c.embedding_scale != 1.0f) {
      for (int64_t i = 0; i < e; ++i) row[i] *= c.embedding_scale;
    }
  }
  // Rotation angles of the n positions, per distinct (base, scale) of the layers.
  const std::vector<float>& factors = model_.rope_freq_factors();
  for (RopeTable& table : rope_tables_) {
    for (int64_t t = 0; t < n; ++t) {
      const double pos = static_cast<double>(n_past_ + t) * table.scale;
      for (int64_t i = 0; i < half; ++i) {
        double theta = pos * std::pow(table.base, -2.0 * static_cast<double>(i) / c.rope_dim);
        if (!factors.empty()) theta /= factors[i];
        table.cos[t * half + i] = static_cast<float>(std::cos(theta));
        table.sin[t * half + i] = static_cast<float>(std::sin(theta));
      }
    }
  }

  for (int64_t l = 0; l < c.n_layer; ++l) {
    const Layer& layer = model_.layers()[l];
    const RopeTable& rope = rope_tables_[layer_rope_[l]];
    ForRows(n, [&](int64_t t0, int64_t t1) {
      RmsNorm(x_.data() + t0 * e, layer.attn_norm.data(), t1 - t0, e, c.rms_eps,
              xn_.data() + t0 * e);
    });
    s = Matmuls(EvalProfile::kAttnQkv, xn_.data(), n,
                {{&layer.attn.wq, q_.data()}, {&layer.attn.wk, k_.data()},
                 {&layer.attn.wv, v_.data()}});
    if (!s.ok()) return s;
    // Q/K norms, RoPE and the KV-cache copy, row by row.
    ForRows(n, [&](int64_t t0, int64_t t1) {
      float* q = q_.data() + t0 * q_dim;
      float* k = k_.data() + t0 * kv_dim;
      const int64_t rows = t1 - t0;
      if (c.qk_norm) {
        RmsNorm(q, layer.attn_q_norm.data(), rows * c.n_head, hd, c.rms_eps, q);
        RmsNorm(k, layer.attn_k_norm.data(), rows * c.n_head_kv, hd, c.rms_eps, k);
      }
      const float* cs = rope.cos.data() + t0 * half;
      const float* sn = rope.sin.data() + t0 * half;
      Rope(q, rows, c.n_head, hd, c.rope_dim, c.rope_style, cs, sn);
      Rope(k, rows, c.n_head_kv, hd, c.rope_dim, c.rope_style, cs, sn);
      const int64_t at = (l * max_context_ + n_past_ + t0) * kv_dim;
      std::memcpy(kcache_.data() + at, k, sizeof(float) * rows * kv_dim);
      std::memcpy(vcache_.data() + at, v_.data() + t0 * kv_dim, sizeof(float) * rows * kv_dim);
    });

    // Only the last row's output is wanted from the last layer on: once its K and V are
    // in the cache, the other rows skip its attention, projection and FFN (all of them when
    // the chunk's logits are not wanted).
    if (l == c.n_layer - 1 && want == Want::kNone) break;
    const int64_t r0 = l == c.n_layer - 1 && want == Want::kLast ? n - 1 : 0;
    const int64_t m = n - r0;
    if (r0 > 0) std::memmove(q_.data(), q_.data() + r0 * q_dim, sizeof(float) * q_dim);
    attn_pos0_ = n_past_ + r0;
    Attention(l, m);
    float* x = x_.data() + r0 * e;
    s = Matmul(EvalProfile::kAttnOutput, attn_.data(), layer.attn.wo, m, proj_.data());
    if (!s.ok()) return s;
    // Residual add of the attention block, then the FFN norm, row by row.
    ForRows(m, [&](int64_t t0, int64_t t1) {
      float* p = proj_.data() + t0 * e;
      float* xr = x + t0 * e;
      if (c.post_norms) {
        RmsNorm(p, layer.post_attention_norm.data(), t1 - t0, e, c.rms_eps, p);
      }
      for (int64_t i = 0; i < (t1 - t0) * e; ++i) xr[i] += p[i];
      RmsNorm(xr, layer.ffn_norm.data(), t1 - t0, e, c.rms_eps, xn_.data() + t0 * e);
    });
    // gate = act(gate) * up on each finished column range, by the thread that computed it.
    GatedRange gated{&gated_, GateKindOf(c.activation), gate_.data(), up_.data(), m, c.n_ff};
    MatmulEpilogue epilogue;
    epilogue.fn = &GatedRange::Run;
    epilogue.ctx = &gated;
    s = Matmuls(EvalProfile::kFfnGateUp, xn_.data(), m,
                {{&layer.ffn.w_gate, gate_.data()}, {&layer.ffn.w_up, up_.data()}}, &epilogue);
    if (!s.ok()) return s;
    s = Matmul(EvalProfile::kFfnDown, gate_.data(), layer.ffn.w_down, m, proj_.data());
    if (!s.ok()) return s;
    ForRows(m, [&](int64_t t0, int64_t t1) {
      float* p = proj_.data() + t0 * e;
      float* xr = x + t0 * e;
      if (c.post_norms) RmsNorm(p, layer.post_ffw_norm.data(), t1 - t0, e, c.rms_eps, p);
      for (int64_t i = 0; i < (t1 - t0) * e; ++i) xr[i] += p[i];
    });
  }
  n_past_ += n;
  if (want == Want::kNone) return absl::OkStatus();

  // The final norm and the LM head for the rows whose logits are wanted: the last one
  // (into logits()) or all of them (into all_logits_, the last one then copied to logits()).
  const int64_t r0 = want == Want::kAll ? 0 : n - 1;
  float* out = logits_.data();
  if (want == Want::kAll) {
    all_logits_.resize(static_cast<size_t>(max_batch_ * c.n_vocab));
    out = all_logits_.data();
  }
  ForRows(n - r0, [&](int64_t t0, int64_t t1) {
    RmsNorm(x_.data() + (r0 + t0) * e, model_.output_norm().data(), t1 - t0, e, c.rms_eps,
            xn_.data() + t0 * e);
  });
  s = Matmul(EvalProfile::kLmHead, xn_.data(), model_.lm_head(), n - r0, out);
  if (!s.ok()) return s;
  if (c.final_logit_softcap > 0) {
    const float cap = c.final_logit_softcap;
    for (int64_t i = 0; i < (n - r0) * c.n_vocab; ++i) out[i] = cap * std::tanh(out[i] / cap);
  }
  if (want == Want::kAll) {
    std::memcpy(logits_.data(), out + (n - 1) * c.n_vocab, sizeof(float) * c.n_vocab);
  }
  return absl::OkStatus();
}

}  // namespace fk
