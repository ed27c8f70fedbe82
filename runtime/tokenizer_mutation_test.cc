// Deterministic, seeded mutation test of the tokenizer metadata parsing and the llama model
// loader (issue 7); runtime/gguf_mutation_test.cc covers the reader and TensorLoader.
//
// Seeds, written by our writer: byte-level BPE ("gpt2") vocabularies with merges, every
// token type (normal, unknown, control, user-defined, unused, byte), several
// tokenizer.ggml.pre values (smollm, llama-bpe, qwen2, default), bos/eos ids and ChatML /
// Llama-3 / Zephyr chat templates; SentencePiece ("llama") vocabularies with scores and
// <0xXX> byte tokens and a Llama-2 template; two tiny llama models from
// runtime/model_testing.h (Q4_0 with the byte-level vocabulary, tied head; Q4_1 with partial
// RoPE, linear RoPE scaling and rope_freqs.weight) and a tiny gemma3 model without a
// tokenizer (Q/K norms, post-norms, sliding window, two RoPE bases, soft-capping).
//
// Inputs: the seeds; then, per seed, every tokenizer / model key (llama.* or gemma3.*, with
// gemma3's own) replaced by each of a list
// of wrong values (absent, wrong type, empty, huge, negative); then random stacks of
// structured mutations (edits of the tokenizer arrays — duplicated, empty, invalid-UTF-8,
// special-looking and byte-token texts, token types out of range, NaN scores, malformed or
// dangling merges, lengths that disagree —, scalar keys set to extreme values of any type,
// keys removed or given another type, tensors retyped, reshaped, renamed, removed,
// corrupted or added) re-serialized with GgufWriter, and of byte-level mutations
// (runtime/fuzz/gguf_mutator.h) on top or instead.
//
// Each input that parses goes through runtime/fuzz/tokenizer_model_checks.h (tokenizer,
// encode/decode of fixed texts, chat template, model load in native and f32 weight modes,
// scalar forward steps). Nothing may crash or trip a sanitizer, and the heap in use while
// handling an input may not exceed kMemFactor (32) x its size + a constant slack + 2 x the
// longest result a call returned (the derivation is at
// WorstCaseVocabulariesStayUnderTheMemoryBound).
//
// Environment:
//   FK_MUTATIONS=N      inputs (default 50000)
//   FK_MUTATION_BPE_PERCENT=P  share of random inputs from byte-level BPE seeds (default 8)
//   FK_MUTATION_SEED=S  seed of the random mutations (default 1)
//   FK_MUTATION_ONLY=I  run only input number I (to reproduce a report)
//   FK_MUTATION_DUMP=P  with FK_MUTATION_ONLY: also write that input to file P
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/formats.h"
#include "runtime/fuzz/gguf_mutator.h"
#include "runtime/fuzz/heap_counter.h"
#include "runtime/fuzz/tokenizer_model_checks.h"
#include "runtime/fuzz/tokenizer_seeds.h"
#include "runtime/gguf.h"
#include "runtime/gguf_test_util.h"
#include "runtime/model.h"
#include "runtime/model_testing.h"
#include "runtime/tokenizer.h"

