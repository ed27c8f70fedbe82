// Tokenizer: text <-> token ids, as llama.cpp tokenizes for the same GGUF metadata.
//
// Two models (tokenizer.ggml.model):
//   "gpt2"  byte-level BPE. The text is first split into words by the pre-tokenizer
//           regexes of tokenizer.ggml.pre (llama.cpp's lists; see kPreTokenizers in
//           tokenizer.cc), each word's bytes are mapped to the GPT-2 byte alphabet, and
//           adjacent symbols are merged by merge rank (tokenizer.ggml.merges order).
//   "llama" SentencePiece-style BPE over scores (TinyLlama, Llama-2): spaces become U+2581,
//           a space is prefixed (add_space_prefix), the highest-scoring adjacent pair whose
//           concatenation is a token is merged first, and characters that end up outside
//           the vocabulary become byte tokens <0xXX>.
// Control (token type 3) and user-defined (4) tokens: before the model runs, the text is
// split on the texts of these tokens, longest token first. User-defined tokens are always
// recognized; control and unknown ones only with parse_special (as in llama.cpp).
//
// Text that is not valid UTF-8 never fails. For "gpt2" each byte that does not start a
// valid UTF-8 sequence is replaced by U+FFFD, as llama.cpp does (so decode(encode(s))
// gives s with those bytes replaced). For "llama" the bytes are kept and come back
// unchanged through byte tokens (but a literal U+2581 in the text is SentencePiece's space
// and decodes as ' ', as in llama.cpp).
// A byte whose GPT-2 byte character is not in the vocabulary is dropped, again as llama.cpp
// does (SmolLM2 lacks 0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, the lead bytes 0xF1 and 0xF2 of
// the unassigned planes 4 to 11, and bytes that never occur in UTF-8); for every other
// valid UTF-8 text decode(encode(text)) == text.
#ifndef RUNTIME_TOKENIZER_H_
#define RUNTIME_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/chat_template.h"

namespace fk {

class GgufFile;

// GGUF token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// Everything the tokenizer needs, as plain data (the tokenizer.ggml.* metadata).
struct TokenizerData {
  std::string model;  // "gpt2" or "llama"
  std::string pre;    // tokenizer.ggml.pre ("gpt2" only; "" means "default")
  std::vector<std::string> tokens;
  std::vector<float> scores;          // "llama": required; "gpt2": unused
  std::vector<int32_t> token_types;   // empty: all normal
  std::vector<std::string> merges;    // "gpt2": required, "left right" in rank order
  int32_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = true;  // "llama" only
  std::string chat_template;     // tokenizer.chat_template (Jinja source), may be empty
};

// Reads the tokenizer.ggml.* keys and tokenizer.chat_template. Where a key is absent,
// llama.cpp's defaults for the model apply ("llama": bos 1, eos 2, unk 0, add_bos and
// add_space_prefix true; llama3-family pre-tokenizers: add_bos true).
absl::StatusOr<TokenizerData> TokenizerDataFromGguf(const GgufFile& file);

class Tokenizer {
 public:
  static absl::StatusOr<Tokenizer> Create(TokenizerData data);
  static absl::StatusOr<Tokenizer> FromGguf(const GgufFile& file);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // add_special: add BOS/EOS as the metadata says (add_bos / add_eos).
  // parse_special: recognize control tokens such as <|im_start|> in the text.
  std::vector<int32_t> Encode(absl::string_view text, bool add_special,
                              bool parse_special) const;

  // The bytes a token stands for: control, user-defined and unknown tokens give their
  // text; byte tokens <0xXX> one byte; unused/undefined tokens and ids outside the
  // vocabulary give "".
  const std::string& TokenToPiece(int32_t id) const;

  // Concatenated pieces. For "llama" with add_space_prefix, the one space that Encode
  // put in front of the text (at the start and after each special token) is removed
  // again, so decode(encode(text)) == text.
  std::string Decode(const std::vector<int32_t>& ids) const;

  // End of generation: EOS, and tokens llama.cpp stops at by their text (<|im_end|>,
  // <|endoftext|>, <|eot_id|>, <end_of_turn>, the FIM pad/repo/file-separator tokens...).
  bool IsEog(int32_t id) const;

  int32_t vocab_size() const { return static_cast<int32_t>(tokens_.size()); }
  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t unk_id() const { return unk_id_; }
  int32_t pad_id() const { return pad_id_; }
  bool add_bos() const { return add_bos_; }
  const std::string& token_text(int32_t id) const;
  TokenType token_type(int32_t id) const;

  const ChatTemplate& chat_template() const { return chat_template_; }
  std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) const {
    return chat_template_.Apply(messages, add_generation_prompt);
  }

 private:
  struct PreTokenizer;  // compiled regexes, defined in tokenizer.cc
  // A piece of the input: raw text [begin, end) or one special token.
  struct Fragment {
    int32_t token;  // -1: raw text
    size_t begin, end;
  };

  Tokenizer() = default;

  std::vector<Fragment> SplitOnSpecialTokens(absl::string_view text,
                                             bool parse_special) const;
  void EncodeBpe(absl::string_view text, std::vector<int32_t>* out) const;
  void BpeWord(absl::string_view word, std::vector<int32_t>* out) const;
  void EncodeSpm(absl::string_view text, std::vector<int32_t>* out) const;
  void AppendByteToken(uint8_t byte, std::vector<int32_t>* out) const;
  bool IsSpecial(int32_t id) const;

  bool is_spm_ = false;
  std::vector<std::string> tokens_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::vector<std::string> pieces_;
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  // BPE: (left id << 32 | right id) -> (rank, merged id).
  absl::flat_hash_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::unique_ptr<PreTokenizer> pre_;
  bool ignore_merges_ = false;
  // SPM: <0xXX> byte token ids (-1 where absent).
  std::vector<int32_t> byte_tokens_;
  // Special tokens to split on, longest text first.
  std::vector<int32_t> special_tokens_;
  std::vector<bool> eog_;
  int32_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1, pad_id_ = -1;
  bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
  ChatTemplate chat_template_;
};

}  // namespace fk

#endif  // RUNTIME_TOKENIZER_H_
