#include "runtime/architecture.h"

#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"

namespace fk {
namespace {

// Upper bounds on hyperparameters: far above any real model, low enough that products
// of them cannot overflow and buffers sized from them stay sane.
constexpr uint64_t kMaxDim = uint64_t{1} << 20;
constexpr uint64_t kMaxLayers = 4096;

absl::Status Err(const GgufFile& file, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file.name(), ": ", what));
}

// A required (or, with `fallback`, optional) positive integer key in [1, max].
absl::StatusOr<int64_t> ReadCount(const GgufFile& file, const std::string& key, uint64_t max,
                                  std::optional<int64_t> fallback = std::nullopt) {
  if (fallback.has_value() && file.Find(key) == nullptr) return *fallback;
  absl::StatusOr<uint64_t> v = file.GetUint(key);
  if (!v.ok()) return v.status();
  if (*v == 0 || *v > max) {
    return Err(file, absl::StrCat(key, " = ", *v, " is out of range (1 .. ", max, ")"));
  }
  return static_cast<int64_t>(*v);
}

// A positive finite float key; `fallback` when absent (nullopt: the key is required).
absl::StatusOr<double> ReadPositiveFloat(const GgufFile& file, const std::string& key,
                                         std::optional<double> fallback) {
  if (fallback.has_value() && file.Find(key) == nullptr) return *fallback;
  absl::StatusOr<double> v = file.GetFloat(key);
  if (!v.ok()) return v.status();
  if (!(*v > 0) || !std::isfinite(*v)) {
    return Err(file, absl::StrCat(key, " = ", *v, " must be a positive finite number"));
  }
  return *v;
}

// The keys every architecture shares. Fills c (architecture already set) and returns the
// global RoPE base and scale (the caller assigns them to layers).
absl::Status ReadCommon(const GgufFile& file, std::optional<double> default_rms_eps,
                        ModelConfig* out, double* rope_base, double* rope_scale) {
  ModelConfig& c = *out;
  const auto key = [&](absl::string_view suffix) { return c.key(suffix); };
  absl::StatusOr<int64_t> v;
  if (!(v = ReadCount(file, key("embedding_length"), kMaxDim)).ok()) return v.status();
  c.n_embd = *v;
  if (!(v = ReadCount(file, key("block_count"), kMaxLayers)).ok()) return v.status();
  c.n_layer = *v;
  if (!(v = ReadCount(file, key("feed_forward_length"), kMaxDim)).ok()) return v.status();
  c.n_ff = *v;
  if (!(v = ReadCount(file, key("attention.head_count"), kMaxDim)).ok()) return v.status();
  c.n_head = *v;
  if (!(v = ReadCount(file, key("attention.head_count_kv"), kMaxDim, c.n_head)).ok()) {
    return v.status();
  }
  c.n_head_kv = *v;
  if (c.n_head % c.n_head_kv != 0) {
    return Err(file, absl::StrCat(key("attention.head_count"), " = ", c.n_head,
                                  " is not a multiple of ", key("attention.head_count_kv"),
                                  " = ", c.n_head_kv));
  }
  const bool has_key_length = file.Find(key("attention.key_length")) != nullptr;
  if (!has_key_length && c.n_embd % c.n_head != 0) {
    return Err(file, absl::StrCat(key("embedding_length"), " = ", c.n_embd,
                                  " is not a multiple of ", key("attention.head_count"), " = ",
                                  c.n_head));
  }
  if (!(v = ReadCount(file, key("attention.key_length"), kMaxDim, c.n_embd / c.n_head)).ok()) {
    return v.status();
  }
  c.head_dim = *v;
  if (!(v = ReadCount(file, key("attention.value_length"), kMaxDim, c.head_dim)).ok()) {
    return v.status();
  }
  if (*v != c.head_dim) {
    return Err(file, absl::StrCat(key("attention.value_length"), " = ", *v,
                                  " differs from the key length ", c.head_dim,
                                  " (not supported)"));
  }
  if (c.n_head * c.head_dim > static_cast<int64_t>(kMaxDim)) {
    return Err(file, absl::StrCat("head_count * key_length = ", c.n_head * c.head_dim,
                                  " is too large"));
  }
  if (!(v = ReadCount(file, key("rope.dimension_count"), kMaxDim, c.head_dim)).ok()) {
    return v.status();
  }
  c.rope_dim = *v;
  if (c.rope_dim > c.head_dim || c.rope_dim % 2 != 0) {
    return Err(file, absl::StrCat(key("rope.dimension_count"), " = ", c.rope_dim,
                                  " must be even and at most the head size ", c.head_dim));
  }
  if (!(v = ReadCount(file, key("context_length"), uint64_t{1} << 30, int64_t{0})).ok()) {
    return v.status();
  }
  c.n_ctx_train = *v;
  absl::StatusOr<double> f;
  if (!(f = ReadPositiveFloat(file, key("rope.freq_base"), 10000.0)).ok()) return f.status();
  *rope_base = *f;
  if (!(f = ReadPositiveFloat(file, key("attention.layer_norm_rms_epsilon"), default_rms_eps))
           .ok()) {
    return f.status();
  }
  c.rms_eps = static_cast<float>(*f);

  // RoPE scaling: none, or linear (positions divided by the factor).
  double linear_factor = 1.0;
  if (file.Find(key("rope.scaling.type")) != nullptr) {
    absl::StatusOr<std::string> type = file.GetString(key("rope.scaling.type"));
    if (!type.ok()) return type.status();
    if (*type == "linear") {
      if (!(f = ReadPositiveFloat(file, key("rope.scaling.factor"), 1.0)).ok()) {
        return f.status();
      }
      linear_factor = *f;
    } else if (*type != "none") {
      return Err(file, absl::StrCat("unsupported RoPE scaling '", *type, "' (",
                                    key("rope.scaling.type"), "); supported: none, linear"));
    }
  } else if (file.Find(key("rope.scale_linear")) != nullptr) {
    if (!(f = ReadPositiveFloat(file, key("rope.scale_linear"), 1.0)).ok()) return f.status();
    linear_factor = *f;
  }
  *rope_scale = 1.0 / linear_factor;
  c.attention_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
  return absl::OkStatus();
}