namespace fk {
namespace {

using mutation::EnvInt;
using mutation::InstallCrashReporter;
using mutation::SetCurrentInput;
using mutation::Rng;
using mutation::Seed;
using T = GgufValueType;

// Share of the random inputs made from a byte-level BPE seed. Such an input costs ~5 ms when
// its tokenizer loads: Tokenizer::Create compiles the pre-tokenizer regexes (Unicode
// classes) for each instance and RE2 builds its reverse programs on the first Encode. The
// default keeps the test near 15 s; FK_MUTATION_BPE_PERCENT=100 stresses that path alone.
constexpr int64_t kDefaultBpePercent = 8;

constexpr int64_t kMemFactor = fuzz::kMemFactor;

// ---- seeds (runtime/fuzz/tokenizer_seeds.h) with their byte layout -------------------------------

using mutation::Doc;
using mutation::MustBytes;

struct SeedSet {
  std::vector<std::string> names;
  std::vector<Doc> docs;
  std::vector<Seed> seeds;  // bytes + layout
};

const SeedSet& Seeds() {
  static const SeedSet* set = [] {
    auto* s = new SeedSet;
    for (mutation::NamedDoc& d : mutation::MakeTokenizerSeeds()) {
      s->names.push_back(d.name);
      s->seeds.push_back(mutation::MakeSeed(MustBytes(d.doc)));
      s->docs.push_back(std::move(d.doc));
    }
    return s;
  }();
  return *set;
}

// ---- structured mutations -----------------------------------------------------------------------

const char* const kTokenizerKeys[] = {
    "tokenizer.ggml.model",          "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",         "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",     "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",   "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",  "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"};
const char* const kModelKeys[] = {
    "general.architecture",          "llama.context_length",
    "llama.embedding_length",        "llama.block_count",
    "llama.feed_forward_length",     "llama.attention.head_count",
    "llama.attention.head_count_kv", "llama.attention.key_length",
    "llama.attention.value_length",  "llama.rope.dimension_count",
    "llama.rope.freq_base",          "llama.attention.layer_norm_rms_epsilon",
    "llama.rope.scaling.type",       "llama.rope.scaling.factor",
    "llama.rope.scale_linear",       "llama.vocab_size"};
// Keys only gemma3 reads (on top of kModelKeys with the gemma3. prefix).
const char* const kGemma3Keys[] = {
    "gemma3.attention.sliding_window", "gemma3.attention.sliding_window_pattern",
    "gemma3.rope.freq_base_swa", "gemma3.final_logit_softcapping"};
constexpr size_t kNumTokenizerKeys = sizeof(kTokenizerKeys) / sizeof(kTokenizerKeys[0]);

// The model keys of a document: kModelKeys under its general.architecture ("llama." keys
// renamed to "gemma3." for a gemma3 file), plus gemma3's own.
std::vector<std::string> ModelKeysOf(Doc& d) {
  const GgufValue* arch = d.Find("general.architecture");
  const std::string a = arch != nullptr && arch->type == T::kString ? arch->s : "llama";
  std::vector<std::string> out;
  for (const char* k : kModelKeys) {
    std::string key = k;
    if (a != "llama" && absl::StartsWith(key, "llama.")) key = a + key.substr(5);
    out.push_back(key);
  }
  if (a == "gemma3") out.insert(out.end(), std::begin(kGemma3Keys), std::end(kGemma3Keys));
  return out;
}

const char* const kOddTexts[] = {
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "<unk>", "<0x41>", "<0x0a>",
    "<0xZZ>", "<0x4>", "<0x100>", "\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81", " ", "\xC4\xA0",
    "[INST]", "<|eot_id|>", "<tool>", "<|user|>", "a b", "\xFF", "\xC3", "\x00", "h", "he",
    "hello", "\xC4\xA0w", "<|fim_pad|>", "<end_of_turn>"};
constexpr size_t kNumOddTexts = sizeof(kOddTexts) / sizeof(kOddTexts[0]);

const std::vector<std::string>& ChatTemplates() {
  static const auto* t = new std::vector<std::string>{
      mutation::kChatMlTemplate, mutation::kLlama3Template, mutation::kZephyrTemplate,
      mutation::kLlama2Template, "", "garbage {{",
      "<|im_start|>system\\n", "<|im_start|>system\n'<|im_end|>",
      "<|im_start|>system\\nA\\\\b\\tc<|im_end|><|im_start|>system\nsecond<|im_end|>",
      "<|user|><|assistant|>[INST]", "[INST]", std::string(600, '{'),
      std::string("<|im_start|>system\n") + std::string(300, 'x') + "<|im_end|>"};
  return *t;
}

// A random scalar value of a random type (strings and bools included).
GgufValue RandomScalar(Rng& rng, int64_t hint) {
  static const T kTypes[] = {T::kUint8, T::kInt8,  T::kUint16, T::kInt16, T::kUint32, T::kInt32,
                             T::kFloat32, T::kBool, T::kString, T::kUint64, T::kInt64, T::kFloat64};
  const T type = kTypes[rng.Below(12)];
  uint64_t u;
  switch (rng.Below(5)) {
    case 0: u = mutation::kInteresting[rng.Below(mutation::kNumInteresting)]; break;
    case 1: u = static_cast<uint64_t>(hint + static_cast<int64_t>(rng.Below(5)) - 2); break;
    case 2: u = rng.Below(8); break;
    case 3: u = rng.Below(uint64_t{1} << (4 + rng.Below(20))); break;  // the in-range values
    default: u = rng.Next(); break;
  }
  switch (type) {
    case T::kString: {
      static const char* kStrings[] = {"", "1", "gpt2", "llama", "true", "-1", "x"};
      return GgufValue::String(kStrings[rng.Below(7)]);
    }
    case T::kBool: return GgufValue::Bool(u & 1);
    case T::kFloat32:
    case T::kFloat64: {
      static const double kFloats[] = {0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, -1e30,
                                       std::numeric_limits<double>::infinity(),
                                       -std::numeric_limits<double>::infinity(),
                                       std::numeric_limits<double>::quiet_NaN(), 3.0e38, 2.0};
      const double f = rng.OneIn(2) ? kFloats[rng.Below(13)] : static_cast<double>(hint);
      return GgufValue::Scalar(type, 0, 0, f);
    }
    case T::kUint8: return GgufValue::Scalar(type, u & 0xff, 0, 0);
    case T::kUint16: return GgufValue::Scalar(type, u & 0xffff, 0, 0);
    case T::kUint32: return GgufValue::Scalar(type, u & 0xffffffffu, 0, 0);
    case T::kUint64: return GgufValue::Scalar(type, u, 0, 0);
    case T::kInt8: return GgufValue::Scalar(type, 0, static_cast<int8_t>(u), 0);
    case T::kInt16: return GgufValue::Scalar(type, 0, static_cast<int16_t>(u), 0);
    case T::kInt32: return GgufValue::Scalar(type, 0, static_cast<int32_t>(u), 0);
    default: return GgufValue::Scalar(type, 0, static_cast<int64_t>(u), 0);
  }
}

// The current integer value of a key, or 0.
int64_t IntOf(Doc& d, const std::string& key) {
  const GgufValue* v = d.Find(key);
  if (v == nullptr) return 0;
  if (v->type == T::kInt8 || v->type == T::kInt16 || v->type == T::kInt32 || v->type == T::kInt64) {
    return v->i;
  }
  return static_cast<int64_t>(v->u);
}

size_t VocabSize(Doc& d) {
  const GgufValue* v = d.Find("tokenizer.ggml.tokens");
  return v != nullptr && v->type == T::kArray && v->elem_type == T::kString ? v->arr_s.size() : 0;
}

// Another shape for a key's value: string, string array, integer / float / bool array,
// nested array, scalar.
GgufValue OtherShape(Rng& rng, size_t n) {
  switch (rng.Below(7)) {
    case 0: return GgufValue::String("gpt2");
    case 1: return GgufValue::StringArray(std::vector<std::string>(std::min<size_t>(n, 8), "a"));
    case 2: return GgufValue::IntArray(T::kInt64, std::vector<int64_t>(std::min<size_t>(n, 64), 1));
    case 3: return GgufValue::FloatArray(T::kFloat32, std::vector<double>(std::min<size_t>(n, 64), 0.5));
    case 4: return GgufValue::UintArray(T::kBool, {1, 0, 1});
    case 5: return GgufValue::ArrayOfArrays({GgufValue::StringArray({"a b"}), GgufValue::StringArray({})});
    default: return GgufValue::Uint32(static_cast<uint32_t>(n));
  }
}

template <typename V>
void EditVector(Rng& rng, std::vector<V>* v, const V& fresh) {
  switch (rng.Below(5)) {
    case 0:
      if (!v->empty()) v->erase(v->begin() + static_cast<std::ptrdiff_t>(rng.Below(v->size())));
      return;
    case 1: v->push_back(fresh); return;
    case 2: v->resize(rng.Below(v->size() + 1), fresh); return;
    case 3:
      if (!v->empty()) std::swap((*v)[rng.Below(v->size())], (*v)[rng.Below(v->size())]);
      return;
    default:
      if (!v->empty()) (*v)[rng.Below(v->size())] = fresh;
      return;
  }
}

void MutateTokens(Rng& rng, Doc& d) {
  GgufValue* v = d.Find("tokenizer.ggml.tokens");
  if (v == nullptr || v->type != T::kArray || v->elem_type != T::kString || v->arr_s.empty()) return;
  std::vector<std::string>& toks = v->arr_s;
  const size_t i = rng.Below(toks.size()), j = rng.Below(toks.size());
  switch (rng.Below(9)) {
    case 0: toks[i] = toks[j]; return;  // a duplicate
    case 1: toks[i] = ""; return;
    case 2: {  // random bytes
      std::string s(1 + rng.Below(6), '\0');
      for (char& c : s) c = static_cast<char>(rng.Next());
      toks[i] = s;
      return;
    }
    case 3: toks[i] = kOddTexts[rng.Below(kNumOddTexts)]; return;
    case 4: toks[i] = toks[i] + toks[j]; return;  // a new merge target, maybe
    case 5: toks[i] = std::string(1 + rng.Below(300), static_cast<char>('a' + rng.Below(3))); return;
    case 6: toks.push_back(kOddTexts[rng.Below(kNumOddTexts)]); return;
    default: EditVector(rng, &toks, std::string(kOddTexts[rng.Below(kNumOddTexts)])); return;
  }
}

void MutateTokenTypes(Rng& rng, Doc& d) {
  GgufValue* v = d.Find("tokenizer.ggml.token_type");
  const size_t n = VocabSize(d);
  std::vector<int64_t> types;
  if (v != nullptr && v->type == T::kArray) {
    if (!v->arr_i.empty()) types = v->arr_i;
    for (uint64_t u : v->arr_u) types.push_back(static_cast<int64_t>(u));
  }
  if (types.empty()) types.assign(n, 1);
  static const int64_t kTypes[] = {-1, 0, 1, 2, 3, 4, 5, 6, 7, 100, INT32_MIN, INT32_MAX};
  const int64_t t = kTypes[rng.Below(12)];
  switch (rng.Below(4)) {
    case 0: types.assign(types.size(), rng.OneIn(2) ? 3 : 6); break;  // all control / byte
    case 1: EditVector(rng, &types, t); break;
    default:
      for (int k = 0, m = 1 + static_cast<int>(rng.Below(4)); k < m && !types.empty(); ++k) {
        types[rng.Below(types.size())] = kTypes[rng.Below(12)];
      }
      break;
  }
  // Keep the element type when the values fit it, else int32 / int64.
  T elem = v != nullptr && v->type == T::kArray ? v->elem_type : T::kInt32;
  const auto fits = [&](int64_t lo, int64_t hi) {
    for (int64_t x : types) {
      if (x < lo || x > hi) return false;
    }
    return true;
  };
  if (elem == T::kInt8 && !fits(-128, 127)) elem = T::kInt32;
  if (elem != T::kInt8 && elem != T::kInt32 && elem != T::kInt64) elem = T::kInt32;
  if (elem == T::kInt32 && !fits(INT32_MIN, INT32_MAX)) elem = T::kInt64;
  d.Set("tokenizer.ggml.token_type", GgufValue::IntArray(elem, types));
}

void MutateScores(Rng& rng, Doc& d) {
  GgufValue* v = d.Find("tokenizer.ggml.scores");
  std::vector<double> scores;
  if (v != nullptr && v->type == T::kArray) scores = v->arr_f;
  if (scores.empty()) scores.assign(VocabSize(d), -1.0);
  static const double kScores[] = {std::numeric_limits<double>::quiet_NaN(),
                                   std::numeric_limits<double>::infinity(),
                                   -std::numeric_limits<double>::infinity(), 1e30, -1e30, 0.0, -0.0,
                                   100.0};
  const double s = kScores[rng.Below(8)];
  if (rng.OneIn(3)) {
    EditVector(rng, &scores, s);
  } else if (!scores.empty()) {
    for (int k = 0, m = 1 + static_cast<int>(rng.Below(8)); k < m; ++k) {
      scores[rng.Below(scores.size())] = rng.OneIn(2) ? s : scores[rng.Below(scores.size())];
    }
  }
  d.Set("tokenizer.ggml.scores", GgufValue::FloatArray(T::kFloat32, scores));
}

void MutateMerges(Rng& rng, Doc& d) {
  GgufValue* v = d.Find("tokenizer.ggml.merges");
  if (v == nullptr || v->type != T::kArray || v->elem_type != T::kString) {
    v = nullptr;
  }
  std::vector<std::string> merges = v != nullptr ? v->arr_s : std::vector<std::string>{};
  const GgufValue* tv = d.Find("tokenizer.ggml.tokens");
  const std::vector<std::string>* toks =
      tv != nullptr && tv->type == T::kArray && !tv->arr_s.empty() ? &tv->arr_s : nullptr;
  std::string m;
  switch (rng.Below(8)) {
    case 0: {
      static const char* kBad[] = {"", "a", " a", "a ", "a  b", " ", "  ", "h\xFF e", "zz qq"};
      m = kBad[rng.Below(9)];
      break;
    }
    case 1:
    case 2:  // two random tokens: their concatenation may or may not be a token
      if (toks != nullptr) m = (*toks)[rng.Below(toks->size())] + " " + (*toks)[rng.Below(toks->size())];
      break;
    case 3:  // split a token: a valid merge if both halves are tokens
      if (toks != nullptr) {
        const std::string& t = (*toks)[rng.Below(toks->size())];
        const size_t at = t.empty() ? 0 : 1 + rng.Below(t.size());
        m = t.substr(0, at) + " " + t.substr(at);
      }
      break;
    case 4: std::reverse(merges.begin(), merges.end()); break;
    case 5: merges.clear(); break;
    default:
      if (!merges.empty()) m = merges[rng.Below(merges.size())];  // a repeat
      break;
  }
  if (!m.empty() || rng.OneIn(4)) EditVector(rng, &merges, m);
  d.Set("tokenizer.ggml.merges", GgufValue::StringArray(merges));
}

// Fresh bytes for a tensor of `type` and `dims` (quantized from deterministic floats), or
// false when the shape does not fit the type or is too large.
bool TensorBytes(uint32_t type, const std::vector<uint64_t>& dims, uint64_t seed, std::string* out) {
  absl::StatusOr<uint64_t> n = gguf_tensor_bytes(type, dims);
  if (!n.ok() || *n > (64u << 10)) return false;
  uint64_t elems = 1;
  for (uint64_t x : dims) elems *= x;
  const std::vector<float> x = testing_util::TestFloats(static_cast<size_t>(elems), seed);
  out->assign(static_cast<size_t>(*n), '\0');
  if (type == gguf_type::kF16 || type == gguf_type::kBF16) {
    for (uint64_t i = 0; i < elems; ++i) {
      const uint16_t h = type == gguf_type::kF16 ? fp32_to_fp16(x[i]) : fp32_to_bf16(x[i]);
      std::memcpy(&(*out)[2 * i], &h, 2);
    }
    return true;
  }
  const FormatTraits* f = find_format_by_gguf_type(type);
  if (f == nullptr) return true;  // an unsupported type: zeros
  const uint64_t k = dims[0];
  const uint64_t row_bytes = k / static_cast<uint64_t>(f->block_elems) * static_cast<uint64_t>(f->block_bytes);
  for (uint64_t r = 0; r < elems / k; ++r) {
    f->quantize_row(x.data() + r * k, &(*out)[r * row_bytes], static_cast<int64_t>(k));
  }
  return true;
}

void MutateTensors(Rng& rng, Doc& d) {
  if (d.tensors.empty()) return;
  Doc::Tensor& t = d.tensors[rng.Below(d.tensors.size())];
  static const uint32_t kTypes[] = {gguf_type::kF32,  gguf_type::kF16,  gguf_type::kBF16,
                                    gguf_type::kQ4_0, gguf_type::kQ4_1, gguf_type::kQ5_0,
                                    gguf_type::kQ8_0, gguf_type::kQ4_K, gguf_type::kQ6_K,
                                    4 /* Q4_2, removed from ggml: unsupported */};
  static const char* kNames[] = {"token_embd.weight", "output.weight", "output_norm.weight",
                                 "blk.0.attn_q.weight", "blk.0.ffn_down.weight",
                                 "blk.1.attn_norm.weight", "rope_freqs.weight", "blk.0.attn_k.weight"};
  switch (rng.Below(8)) {
    case 0: d.tensors.erase(d.tensors.begin() + static_cast<std::ptrdiff_t>(&t - d.tensors.data())); return;
    case 1: {  // another name (a duplicate name makes the writer refuse: then bytes mutate)
      t.name = kNames[rng.Below(8)];
      return;
    }
    case 2: {  // another type, same shape
      const uint32_t type = kTypes[rng.Below(10)];
      std::string bytes;
      if (TensorBytes(type, t.dims, rng.Next(), &bytes)) {
        t.type = type;
        t.bytes = std::move(bytes);
      }
      return;
    }
    case 3: {  // another shape
      std::vector<uint64_t> dims = t.dims;
      switch (rng.Below(5)) {
        case 0: if (dims.size() >= 2) std::swap(dims[0], dims[1]); break;
        case 1: if (dims.size() >= 2) dims[1] = dims[1] + rng.Below(3) - 1; else dims.push_back(2); break;
        case 2: dims.push_back(1); break;
        case 3: if (dims.size() >= 2) { dims[0] *= dims[1]; dims.pop_back(); } break;
        default: dims[0] = dims[0] * 2; break;
      }
      std::string bytes;
      if (!dims.empty() && dims[0] > 0 && TensorBytes(t.type, dims, rng.Next(), &bytes)) {
        t.dims = dims;
        t.bytes = std::move(bytes);
      }
      return;
    }
    case 4: {  // corrupt a few bytes: fp16 scales to inf / NaN, or random bytes
      for (int k = 0; k < 4 && !t.bytes.empty(); ++k) {
        const size_t at = rng.Below(t.bytes.size());
        const uint16_t special[] = {0x7C00, 0x7E00, 0xFC00, 0xFFFF};
        const uint16_t h = special[rng.Below(4)];
        if (at + 2 <= t.bytes.size() && rng.OneIn(2)) {
          std::memcpy(&t.bytes[at], &h, 2);
        } else {
          t.bytes[at] = static_cast<char>(rng.Next());
        }
      }
      return;
    }
    case 5: {  // rope_freqs.weight of some length, with odd values
      const uint64_t n = 1 + rng.Below(16);
      std::vector<float> f(n, 1.0f);
      const float odd[] = {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN(),
                           std::numeric_limits<float>::infinity(), 1e-30f};
      f[rng.Below(n)] = rng.OneIn(2) ? odd[rng.Below(5)] : 2.0f;
      d.tensors.erase(std::remove_if(d.tensors.begin(), d.tensors.end(),
                                     [](const Doc::Tensor& x) { return x.name == "rope_freqs.weight"; }),
                      d.tensors.end());
      d.tensors.push_back({"rope_freqs.weight", {n}, gguf_type::kF32,
                           std::string(reinterpret_cast<const char*>(f.data()), n * 4)});
      return;
    }
    case 6: {  // untie: output.weight as a copy of token_embd (or of another tensor)
      const Doc::Tensor src = d.tensors[rng.Below(d.tensors.size())];
      d.tensors.erase(std::remove_if(d.tensors.begin(), d.tensors.end(),
                                     [](const Doc::Tensor& x) { return x.name == "output.weight"; }),
                      d.tensors.end());
      d.tensors.push_back({"output.weight", src.dims, src.type, src.bytes});
      return;
    }
    default: {  // a tensor for a layer that does not exist (or does)
      Doc::Tensor copy = t;
      copy.name = absl::StrCat("blk.", rng.Below(3), ".", rng.OneIn(2) ? "ffn_up" : "attn_v", ".weight");
      d.tensors.erase(std::remove_if(d.tensors.begin(), d.tensors.end(),
                                     [&](const Doc::Tensor& x) { return x.name == copy.name; }),
                      d.tensors.end());
      d.tensors.push_back(std::move(copy));
      return;
    }
  }
}

void MutateStructured(Rng& rng, Doc& d) {
  switch (rng.Below(12)) {
    case 0:
    case 1: {  // a scalar key set to an extreme value of a random type
      const bool tok = rng.OneIn(2);
      const std::vector<std::string> model_keys = ModelKeysOf(d);
      const std::string key = tok ? kTokenizerKeys[6 + rng.Below(8)]   // ids, bools, template
                                  : model_keys[1 + rng.Below(model_keys.size() - 1)];
      int64_t hint = IntOf(d, key);
      if (tok && rng.OneIn(2)) hint = static_cast<int64_t>(VocabSize(d));
      d.Set(key, RandomScalar(rng, hint));
      return;
    }
    case 2: {  // a string key set to another value
      switch (rng.Below(4)) {
        case 0: {
          static const char* kModels[] = {"gpt2", "llama", "bert", "", "GPT2", "t5"};
          d.Set("tokenizer.ggml.model", GgufValue::String(kModels[rng.Below(6)]));
          return;
        }
        case 1: {
          static const char* kPres[] = {"default", "gpt-2", "llama3", "llama-bpe", "dbrx",
                                        "qwen2", "smollm", "starcoder", "stablelm2", "",
                                        "unknown-pre", "smollm\n"};
          d.Set("tokenizer.ggml.pre", GgufValue::String(kPres[rng.Below(12)]));
          return;
        }
        case 2:
          d.Set("tokenizer.chat_template",
                GgufValue::String(ChatTemplates()[rng.Below(ChatTemplates().size())]));
          return;
        default: {
          static const char* kArch[] = {"llama", "mistral", "", "LLAMA"};
          static const char* kScaling[] = {"linear", "none", "yarn", ""};
          if (rng.OneIn(2)) {
            d.Set("general.architecture", GgufValue::String(kArch[rng.Below(4)]));
          } else {
            d.Set("llama.rope.scaling.type", GgufValue::String(kScaling[rng.Below(4)]));
          }
          return;
        }
      }
    }
    case 3:  // a key removed
      if (!d.kvs.empty()) d.kvs.erase(d.kvs.begin() + static_cast<std::ptrdiff_t>(rng.Below(d.kvs.size())));
      return;
    case 4: MutateTokens(rng, d); return;
    case 5: MutateTokenTypes(rng, d); return;
    case 6: MutateScores(rng, d); return;
    case 7: MutateMerges(rng, d); return;
    case 8: {  // a tokenizer key with a value of another shape
      d.Set(kTokenizerKeys[rng.Below(kNumTokenizerKeys)], OtherShape(rng, VocabSize(d)));
      return;
    }
    default: MutateTensors(rng, d); return;
  }
}

// The systematic pass: every tokenizer / llama key of every seed replaced by each of these.
constexpr int kNumReplacements = 11;
void ApplyReplacement(int r, const std::string& key, Doc& d) {
  const int64_t n = static_cast<int64_t>(VocabSize(d));
  switch (r) {
    case 0: d.Remove(key); return;
    case 1: d.Set(key, GgufValue::Scalar(T::kUint8, 0, 0, 0)); return;
    case 2: d.Set(key, GgufValue::Int32(-1)); return;
    case 3: d.Set(key, GgufValue::Scalar(T::kInt64, 0, std::numeric_limits<int64_t>::min(), 0)); return;
    case 4: d.Set(key, GgufValue::Uint64(std::numeric_limits<uint64_t>::max())); return;
    case 5: d.Set(key, GgufValue::Uint32(static_cast<uint32_t>(n))); return;
    case 6: d.Set(key, GgufValue::String("")); return;
    case 7: d.Set(key, GgufValue::StringArray({})); return;
    case 8: d.Set(key, GgufValue::Float32(std::numeric_limits<float>::quiet_NaN())); return;
    case 9: d.Set(key, GgufValue::Bool(true)); return;
    default: d.Set(key, GgufValue::ArrayOfArrays({GgufValue::Int32Array({1})})); return;
  }
}

class InputSource {
 public:
  InputSource(const SeedSet& set, uint64_t seed, int64_t bpe_percent)
      : set_(set), seed_(seed), bpe_percent_(static_cast<uint64_t>(bpe_percent)) {
    for (size_t s = 0; s < set_.docs.size(); ++s) {
      bool bpe = false;
      for (const GgufKv& kv : set_.docs[s].kvs) {
        bpe |= kv.key == "tokenizer.ggml.model" && kv.value.s == "gpt2";
      }
      (bpe ? bpe_seeds_ : other_seeds_).push_back(s);
      for (const char* k : kTokenizerKeys) keys_.push_back({s, k});
      if (!set_.docs[s].tensors.empty()) {
        Doc d = set_.docs[s];
        for (const std::string& k : ModelKeysOf(d)) keys_.push_back({s, k});
      }
    }
  }
  int64_t systematic() const {
    return static_cast<int64_t>(set_.seeds.size() + keys_.size() * kNumReplacements);
  }

