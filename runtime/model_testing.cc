#include "runtime/model_testing.h"

#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/golden_reader.h"
#include "kernels/weight_format.h"

namespace fk {

std::string Gpt2ByteChar(int b) {
  const auto printable = [](int x) {
    return (x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
  };
  uint32_t cp = static_cast<uint32_t>(b);
  if (!printable(b)) {
    cp = 0x100;
    for (int x = 0; x < b; ++x) cp += printable(x) ? 0 : 1;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

absl::StatusOr<GgufWriter> MakeTinyLlama(const TinyLlamaSpec& spec) {
  GgufWriter w;
  std::mt19937_64 rng(spec.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);

  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  if (spec.tokenizer) {
    for (int b = 0; b < 256; ++b) {
      tokens.push_back(Gpt2ByteChar(b));
      types.push_back(1);
    }
    for (const char* m : {"h e", "l l", "he ll"}) {
      merges.push_back(m);
      std::string merged = m;
      merged.erase(merged.find(' '), 1);
      tokens.push_back(merged);
      types.push_back(1);
    }
    for (const char* special : {"<|im_start|>", "<|im_end|>"}) {
      tokens.push_back(special);
      types.push_back(3);
    }
  }
  const int64_t n_vocab = spec.tokenizer ? static_cast<int64_t>(tokens.size()) : spec.n_vocab;

  w.Add("general.architecture", GgufValue::String(spec.architecture));
  w.Add("general.name", GgufValue::String("tiny random llama"));
  const std::string a = spec.architecture;
  w.Add(a + ".context_length", GgufValue::Uint32(static_cast<uint32_t>(spec.n_ctx)));
  w.Add(a + ".embedding_length", GgufValue::Uint32(static_cast<uint32_t>(spec.n_embd)));
  w.Add(a + ".block_count", GgufValue::Uint32(static_cast<uint32_t>(spec.n_layer)));
  w.Add(a + ".feed_forward_length", GgufValue::Uint32(static_cast<uint32_t>(spec.n_ff)));
  w.Add(a + ".attention.head_count", GgufValue::Uint32(static_cast<uint32_t>(spec.n_head)));
  w.Add(a + ".attention.head_count_kv",
        GgufValue::Uint32(static_cast<uint32_t>(spec.n_head_kv)));
  w.Add(a + ".rope.freq_base", GgufValue::Float32(static_cast<float>(spec.rope_freq_base)));
  if (spec.rms_eps >= 0) {
    w.Add(a + ".attention.layer_norm_rms_epsilon", GgufValue::Float32(spec.rms_eps));
  }
  if (spec.head_dim > 0) {
    w.Add(a + ".attention.key_length", GgufValue::Uint32(static_cast<uint32_t>(spec.head_dim)));
    w.Add(a + ".attention.value_length",
          GgufValue::Uint32(static_cast<uint32_t>(spec.head_dim)));
  }
  if (spec.sliding_window > 0) {
    w.Add(a + ".attention.sliding_window",
          GgufValue::Uint32(static_cast<uint32_t>(spec.sliding_window)));
  }
  if (spec.sliding_window_pattern > 0) {
    w.Add(a + ".attention.sliding_window_pattern",
          GgufValue::Uint32(static_cast<uint32_t>(spec.sliding_window_pattern)));
  }
  if (spec.rope_freq_base_swa > 0) {
    w.Add(a + ".rope.freq_base_swa", GgufValue::Float32(static_cast<float>(spec.rope_freq_base_swa)));
  }
  if (spec.final_logit_softcap > 0) {
    w.Add(a + ".final_logit_softcapping", GgufValue::Float32(spec.final_logit_softcap));
  }
  const bool gemma3 = spec.architecture == "gemma3";
  w.Add(a + ".vocab_size", GgufValue::Uint32(static_cast<uint32_t>(n_vocab)));
  if (spec.tokenizer) {
    w.Add("tokenizer.ggml.model", GgufValue::String("gpt2"));
    w.Add("tokenizer.ggml.pre", GgufValue::String("gpt-2"));
    w.Add("tokenizer.ggml.tokens", GgufValue::StringArray(tokens));
    w.Add("tokenizer.ggml.token_type", GgufValue::Int32Array(types));
    w.Add("tokenizer.ggml.merges", GgufValue::StringArray(merges));
    w.Add("tokenizer.ggml.eos_token_id", GgufValue::Uint32(static_cast<uint32_t>(n_vocab - 1)));
    w.Add("tokenizer.ggml.add_bos_token", GgufValue::Bool(false));
    if (spec.chat_template) {
      w.Add("tokenizer.chat_template",
            GgufValue::String("{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                              "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"));
    }
  }

  const auto add_matrix = [&](const std::string& name, int64_t rows, int64_t cols,
                              float stddev) -> absl::Status {
    if (name == spec.omit_tensor) return absl::OkStatus();
    if (name == spec.misshape_tensor) rows /= 2;
    std::vector<float> data(static_cast<size_t>(rows * cols));
    for (float& x : data) x = normal(rng) * stddev;
    absl::StatusOr<WeightFormat> q = WeightFormat::Quantize(data.data(), rows, cols, spec.format);
    if (!q.ok()) return q.status();
    return w.AddTensor(name, {static_cast<uint64_t>(cols), static_cast<uint64_t>(rows)},
                       traits(spec.format).gguf_type,
                       std::string(reinterpret_cast<const char*>(q->data()), q->memory_bytes()));
  };
  const auto add_norm = [&](const std::string& name, int64_t n) -> absl::Status {
    if (name == spec.omit_tensor) return absl::OkStatus();
    std::vector<float> data(static_cast<size_t>(n));
    for (float& x : data) x = 1.0f + 0.1f * normal(rng);
    return w.AddTensor(name, {static_cast<uint64_t>(n)}, gguf_type::kF32,
                       std::string(reinterpret_cast<const char*>(data.data()), n * sizeof(float)));
  };

  const int64_t e = spec.n_embd;
  const int64_t hd = spec.head_dim > 0 ? spec.head_dim : spec.n_embd / spec.n_head;
  absl::Status s =
      add_matrix("token_embd.weight", n_vocab, e, gemma3 ? 1.0f / std::sqrt(float(e)) : 1.0f);
  if (!s.ok()) return s;
  if (!(s = add_norm("output_norm.weight", e)).ok()) return s;
  if (!spec.tied && !(s = add_matrix("output.weight", n_vocab, e, 1.0f / std::sqrt(e))).ok()) {
    return s;
  }
  for (int64_t l = 0; l < spec.n_layer; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    const float se = 1.0f / std::sqrt(static_cast<float>(e));
    const float sf = 1.0f / std::sqrt(static_cast<float>(spec.n_ff));
    if (!(s = add_norm(p + "attn_norm.weight", e)).ok() ||
        !(s = add_matrix(p + "attn_q.weight", spec.n_head * hd, e, se)).ok() ||
        !(s = add_matrix(p + "attn_k.weight", spec.n_head_kv * hd, e, se)).ok() ||
        !(s = add_matrix(p + "attn_v.weight", spec.n_head_kv * hd, e, se)).ok() ||
        !(s = add_matrix(p + "attn_output.weight", e, spec.n_head * hd, se)).ok() ||
        !(s = add_norm(p + "ffn_norm.weight", e)).ok() ||
        !(s = add_matrix(p + "ffn_gate.weight", spec.n_ff, e, se)).ok() ||
        !(s = add_matrix(p + "ffn_up.weight", spec.n_ff, e, se)).ok() ||
        !(s = add_matrix(p + "ffn_down.weight", e, spec.n_ff, sf)).ok()) {
      return s;
    }
    if (gemma3 && (!(s = add_norm(p + "attn_q_norm.weight", hd)).ok() ||
                   !(s = add_norm(p + "attn_k_norm.weight", hd)).ok() ||
                   !(s = add_norm(p + "post_attention_norm.weight", e)).ok() ||
                   !(s = add_norm(p + "post_ffw_norm.weight", e)).ok())) {
      return s;
    }
  }
  return w;
}

absl::StatusOr<std::string> WriteTinyLlama(const TinyLlamaSpec& spec, absl::string_view name) {
  absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
  if (!w.ok()) return w.status();
  const std::string path = absl::StrCat(TestTempDir(), "/", name);
  absl::Status s = w->Write(path);
  if (!s.ok()) return s;
  return path;
}

std::string TestTempDir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d != nullptr && *d != '\0' ? d : "/tmp";
}

std::string GoldenPath(absl::string_view name) { return absl::StrCat(golden_dir(), "/", name); }

std::string CachedModelPath(absl::string_view file) {
  std::string cache;
  if (const char* c = std::getenv("FK_CACHE"); c != nullptr && *c != '\0') {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    cache = absl::StrCat(x, "/fused-kernels");
  } else {
    const char* home = std::getenv("HOME");
    cache = absl::StrCat(home != nullptr ? home : "", "/.cache/fused-kernels");
  }
  return absl::StrCat(cache, "/models/", file);
}

std::string SmolLm2Path() { return CachedModelPath("SmolLM2-135M-Instruct.Q4_1.gguf"); }

std::string Gemma3Path() { return CachedModelPath("gemma-3-270m-q4_k_m.gguf"); }

std::string SmolLm2PresetDir() { return CachedModelPath("llama-presets"); }

std::string SmolLm2PresetPath(absl::string_view preset) {
  return absl::StrCat(SmolLm2PresetDir(), "/SmolLM2-135M-Instruct.", preset, ".gguf");
}

}  // namespace fk