absl::Status ReadLlama(const GgufFile& file, ModelConfig* c) {
  double base = 0, scale = 0;
  absl::Status s = ReadCommon(file, 1e-5, c, &base, &scale);
  if (!s.ok()) return s;
  c->rope_style = RopeStyle::kNormal;
  c->activation = Activation::kSilu;
  c->rope_freq_factors = true;
  c->layers.assign(static_cast<size_t>(c->n_layer), LayerAttention{0, base, scale});
  return absl::OkStatus();
}

absl::Status ReadGemma3(const GgufFile& file, ModelConfig* c) {
  double base = 0, scale = 0;
  absl::Status s = ReadCommon(file, std::nullopt, c, &base, &scale);
  if (!s.ok()) return s;
  c->rope_style = RopeStyle::kNeox;
  c->activation = Activation::kGeluTanh;
  c->embedding_scale = std::sqrt(static_cast<float>(c->n_embd));
  c->qk_norm = true;
  c->post_norms = true;
  if (c->n_layer == 62) {  // Gemma 3 27B: query_pre_attn_scalar = n_embd / n_head
    c->attention_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(
                                                      c->n_embd / c->n_head)));
  }
  if (file.Find(c->key("final_logit_softcapping")) != nullptr) {
    absl::StatusOr<double> cap =
        ReadPositiveFloat(file, c->key("final_logit_softcapping"), std::nullopt);
    if (!cap.ok()) return cap.status();
    c->final_logit_softcap = static_cast<float>(*cap);
  }
  c->layers.assign(static_cast<size_t>(c->n_layer), LayerAttention{0, base, scale});

  // Sliding-window attention: the window, which layers, their RoPE base.
  int64_t window = 0;
  if (file.Find(c->key("attention.sliding_window")) != nullptr) {
    absl::StatusOr<uint64_t> w = file.GetUint(c->key("attention.sliding_window"));
    if (!w.ok()) return w.status();
    if (*w > (uint64_t{1} << 30)) {
      return Err(file, absl::StrCat(c->key("attention.sliding_window"), " = ", *w,
                                    " is out of range (0 .. 1073741824)"));
    }
    window = static_cast<int64_t>(*w);
  }
  if (window == 0) return absl::OkStatus();  // llama.cpp: no sliding window at all
  std::vector<bool> swa(static_cast<size_t>(c->n_layer));
  const std::string pattern_key = c->key("attention.sliding_window_pattern");
  const GgufValue* pattern = file.Find(pattern_key);
  if (pattern != nullptr && pattern->type == GgufValueType::kArray) {
    if (pattern->elem_type != GgufValueType::kBool ||
        pattern->arr_u.size() != static_cast<size_t>(c->n_layer)) {
      return Err(file, absl::StrCat(pattern_key, " must be a period or an array of ",
                                    c->n_layer, " booleans (one per layer)"));
    }
    for (size_t l = 0; l < swa.size(); ++l) swa[l] = pattern->arr_u[l] != 0;
  } else {
    absl::StatusOr<int64_t> period = ReadCount(file, pattern_key, kMaxLayers, int64_t{6});
    if (!period.ok()) return period.status();
    for (int64_t l = 0; l < c->n_layer; ++l) swa[l] = l % *period < *period - 1;
  }
  absl::StatusOr<double> swa_base =
      ReadPositiveFloat(file, c->key("rope.freq_base_swa"), 10000.0);
  if (!swa_base.ok()) return swa_base.status();
  for (int64_t l = 0; l < c->n_layer; ++l) {
    if (swa[l]) c->layers[l] = LayerAttention{window, *swa_base, 1.0};
  }
  return absl::OkStatus();
}

struct ArchitectureReader {
  const char* name;
  absl::Status (*read)(const GgufFile&, ModelConfig*);
};

constexpr ArchitectureReader kArchitectures[] = {
    {"llama", ReadLlama},
    {"gemma3", ReadGemma3},
};

}  // namespace

const char* rope_style_name(RopeStyle style) {
  return style == RopeStyle::kNormal ? "normal" : "neox";
}

const char* activation_name(Activation a) { return a == Activation::kSilu ? "silu" : "gelu_tanh"; }

std::string supported_architectures() {
  std::string out;
  for (const ArchitectureReader& a : kArchitectures) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", a.name);
  }
  return out;
}

std::string ModelConfig::key(absl::string_view suffix) const {
  return absl::StrCat(architecture, ".", suffix);
}

int64_t ModelConfig::sliding_window_layers() const {
  int64_t n = 0;
  for (const LayerAttention& l : layers) n += l.sliding_window > 0;
  return n;
}

absl::StatusOr<ModelConfig> ModelConfig::FromGguf(const GgufFile& file) {
  absl::StatusOr<std::string> arch = file.GetString("general.architecture");
  if (!arch.ok()) return arch.status();
  for (const ArchitectureReader& a : kArchitectures) {
    if (*arch != a.name) continue;
    ModelConfig c;
    c.architecture = a.name;
    absl::Status s = a.read(file, &c);
    if (!s.ok()) return s;
    return c;
  }
  return Err(file, absl::StrCat("unsupported architecture '", *arch,
                                "' (general.architecture); supported: ",
                                supported_architectures()));
}

}  // namespace fk