  // Input number `index` (deterministic in index and seed). *structured: whether it was
  // made by structured mutations.
  std::string Make(int64_t index, bool* structured) const {
    *structured = false;
    int64_t i = index;
    if (i < static_cast<int64_t>(set_.seeds.size())) return set_.seeds[i].bytes;
    i -= static_cast<int64_t>(set_.seeds.size());
    if (i < static_cast<int64_t>(keys_.size() * kNumReplacements)) {
      const auto& [s, key] = keys_[i / kNumReplacements];
      Doc d = set_.docs[s];
      ApplyReplacement(static_cast<int>(i % kNumReplacements), key, d);
      absl::StatusOr<std::string> b = d.Bytes();
      *structured = true;
      return b.ok() ? *b : set_.seeds[s].bytes;
    }
    Rng rng{seed_ * 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(index)};
    const std::vector<size_t>& from = rng.Below(100) < bpe_percent_ ? bpe_seeds_ : other_seeds_;
    const size_t s = from[rng.Below(from.size())];
    const Seed& seed = set_.seeds[s];
    std::string b;
    int byte_mutations;
    if (rng.Below(100) < 55) {
      Doc d = set_.docs[s];
      const int stack = 1 + static_cast<int>(rng.Below(rng.OneIn(4) ? 4 : 2));
      for (int k = 0; k < stack; ++k) MutateStructured(rng, d);
      absl::StatusOr<std::string> w = d.Bytes();
      *structured = w.ok();
      b = w.ok() ? *std::move(w) : seed.bytes;
      byte_mutations = w.ok() && !rng.OneIn(5) ? 0 : 1;
    } else {
      b = seed.bytes;
      byte_mutations = 1 + static_cast<int>(rng.Below(rng.OneIn(4) ? 4 : 2));
    }
    for (int k = 0; k < byte_mutations; ++k) mutation::MutateOnce(seed, set_.seeds, rng, &b);
    return b;
  }

