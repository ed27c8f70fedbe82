#include "runtime/fuzz/tokenizer_seeds.h"

#include <cstdio>
#include <cstdlib>

#include "kernels/formats.h"
#include "runtime/model_testing.h"

namespace fk {
namespace mutation {

using T = GgufValueType;

Doc DocFromBytes(const std::string& bytes) {
  absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes.data(), bytes.size(), "seed");
  if (!f.ok()) {
    std::fprintf(stderr, "seed does not parse: %s\n", std::string(f.status().message()).c_str());
    std::abort();
  }
  Doc d;
  d.kvs = f->metadata();
  for (const GgufTensorInfo& t : f->tensors()) {
    const absl::Span<const uint8_t> data = f->TensorData(t);
    d.tensors.push_back({t.name, t.dims, t.type,
                         std::string(reinterpret_cast<const char*>(data.data()), data.size())});
  }
  return d;
}

std::string MustBytes(const Doc& d) {
  absl::StatusOr<std::string> b = d.Bytes();
  if (!b.ok()) {
    std::fprintf(stderr, "seed writer failed: %s\n", std::string(b.status().message()).c_str());
    std::abort();
  }
  return *b;
}

namespace {

std::string ByteLevel(const std::string& text) {
  std::string out;
  for (char c : text) out += Gpt2ByteChar(static_cast<uint8_t>(c));
  return out;
}

struct BpeVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges;
  int32_t Add(const std::string& text, int32_t type) {
    tokens.push_back(text);
    types.push_back(type);
    return static_cast<int32_t>(tokens.size()) - 1;
  }
};

// Byte-level BPE vocabulary: specials first, then the byte alphabet (all 256 bytes, or
// only ASCII), then left-to-right merges that build each of `words` (byte-level text).
BpeVocab MakeBpeVocab(const std::vector<std::pair<std::string, int32_t>>& specials,
                      bool full_alphabet, const std::vector<std::string>& words) {
  BpeVocab v;
  for (const auto& [text, type] : specials) v.Add(text, type);
  for (int b = 0; b < 256; ++b) {
    if (full_alphabet || b < 0x80) v.Add(Gpt2ByteChar(b), 1);
  }
  for (const std::string& word : words) {
    const std::string w = ByteLevel(word);
    // Split into byte-alphabet characters (1 or 2 bytes each).
    std::vector<std::string> chars;
    for (size_t i = 0; i < w.size();) {
      const size_t n = (static_cast<uint8_t>(w[i]) & 0x80) ? 2 : 1;
      chars.push_back(w.substr(i, n));
      i += n;
    }
    std::string prefix = chars[0];
    for (size_t i = 1; i < chars.size(); ++i) {
      const std::string merged = prefix + chars[i];
      if (std::find(v.tokens.begin(), v.tokens.end(), merged) == v.tokens.end()) {
        v.merges.push_back(prefix + " " + chars[i]);
        v.Add(merged, 1);
      }
      prefix = merged;
    }
  }
  return v;
}

void AddBpe(Doc* d, const BpeVocab& v, const std::string& pre, T type_elem) {
  d->Set("tokenizer.ggml.model", GgufValue::String("gpt2"));
  if (!pre.empty()) d->Set("tokenizer.ggml.pre", GgufValue::String(pre));
  d->Set("tokenizer.ggml.tokens", GgufValue::StringArray(v.tokens));
  if (type_elem == T::kInt32) {
    d->Set("tokenizer.ggml.token_type", GgufValue::Int32Array(v.types));
  } else {
    d->Set("tokenizer.ggml.token_type",
           GgufValue::IntArray(type_elem, std::vector<int64_t>(v.types.begin(), v.types.end())));
  }
  d->Set("tokenizer.ggml.merges", GgufValue::StringArray(v.merges));
}

}  // namespace

