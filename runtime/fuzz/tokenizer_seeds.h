// Seed files for the tokenizer / model mutation test and the fuzz corpus (issue 7), all
// written by our GgufWriter: byte-level BPE ("gpt2") vocabularies with merges and every
// token type under several tokenizer.ggml.pre values, SentencePiece ("llama") vocabularies
// with scores and <0xXX> byte tokens, chat templates of each family, and two tiny llama
// models from runtime/model_testing.h. Each seed is a few KB.
#ifndef RUNTIME_FUZZ_TOKENIZER_SEEDS_H_
#define RUNTIME_FUZZ_TOKENIZER_SEEDS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/gguf.h"

namespace fk {
namespace mutation {

// A file as its parts, so structured mutations can edit it and GgufWriter re-serialize it.
struct Doc {
  std::vector<GgufKv> kvs;
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::string bytes;
  };
  std::vector<Tensor> tensors;

  GgufValue* Find(const std::string& key) {
    for (GgufKv& kv : kvs) {
      if (kv.key == key) return &kv.value;
    }
    return nullptr;
  }
  void Set(const std::string& key, GgufValue v) {
    if (GgufValue* old = Find(key)) {
      *old = std::move(v);
    } else {
      kvs.push_back({key, std::move(v)});
    }
  }
  void Remove(const std::string& key) {
    kvs.erase(std::remove_if(kvs.begin(), kvs.end(), [&](const GgufKv& kv) { return kv.key == key; }),
              kvs.end());
  }
  absl::StatusOr<std::string> Bytes() const {
    GgufWriter w;
    for (const GgufKv& kv : kvs) w.Add(kv.key, kv.value);
    for (const Tensor& t : tensors) {
      absl::Status s = w.AddTensor(t.name, t.dims, t.type, t.bytes);
      if (!s.ok()) return s;
    }
    return w.ToBytes();
  }
};

// The parts of a valid file (aborts on an invalid one: seeds only).
Doc DocFromBytes(const std::string& bytes);
// The file; aborts if the writer refuses (seeds only).
std::string MustBytes(const Doc& d);

// Chat templates of the families runtime/chat_template.h knows, and Llama-3's, which it
// renders as ChatML.
extern const char kChatMlTemplate[];
extern const char kLlama3Template[];
extern const char kZephyrTemplate[];
extern const char kLlama2Template[];

struct NamedDoc {
  std::string name;
  Doc doc;
};

// The seeds, in a fixed order: bpe_smollm, bpe_llama3, bpe_qwen2, bpe_default, spm_llama2,
// spm_noprefix, model_q4_0, model_q4_1_rope.
std::vector<NamedDoc> MakeTokenizerSeeds();

}  // namespace mutation
}  // namespace fk

#endif  // RUNTIME_FUZZ_TOKENIZER_SEEDS_H_