 private:
  const SeedSet& set_;
  uint64_t seed_;
  uint64_t bpe_percent_;
  std::vector<size_t> bpe_seeds_, other_seeds_;
  std::vector<std::pair<size_t, std::string>> keys_;
};

// ---- one input ----------------------------------------------------------------------------------

struct Stats {
  int64_t inputs = 0;
  int64_t structured = 0;
  int64_t parsed_ok = 0;
  int64_t bpe_inputs = 0;         // parsed, tokenizer.ggml.model "gpt2"
  int64_t bpe_tokenizers = 0;     // of which the tokenizer loaded
  fuzz::CheckStats checks;
  // Per slack class (0: no gpt2 tokenizer, 1: gpt2): the largest (peak - 2 x output) and
  // the largest (peak - 2 x output - slack) / size.
  int64_t max_over[2] = {0, 0};
  double max_ratio[2] = {0, 0};
  int64_t max_ratio_input[2] = {-1, -1};
  std::vector<std::string> failures;
};

void Exercise(const std::string& input, int64_t index, Stats* st) {
  const size_t n = input.size();
  // An exact-size heap copy, so AddressSanitizer sees any read past the end.
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n == 0 ? 1 : n]);
  if (n != 0) std::memcpy(buf.get(), input.data(), n);
  SetCurrentInput(index);
  const int64_t base = heap::Live();
  heap::ResetPeak();
  size_t max_output = 0;
  bool bpe = false;
  {
    absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(buf.get(), n, "mut.gguf");
    if (!f.ok()) {
      if (!absl::StartsWith(f.status().message(), "mut.gguf: ")) {
        st->failures.push_back(absl::StrCat("input #", index, ": reader error does not name the file: ",
                                            f.status().message()));
      }
    } else {
      st->parsed_ok++;
      bpe = fuzz::HasBpeTokenizer(*f);
      fuzz::CheckOptions o;
      o.f32_weights = index % 4 == 0;
      o.int8_path = index % 2 == 1;
      o.encode_modes = 1 + static_cast<int>(index % 2);
      o.seed = static_cast<uint64_t>(index);
      const int64_t ok_before = st->checks.tokenizer_ok;
      for (const std::string& v : fuzz::CheckTokenizerAndModel(*f, o, &st->checks, &max_output)) {
        st->failures.push_back(absl::StrCat("input #", index, ": ", v));
      }
      st->bpe_inputs += bpe;
      st->bpe_tokenizers += bpe && st->checks.tokenizer_ok > ok_before;
    }
  }
  const int64_t over = heap::Peak() - base - 2 * static_cast<int64_t>(max_output);
  const int64_t slack = bpe ? fuzz::kMemSlackBpe : fuzz::kMemSlack;
  st->max_over[bpe] = std::max(st->max_over[bpe], over);
  if (n > 0) {
    const double ratio = static_cast<double>(std::max<int64_t>(over - slack, 0)) / n;
    if (ratio > st->max_ratio[bpe]) {
      st->max_ratio[bpe] = ratio;
      st->max_ratio_input[bpe] = index;
    }
  }
  if (over > kMemFactor * static_cast<int64_t>(n) + slack) {
    st->failures.push_back(absl::StrCat("input #", index, " (", n, " bytes): heap peak ",
                                        over + 2 * static_cast<int64_t>(max_output), " bytes exceeds ",
                                        kMemFactor, " x size + ", slack, " + 2 x ", max_output,
                                        " (longest result)"));
  }
  SetCurrentInput(-1);
  st->inputs++;
}