const char kChatMlTemplate[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char kLlama3Template[] =
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}";
const char kZephyrTemplate[] =
    "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + "
    "message['content'] + eos_token }}{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n'  + message['content'] + eos_token }}{% endif %}{% endfor %}";
const char kLlama2Template[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] "
    "+ ' ' + eos_token }}{% endif %}{% endfor %}";

namespace {

const std::vector<std::string>& Words() {
  static const auto* w = new std::vector<std::string>{
      "hello", " world", " the", "ing", " is", " test", "'s", " 2024", "\n\n", "  ", " h\xC3\xA9llo"};
  return *w;
}

// SentencePiece vocabulary: <unk>, <s>, </s>, byte tokens for `bytes`, pieces with scores.
void AddSpm(Doc* d, const std::vector<int>& bytes, bool lower_hex, bool f64_scores) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<double> scores = {0, 0, 0};
  for (int b : bytes) {
    char buf[8];
    std::snprintf(buf, sizeof buf, lower_hex ? "<0x%02x>" : "<0x%02X>", b);
    tokens.push_back(buf);
    types.push_back(6);
    scores.push_back(0);
  }
  const char* kSpace = "\xE2\x96\x81";
  std::vector<std::string> pieces = {kSpace, ",", "!", "'", ".", "?"};
  for (char c = 'a'; c <= 'z'; ++c) pieces.push_back(std::string(1, c));
  for (char c = '0'; c <= '9'; ++c) pieces.push_back(std::string(1, c));
  for (const char* word : {"he", "ll", "llo", "hello", "or", "ld", "th", "the", "in", "ing",
                           "is", "es", "st", "test"}) {
    pieces.push_back(word);
    pieces.push_back(std::string(kSpace) + word);
  }
  for (size_t i = 0; i < pieces.size(); ++i) {
    tokens.push_back(pieces[i]);
    types.push_back(1);
    // Longer pieces score higher, as in a trained model.
    scores.push_back(-10.0 + static_cast<double>(pieces[i].size()) - 0.01 * static_cast<double>(i));
  }
  tokens.push_back("<tool>");
  types.push_back(4);
  scores.push_back(0);
  tokens.push_back("<unused0>");
  types.push_back(5);
  scores.push_back(0);
  d->Set("tokenizer.ggml.model", GgufValue::String("llama"));
  d->Set("tokenizer.ggml.tokens", GgufValue::StringArray(tokens));
  d->Set("tokenizer.ggml.scores", GgufValue::FloatArray(f64_scores ? T::kFloat64 : T::kFloat32, scores));
  d->Set("tokenizer.ggml.token_type", GgufValue::Int32Array(types));
}

}  // namespace