// ---- tests --------------------------------------------------------------------------------------

// The seeds are what they claim: each parses, its tokenizer loads and passes every check,
// text round-trips, the merges build the words, the models load and step.
TEST(TokenizerMutation, SeedsAreValidAndPassEveryCheck) {
  const SeedSet& set = Seeds();
  ASSERT_EQ(set.seeds.size(), 9u);
  std::map<std::string, int> pres, models, chat_formats;
  std::map<TokenType, int> types;
  int loaded_models = 0;
  for (size_t s = 0; s < set.seeds.size(); ++s) {
    SCOPED_TRACE(set.names[s]);
    const std::string& bytes = set.seeds[s].bytes;
    std::printf("seed %-16s %6zu bytes\n", set.names[s].c_str(), bytes.size());
    EXPECT_LE(bytes.size(), 16u << 10) << "seeds stay small, so mutations stay fast";
    absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes.data(), bytes.size(), "seed.gguf");
    ASSERT_TRUE(f.ok()) << f.status();
    absl::StatusOr<Tokenizer> t = Tokenizer::FromGguf(*f);
    if (set.names[s] == "model_q4_1_rope" || set.names[s] == "model_gemma3") {
      EXPECT_FALSE(t.ok()) << "this seed has no tokenizer";
    } else {
      ASSERT_TRUE(t.ok()) << t.status();
      models[*f->GetString("tokenizer.ggml.model")]++;
      pres[f->Find("tokenizer.ggml.pre") ? *f->GetString("tokenizer.ggml.pre") : "(none)"]++;
      chat_formats[ChatFormatName(t->chat_template().format())]++;
      for (int32_t id = 0; id < t->vocab_size(); ++id) types[t->token_type(id)]++;
      const bool spm = *f->GetString("tokenizer.ggml.model") == "llama";
      // ASCII text that every seed vocabulary spells completely comes back unchanged (the
      // SentencePiece seeds have no byte token for a newline).
      for (std::string text : {"hello world, the test is 2024!", "  two  spaces\n\nand lines"}) {
        if (spm) text.erase(std::remove(text.begin(), text.end(), '\n'), text.end());
        const std::vector<int32_t> ids = t->Encode(text, false, false);
        EXPECT_EQ(t->Decode(ids), text) << text;
      }
      // The merges build "hello" (BPE); the piece outscores its parts (SPM). (model_testing's
      // vocabulary only merges "hell".)
      const std::vector<int32_t> hello = t->Encode("hello", false, false);
      const bool prefix = spm && TokenizerDataFromGguf(*f)->add_space_prefix;
      if (set.names[s] != "model_q4_0") {
        ASSERT_EQ(hello.size(), 1u) << "'hello' is one token";
        EXPECT_EQ(t->token_text(hello[0]), prefix ? "\xE2\x96\x81hello" : "hello");
      }
    }
    fuzz::CheckStats cs;
    size_t max_output = 0;
    for (bool f32 : {false, true}) {
      fuzz::CheckOptions o;
      o.f32_weights = f32;
      o.int8_path = f32;
      const std::vector<std::string> failures = fuzz::CheckTokenizerAndModel(*f, o, &cs, &max_output);
      for (const std::string& v : failures) ADD_FAILURE() << v;
    }
    if (!f->tensors().empty()) {
      EXPECT_EQ(cs.model_ok, 2) << "the model loads";
      EXPECT_EQ(cs.f32_models, 1) << "and in f32 weight mode";
      EXPECT_EQ(cs.forward_steps, 6) << "two steps per session";
      ++loaded_models;
    }
  }
  EXPECT_EQ(loaded_models, 3);
  EXPECT_EQ(models.size(), 2u) << "gpt2 and llama";
  EXPECT_EQ(pres.size(), 5u) << "smollm, llama-bpe, qwen2, gpt-2 (model_testing), default";
  EXPECT_EQ(chat_formats.size(), 3u) << "ChatML, Zephyr, Llama-2";
  EXPECT_EQ(types.size(), 6u) << "every token type but undefined";
}

// Heap bound of the tokenizer, derived. A vocabulary token costs at least 8 + 1 bytes of
// file (length, one byte of text; 8 for an empty one, which is rejected only after the
// copies are made). In memory (64-bit libstdc++, Abseil swiss tables):
//   reader: std::string (32 B) in GgufValue::arr_s                                   32
//   TokenizerDataFromGguf: a copy of the array (moved into the Tokenizer later)       32
//   token_to_id_: flat_hash_map<std::string, int32_t>, slot 40 B + 1 control byte,
//                 reserved for n at a load factor of at most 7/8 over a power of two
//                 (<= 2.29 slots per token)                                           <= 94
//   pieces_ (std::string), types_ (4), special_tokens_ (4), eog_ (1 bit)              <= 41
// = about 199 bytes per token of >= 9 file bytes: 22x; texts longer than the 15-byte
// small-string buffer are held 4 times (reader, copy, map key, piece), 4x their bytes.
// Token types / scores: an element of >= 1 file byte is widened to 8 bytes by the reader,
// copied (8) and narrowed (4): 20x. Merges (>= 11 bytes: length + "a b"): reader and copy
// 64 B, a 16-byte map slot per merge: < 10x. The chat template is held about 3 times.
// The model: weights are views (0x) or, in f32 weight mode, F32 copies (<= 8x the bytes of
// a >= 4-bit format); norms and F16 tensors are F32 copies (<= 2x). So kMemFactor = 32
// leaves 45% headroom over the worst shape; the shapes below are measured against it.
// The slack does not depend on the input: 1.5 MiB (kMemSlackBpe) when tokenizer.ggml.model
// is "gpt2", for the pre-tokenizer regexes each Tokenizer compiles and RE2's reverse
// programs and DFA caches (0.4-0.9 MiB measured), else 64 KiB (kMemSlack) for the fixed
// texts' temporaries and the session's buffers. The longest result of a call is allowed
// twice on top (a string's capacity may double), since a Decode legitimately returns as
// many bytes as the pieces it concatenates.
TEST(TokenizerMutation, WorstCaseVocabulariesStayUnderTheMemoryBound) {
  std::vector<std::pair<std::string, std::string>> cases;
  const auto bpe = [](std::vector<std::string> tokens, std::vector<std::string> merges,
                      std::vector<int32_t> types) {
    Doc d;
    d.Set("tokenizer.ggml.model", GgufValue::String("gpt2"));
    d.Set("tokenizer.ggml.pre", GgufValue::String("gpt-2"));
    d.Set("tokenizer.ggml.tokens", GgufValue::StringArray(std::move(tokens)));
    if (!types.empty()) d.Set("tokenizer.ggml.token_type", GgufValue::Int32Array(std::move(types)));
    d.Set("tokenizer.ggml.merges", GgufValue::StringArray(std::move(merges)));
    return MustBytes(d);
  };
  std::vector<std::string> two_byte;  // 20000 distinct 2-byte tokens, the byte alphabet first
  for (int b = 0; b < 256; ++b) two_byte.push_back(Gpt2ByteChar(b));
  for (int i = 0; two_byte.size() < 20000; ++i) {
    const std::string t{static_cast<char>(0x21 + i % 94), static_cast<char>(0x21 + i / 94)};
    if (std::find(two_byte.begin(), two_byte.begin() + 256, t) == two_byte.begin() + 256) {
      two_byte.push_back(t);
    }
  }
  cases.push_back({"20000 two-byte tokens", bpe(two_byte, {"! !"}, {})});
  {
    std::vector<int32_t> types(two_byte.size(), 3);  // all control: every one is special
    cases.push_back({"20000 two-byte control tokens", bpe(two_byte, {"! !"}, types)});
  }
  {
    std::vector<std::string> t = two_byte;
    t.back() = "";  // rejected at the last token, after every table is built
    cases.push_back({"20000 tokens, the last one empty", bpe(t, {"! !"}, {})});
    t.back() = t.front();
    cases.push_back({"20000 tokens, the last one a repeat", bpe(t, {"! !"}, {})});
  }
  {
    std::vector<std::string> merges;  // every merge of two alphabet bytes that is a token
    for (size_t i = 256; i < two_byte.size(); ++i) {
      merges.push_back(two_byte[i].substr(0, 1) + " " + two_byte[i].substr(1));
    }
    cases.push_back({"19744 merges", bpe(two_byte, merges, {})});
  }
  {
    std::vector<std::string> t(20000, "");  // empty tokens: rejected at once, after copies
    cases.push_back({"20000 empty tokens", bpe(t, {"! !"}, {})});
  }
  {
    Doc d;
    d.Set("tokenizer.ggml.model", GgufValue::String("llama"));
    d.Set("tokenizer.ggml.tokens", GgufValue::StringArray({"a", "b"}));
    d.Set("tokenizer.ggml.scores", GgufValue::FloatArray(T::kFloat32, std::vector<double>(40000, 1.0)));
    d.Set("tokenizer.ggml.token_type", GgufValue::IntArray(T::kInt8, std::vector<int64_t>(40000, 1)));
    cases.push_back({"40000 int8 types, 40000 scores", MustBytes(d)});
  }
  for (const auto& [what, bytes] : cases) {
    const int64_t base = heap::Live();
    heap::ResetPeak();
    bool ok;
    {
      absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes.data(), bytes.size(), what);
      ASSERT_TRUE(f.ok()) << f.status();
      ok = Tokenizer::FromGguf(*f).ok();
    }
    const double ratio = static_cast<double>(heap::Peak() - base) / static_cast<double>(bytes.size());
    std::printf("%-36s %8zu bytes, tokenizer %-5s: heap peak %.2f x the file size\n", what.c_str(),
                bytes.size(), ok ? "OK" : "error", ratio);
    EXPECT_LE(ratio, kMemFactor) << what;
    EXPECT_GT(ratio, 3.0) << what << ": the accounting must see the tokenizer's allocations";
  }
}