std::vector<NamedDoc> MakeTokenizerSeeds() {
  std::vector<NamedDoc> out;
  {
    const auto add = [&](const std::string& name, Doc d) { out.push_back({name, std::move(d)}); };
    const int32_t kControl = 3, kUser = 4, kUnused = 5, kUnknown = 2, kByteType = 6;
    {  // SmolLM2-like: smollm pre-tokenizer, ChatML with a default system prompt.
      BpeVocab v = MakeBpeVocab({{"<|endoftext|>", kControl}, {"<|im_start|>", kControl},
                                 {"<|im_end|>", kControl}, {"<tool>", kUser},
                                 {"<|unused|>", kUnused}},
                                true, Words());
      Doc d;
      d.Set("general.architecture", GgufValue::String("llama"));
      AddBpe(&d, v, "smollm", T::kInt32);
      d.Set("tokenizer.ggml.bos_token_id", GgufValue::Uint32(1));
      d.Set("tokenizer.ggml.eos_token_id", GgufValue::Uint32(2));
      d.Set("tokenizer.ggml.unknown_token_id", GgufValue::Uint32(0));
      d.Set("tokenizer.ggml.padding_token_id", GgufValue::Uint32(2));
      d.Set("tokenizer.chat_template", GgufValue::String(kChatMlTemplate));
      add("bpe_smollm", std::move(d));
    }
    {  // Llama-3-like: llama-bpe (merges ignored for whole-token words, BOS by default),
       // ASCII-only alphabet (other bytes are dropped), a byte-typed and an unknown token.
      BpeVocab v = MakeBpeVocab({{"<|begin_of_text|>", kControl}, {"<|eot_id|>", kControl},
                                 {"<|start_header_id|>", kControl}, {"<|end_header_id|>", kControl},
                                 {"<unk>", kUnknown}, {"<|reserved|>", kByteType}},
                                false, {"hello", " world", " the", "ing", "'s", "12", "  "});
      Doc d;
      AddBpe(&d, v, "llama-bpe", T::kInt32);
      d.Set("tokenizer.ggml.bos_token_id", GgufValue::Int32(0));
      d.Set("tokenizer.ggml.eos_token_id", GgufValue::Uint64(1));
      d.Set("tokenizer.chat_template", GgufValue::String(kLlama3Template));
      add("bpe_llama3", std::move(d));
    }
    {  // Qwen2-like: qwen2 pre-tokenizer, ChatML without a default system prompt.
      BpeVocab v = MakeBpeVocab({{"<|endoftext|>", kControl}, {"<|im_start|>", kControl},
                                 {"<|im_end|>", kControl}, {"<tool_call>", kUser},
                                 {"<|fim_pad|>", kUser}},
                                true, Words());
      Doc d;
      AddBpe(&d, v, "qwen2", T::kInt32);
      d.Set("tokenizer.ggml.eos_token_id", GgufValue::Uint32(2));
      d.Set("tokenizer.ggml.add_bos_token", GgufValue::Bool(false));
      d.Set("tokenizer.chat_template",
            GgufValue::String("{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                              "'\\n' + message['content'] + '<|im_end|>\\n'}}{% endfor %}"));
      add("bpe_qwen2", std::move(d));
    }
    {  // No tokenizer.ggml.pre ("default", four regex passes), int8 token types, EOS added,
       // Zephyr template.
      BpeVocab v = MakeBpeVocab({{"<s>", kControl}, {"</s>", kControl}, {"<|user|>", kUser},
                                 {"<|assistant|>", kUser}},
                                false, {"hello", " world", "123", "!!!", "ing"});
      Doc d;
      AddBpe(&d, v, "", T::kInt8);
      d.Set("tokenizer.ggml.bos_token_id", GgufValue::Uint32(0));
      d.Set("tokenizer.ggml.eos_token_id", GgufValue::Uint32(1));
      d.Set("tokenizer.ggml.add_bos_token", GgufValue::Bool(true));
      d.Set("tokenizer.ggml.add_eos_token", GgufValue::Bool(true));
      d.Set("tokenizer.chat_template", GgufValue::String(kZephyrTemplate));
      add("bpe_default", std::move(d));
    }
    {  // SentencePiece, Llama-2 template, upper-case byte tokens for a subset of bytes
       // (the rest become <unk>), ids from llama.cpp's defaults.
      Doc d;
      std::vector<int> bytes;
      for (int b = 0; b < 0x20; ++b) bytes.push_back(b);
      for (int b : {0x80, 0x81, 0x82, 0x96, 0x98, 0x99, 0x9F, 0xA9, 0xB6, 0xC3, 0xE2, 0xE6, 0xF0}) {
        bytes.push_back(b);
      }
      AddSpm(&d, bytes, /*lower_hex=*/false, /*f64_scores=*/false);
      d.Set("tokenizer.chat_template", GgufValue::String(kLlama2Template));
      add("spm_llama2", std::move(d));
    }
    {  // SentencePiece without the space prefix, lower-case byte tokens, f64 scores, explicit
       // ids, EOS added, Zephyr template.
      Doc d;
      std::vector<int> bytes;
      for (int b = 0x80; b < 0x100; b += 3) bytes.push_back(b);
      AddSpm(&d, bytes, /*lower_hex=*/true, /*f64_scores=*/true);
      d.Set("tokenizer.ggml.bos_token_id", GgufValue::Uint32(1));
      d.Set("tokenizer.ggml.eos_token_id", GgufValue::Uint32(2));
      d.Set("tokenizer.ggml.unknown_token_id", GgufValue::Int32(0));
      d.Set("tokenizer.ggml.add_space_prefix", GgufValue::Bool(false));
      d.Set("tokenizer.ggml.add_eos_token", GgufValue::Bool(true));
      d.Set("tokenizer.chat_template", GgufValue::String(kZephyrTemplate));
      add("spm_noprefix", std::move(d));
    }
    {  // Tiny llama model, Q4_0, tied LM head, the byte-level vocabulary of model_testing.
      TinyLlamaSpec spec;
      spec.format = Format::kQ4_0;
      spec.n_embd = 32;
      spec.n_ff = 32;
      spec.n_head = 2;
      spec.n_head_kv = 1;
      spec.n_layer = 1;
      spec.n_ctx = 8;
      absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
      absl::StatusOr<std::string> b = w.ok() ? w->ToBytes() : w.status();
      if (!b.ok()) std::abort();
      add("model_q4_0", DocFromBytes(*b));
    }
    {  // Tiny llama model, Q4_1, no tokenizer; partial RoPE with rope_freqs.weight, linear
       // RoPE scaling, explicit key length.
      TinyLlamaSpec spec;
      spec.format = Format::kQ4_1;
      spec.n_embd = 32;
      spec.n_ff = 32;
      spec.n_head = 2;
      spec.n_head_kv = 2;
      spec.n_layer = 1;
      spec.n_ctx = 8;
      spec.tokenizer = false;
      spec.seed = 2;
      absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
      absl::StatusOr<std::string> b = w.ok() ? w->ToBytes() : w.status();
      if (!b.ok()) std::abort();
      Doc d = DocFromBytes(*b);
      d.Set("llama.attention.key_length", GgufValue::Uint32(16));
      d.Set("llama.rope.dimension_count", GgufValue::Uint32(8));
      d.Set("llama.rope.scaling.type", GgufValue::String("linear"));
      d.Set("llama.rope.scaling.factor", GgufValue::Float32(2.0f));
      const float freqs[4] = {1.0f, 1.5f, 2.0f, 4.0f};
      d.tensors.push_back({"rope_freqs.weight", {4}, gguf_type::kF32,
                           std::string(reinterpret_cast<const char*>(freqs), sizeof freqs)});
      add("model_q4_1_rope", std::move(d));
    }
    {  // Tiny gemma3 model, Q4_0, no tokenizer, 64 tokens: per-head Q/K norms, post-norms,
       // a sliding window of 2 on every other layer with its own RoPE base, logit
       // soft-capping, key length 32 with 2 heads of a 32-wide model.
      TinyLlamaSpec spec;
      spec.architecture = "gemma3";
      spec.format = Format::kQ4_0;
      spec.tokenizer = false;
      spec.n_vocab = 64;
      spec.n_embd = 32;
      spec.n_ff = 32;
      spec.n_head = 2;
      spec.n_head_kv = 1;
      spec.head_dim = 32;
      spec.n_layer = 2;
      spec.n_ctx = 8;
      spec.rms_eps = 1e-6f;
      spec.sliding_window = 2;
      spec.sliding_window_pattern = 2;
      spec.rope_freq_base = 1e6;
      spec.rope_freq_base_swa = 1e4;
      spec.final_logit_softcap = 30.0f;
      spec.seed = 3;
      absl::StatusOr<GgufWriter> w = MakeTinyLlama(spec);
      absl::StatusOr<std::string> b = w.ok() ? w->ToBytes() : w.status();
      if (!b.ok()) std::abort();
      add("model_gemma3", DocFromBytes(*b));
    }
  }
  return out;
}

}  // namespace mutation
}  // namespace fk