// Regression (found while writing the chat template checks): ChatTemplate::Detect looked for
// <|im_end|> from every "<|im_start|>system" marker to the end of the template and rescanned
// the text after each marker up to a quote, so a template of N markers took O(N^2): 15 s
// for 1 MiB, minutes for 4 MiB, in Tokenizer::FromGguf. Generated here rather than kept
// in runtime/testdata (8 MiB each); before the fix this test took over half an hour.
TEST(TokenizerMutation, HugeChatTemplatesLoadWithoutQuadraticScans) {
  const std::string marker = "<|im_start|>system\n";
  struct Case {
    std::string what, tmpl, prompt;
  };
  std::vector<Case> cases;
  const auto repeat = [](const std::string& unit, size_t bytes) {
    std::string s;
    while (s.size() < bytes) s += unit;
    return s;
  };
  constexpr size_t kSize = 8 << 20;
  cases.push_back({"markers, no <|im_end|>", repeat(marker, kSize), ""});
  cases.push_back({"markers, each followed by a quote", repeat(marker + "'", kSize) + "<|im_end|>", ""});
  cases.push_back({"markers, one quote at the end", repeat(marker + "ab", kSize) + "'<|im_end|>", ""});
  cases.push_back({"markers without a newline, then a literal",
                   repeat("<|im_start|>system ", kSize) + marker + "Be kind.<|im_end|>", "Be kind."});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Doc d = Seeds().docs[4];  // spm_llama2: a cheap tokenizer
    d.Set("tokenizer.chat_template", GgufValue::String(c.tmpl));
    const std::string bytes = MustBytes(d);
    absl::StatusOr<GgufFile> f = GgufFile::FromBuffer(bytes.data(), bytes.size(), "big.gguf");
    ASSERT_TRUE(f.ok()) << f.status();
    absl::StatusOr<Tokenizer> t = Tokenizer::FromGguf(*f);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->chat_template().format(), ChatFormat::kChatMl);
    EXPECT_EQ(t->chat_template().default_system_prompt(), c.prompt);
  }
}

// Every regression input in runtime/testdata goes through the same checks.
TEST(TokenizerMutation, RegressionInputsPassTheChecks) {
  const std::string dir = "runtime/testdata";
  DIR* d = opendir(dir.c_str());
  ASSERT_NE(d, nullptr) << dir;
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') files.push_back(e->d_name);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  Stats st;
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(dir + "/" + files[i], std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Exercise(bytes, static_cast<int64_t>(i), &st);
    for (const std::string& f : st.failures) ADD_FAILURE() << files[i] << ": " << f;
    st.failures.clear();
  }
  EXPECT_EQ(st.inputs, static_cast<int64_t>(files.size()));
  // Found by gguf_fuzzer (436,113th execution): llama.block_count = 1793 with the tensors of
  // no layer; Model::Load sized 1793 layers (~1 MB) before looking for blk.0.
  absl::StatusOr<GgufFile> f = GgufFile::Open(dir + "/mem_block_count_layers.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Load(*f);
  ASSERT_FALSE(m.ok());
  EXPECT_TRUE(absl::StrContains(m.status().message(), "blk.0.attn_norm.weight")) << m.status();
}

TEST(TokenizerMutation, MutatedInputsEndInOkOrAnErrorWithBoundedMemory) {
  InstallCrashReporter();
  const InputSource source(Seeds(), static_cast<uint64_t>(EnvInt("FK_MUTATION_SEED", 1)),
                           EnvInt("FK_MUTATION_BPE_PERCENT", kDefaultBpePercent));
  const int64_t total = EnvInt("FK_MUTATIONS", 50000);
  const int64_t only = EnvInt("FK_MUTATION_ONLY", -1);
  Stats st;
  const auto start = std::chrono::steady_clock::now();
  if (only >= 0) {
    bool structured;
    const std::string input = source.Make(only, &structured);
    if (const char* dump = std::getenv("FK_MUTATION_DUMP")) {
      std::ofstream(dump, std::ios::binary) << input;
    }
    Exercise(input, only, &st);
  } else {
    const int64_t progress_every = std::max<int64_t>(total / 10, 1);
    for (int64_t i = 0; i < total; ++i) {
      bool structured;
      const std::string input = source.Make(i, &structured);
      st.structured += structured;
      Exercise(input, i, &st);
      if (total >= 1000000 && (i + 1) % progress_every == 0) {
        std::fprintf(stderr, "  %lld / %lld inputs\n", static_cast<long long>(i + 1),
                     static_cast<long long>(total));
      }
      if (st.failures.size() > 20) break;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const fuzz::CheckStats& c = st.checks;
  std::printf(
      "Tokenizer/model mutation test: %lld inputs tried in %.1f s (%lld systematic, %lld "
      "structured), %lld parsed OK\n"
      "  tokenizer OK %lld (byte-level BPE: %lld of %lld inputs), errors %lld; %lld encodes "
      "(%lld ids), %lld decodes\n"
      "  model OK %lld (f32 weight mode %lld), errors %lld; %lld forward steps, %lld session "
      "errors\n"
      "  heap: max (peak - 2 x output) %lld bytes without a gpt2 tokenizer, %lld with; max "
      "excess over the slack / size %.2f (input #%lld) and %.2f (input #%lld); limit %lld\n",
      static_cast<long long>(st.inputs), seconds, static_cast<long long>(source.systematic()),
      static_cast<long long>(st.structured), static_cast<long long>(st.parsed_ok),
      static_cast<long long>(c.tokenizer_ok), static_cast<long long>(st.bpe_tokenizers),
      static_cast<long long>(st.bpe_inputs), static_cast<long long>(c.tokenizer_errors),
      static_cast<long long>(c.encodes), static_cast<long long>(c.ids_encoded),
      static_cast<long long>(c.decodes), static_cast<long long>(c.model_ok),
      static_cast<long long>(c.f32_models), static_cast<long long>(c.model_errors),
      static_cast<long long>(c.forward_steps), static_cast<long long>(c.session_errors),
      static_cast<long long>(st.max_over[0]), static_cast<long long>(st.max_over[1]),
      st.max_ratio[0], static_cast<long long>(st.max_ratio_input[0]), st.max_ratio[1],
      static_cast<long long>(st.max_ratio_input[1]), static_cast<long long>(kMemFactor));
  std::vector<std::pair<int64_t, std::string>> kinds;
  for (const auto& [k, n] : c.error_kinds) kinds.push_back({n, k});
  std::sort(kinds.rbegin(), kinds.rend());
  for (size_t i = 0; i < kinds.size() && i < 40; ++i) {
    std::printf("  %9lld  %s\n", static_cast<long long>(kinds[i].first), kinds[i].second.c_str());
  }
  std::printf("  (%zu error kinds)\n", kinds.size());
  for (const std::string& f : st.failures) ADD_FAILURE() << f;
  if (only < 0) {
    EXPECT_GE(st.inputs, total);
    // The mutations reach deep: tokenizers and models still load, errors are varied.
    EXPECT_GT(c.tokenizer_ok, st.inputs / 10);
    EXPECT_GT(c.tokenizer_errors, st.inputs / 10);
    EXPECT_GT(c.model_ok, st.inputs / 100);
    EXPECT_GT(c.forward_steps, 0);
    EXPECT_GT(st.bpe_tokenizers, 0);
    EXPECT_GE(c.error_kinds.size(), 30u);
  }
}

}  // namespace
}  // namespace fk
