#include "runtime/tokenizer.h"

#include <algorithm>
#include <array>
#include <queue>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "re2/re2.h"
#include "runtime/gguf.h"

namespace fk {
namespace {

// ---------------------------------------------------------------------------------------
// UTF-8

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence at s[i] (Unicode table 3-7: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 if the byte there starts none.
size_t ValidUtf8Length(absl::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) return 1;
  size_t n;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return n;
}

// Replaces each byte that does not start a well-formed sequence by U+FFFD.
std::string SanitizeUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = ValidUtf8Length(s, i);
    if (n == 0) {
      AppendUtf8(0xFFFD, &out);
      ++i;
    } else {
      out.append(s.data() + i, n);
      i += n;
    }
  }
  return out;
}

// The SentencePiece path cuts characters by the lead byte only, as llama.cpp does
// (1 for ASCII and stray continuation bytes, else 2/3/4); the caller clamps at the end.
size_t Utf8LengthFromLeadByte(char c) {
  const uint8_t b = static_cast<uint8_t>(c);
  return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}

constexpr char kSpmSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's space (3 bytes)

// ---------------------------------------------------------------------------------------
// GPT-2 byte alphabet: every byte is shown as one printable character. The printable
// Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) stand for themselves; the other 68
// bytes, in increasing order, get U+0100, U+0101, ...

struct ByteAlphabet {
  std::array<std::string, 256> byte_to_char;
  absl::flat_hash_map<std::string, uint8_t> char_to_byte;
};

const ByteAlphabet& GetByteAlphabet() {
  static const ByteAlphabet* alphabet = [] {
    auto* a = new ByteAlphabet;
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                             (b >= 0xAE && b <= 0xFF);
      AppendUtf8(printable ? static_cast<uint32_t>(b) : next++, &a->byte_to_char[b]);
      a->char_to_byte[a->byte_to_char[b]] = static_cast<uint8_t>(b);
    }
    return a;
  }();
  return *alphabet;
}

// Token text in the byte alphabet -> the bytes it stands for. Characters outside the
// alphabet (none in well-formed vocabularies) are copied through as they are.
std::string ByteLevelDecode(absl::string_view text) {
  const ByteAlphabet& alphabet = GetByteAlphabet();
  std::string out;
  for (size_t i = 0; i < text.size();) {
    size_t n = ValidUtf8Length(text, i);
    if (n == 0) n = 1;
    const std::string ch(text.substr(i, n));
    const auto it = alphabet.char_to_byte.find(ch);
    if (it != alphabet.char_to_byte.end()) {
      out.push_back(static_cast<char>(it->second));
    } else {
      out += ch;
    }
    i += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Pre-tokenizer regexes.
//
// These are llama.cpp's regexes (llama-vocab.cpp, llm_tokenizer_bpe), run with RE2 (Perl
// leftmost-first alternation, which gives the same matches as the backtracking engines
// llama.cpp uses for these lookahead-free alternatives). Two rewrites:
//
//  * \s is the Unicode White_Space set llama.cpp uses (RE2's \s is ASCII only and lacks
//    \v); WhitespaceClass() substitutes it inside and outside brackets.
//
//  * RE2 has no lookahead. llama.cpp's alternative \s+(?!\S) ("a whitespace run not
//    followed by a non-space") is written as the capture group (\s+) and finished by hand
//    in SplitPieces(): the group is greedy, so it ends either at the end of the piece
//    (then (?!\S) holds: keep it) or before a non-space character. In that case the
//    backtracking engine would give back the run's last character, so that character
//    can start the next word (" world" keeps its space); we do the same when the run
//    has two or more characters. A run of one character has nothing to give back: the
//    lookahead alternative fails there, and both what follows it in llama.cpp's regexes
//    (either a plain \s+ alternative, dropped here as it would match the same character,
//    or nothing at all, which leaves the character unmatched and so a word of its own)
//    produce that single character as a word, which is what the group already holds.

constexpr char kWhitespace[] =
    "\\t\\n\\x0B\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

std::string WhitespaceClass(absl::string_view pattern) {
  std::string out;
  bool in_brackets = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      if (pattern[i + 1] == 's') {
        absl::StrAppend(&out, in_brackets ? "" : "[", kWhitespace, in_brackets ? "" : "]");
      } else {
        out.append(pattern.data() + i, 2);
      }
      ++i;
      continue;
    }
    if (c == '[') in_brackets = true;
    if (c == ']') in_brackets = false;
    out.push_back(c);
  }
  return out;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
constexpr char kGpt2Regex[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|(\s+))";
// (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|
// \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
constexpr char kLlama3Regex[] =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|(\s+))";
// As llama3 but one digit per word.
constexpr char kQwen2Regex[] =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|(\s+))";

struct PreTokenizerSpec {
  std::vector<absl::string_view> names;  // values of tokenizer.ggml.pre
  std::vector<const char*> regexes;     // applied in order, each splitting the last's words
  bool ignore_merges;  // a word that is a whole token is emitted without merging
};

const std::vector<PreTokenizerSpec>& PreTokenizerSpecs() {
  static const auto* specs = new std::vector<PreTokenizerSpec>{
      {{"default", ""},
       {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Regex, R"(\p{N}+)", "[0-9][0-9][0-9]"},
       false},
      {{"gpt-2", "phi-2", "mpt", "olmo", "jais"}, {kGpt2Regex}, false},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}, {kLlama3Regex}, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3Regex}, false},
      {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {kQwen2Regex}, false},
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       {R"(\p{N})", kGpt2Regex},
       false},
  };
  return *specs;
}

const PreTokenizerSpec* FindPreTokenizer(absl::string_view name) {
  for (const PreTokenizerSpec& spec : PreTokenizerSpecs()) {
    if (std::find(spec.names.begin(), spec.names.end(), name) != spec.names.end()) {
      return &spec;
    }
  }
  return nullptr;
}

std::string SupportedPreTokenizers() {
  std::vector<absl::string_view> names;
  for (const PreTokenizerSpec& spec : PreTokenizerSpecs()) {
    for (absl::string_view name : spec.names) {
      if (!name.empty()) names.push_back(name);
    }
  }
  return absl::StrJoin(names, ", ");
}

// Byte range [first, second) of the sanitized text.
using Range = std::pair<size_t, size_t>;

// ---------------------------------------------------------------------------------------
// Token texts with a meaning llama.cpp gives them by text alone (llama-vocab.cpp, as of
// llama-cpp-python 0.3.36): it stops generating at these, and treats them as control tokens
// whatever their token type says (Gemma 3's '</s>' is a user-defined token, and EOG).
// Not modelled: llama.cpp drops '<|end|>' from the set again when the vocabulary also
// has '<|return|>' and '<|call|>' (gpt-oss) or '<|flush|>' and '<|calls|>'.
constexpr absl::string_view kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<|return|>", "<|call|>",
    "<|flush|>", "<|calls|>", "</s>", "[EOT]", "[EOS]", "<eos>", "<turn|>",
    "<|tool_response>", "[e~[",
    // <｜end▁of▁sentence｜> (fullwidth bars, U+2581 spaces)
    "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>",
    // Fill-in-the-middle pad / repository / file separator tokens.
    "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>",
    "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
};

bool ParseByteToken(absl::string_view text, uint8_t* byte) {
  // "<0xXX>" with two upper- or lower-case hex digits.
  if (text.size() != 6 || !absl::StartsWith(text, "<0x") || text[5] != '>') return false;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = text[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    value = value * 16 + digit;
  }
  *byte = static_cast<uint8_t>(value);
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------

struct Tokenizer::PreTokenizer {
  struct Step {
    std::unique_ptr<RE2> re;
    bool lookahead_group;  // group 1 is llama.cpp's \s+(?!\S)
  };
  std::vector<Step> steps;

  // Splits every range of `pieces` with one step; see the comment on the regexes.
  static std::vector<Range> SplitPieces(const Step& step, absl::string_view text,
                                        const std::vector<Range>& pieces) {
    std::vector<Range> out;
    re2::StringPiece groups[2];
    const int n_groups = step.lookahead_group ? 2 : 1;
    for (const Range& piece : pieces) {
      const re2::StringPiece input(text.data() + piece.first, piece.second - piece.first);
      size_t pos = 0;   // search start, relative to the piece
      size_t done = 0;  // everything before this is emitted
      while (pos < input.size() &&
             step.re->Match(input, pos, input.size(), RE2::UNANCHORED, groups, n_groups)) {
        const size_t begin = groups[0].data() - input.data();
        size_t end = begin + groups[0].size();
        if (step.lookahead_group && groups[1].data() != nullptr && end < input.size()) {
          // The run is followed by a non-space: give back its last character, if the run
          // has more than one.
          size_t last = end - 1;
          while ((static_cast<uint8_t>(input[last]) & 0xC0) == 0x80) --last;
          if (last > begin) end = last;
        }
        if (begin > done) out.emplace_back(piece.first + done, piece.first + begin);
        out.emplace_back(piece.first + begin, piece.first + end);
        done = pos = end;
      }
      if (done < input.size()) out.emplace_back(piece.first + done, piece.second);
    }
    return out;
  }
};

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<Tokenizer> Tokenizer::Create(TokenizerData data) {
  Tokenizer t;
  if (data.model == "llama") {
    t.is_spm_ = true;
  } else if (data.model != "gpt2") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "unsupported tokenizer model '%s' (tokenizer.ggml.model); supported: gpt2, llama",
        data.model));
  }
  const size_t n = data.tokens.size();
  if (n == 0) return absl::InvalidArgumentError("tokenizer.ggml.tokens is empty");
  if (n > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError("tokenizer.ggml.tokens has more than 2^31-1 tokens");
  }
  if (!data.token_types.empty() && data.token_types.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tokenizer.ggml.token_type has %d entries but tokenizer.ggml.tokens has %d",
        data.token_types.size(), n));
  }
  if (t.is_spm_ && data.scores.size() != n) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tokenizer.ggml.scores has %d entries but tokenizer.ggml.tokens has %d (model "
        "'llama' needs one score per token)",
        data.scores.size(), n));
  }

  t.types_.resize(n, TokenType::kNormal);
  t.token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = data.tokens[i];
    if (text.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tokenizer.ggml.tokens[%d] is empty", i));
    }
    const auto [it, inserted] = t.token_to_id_.emplace(text, static_cast<int32_t>(i));
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "tokenizer.ggml.tokens[%d] = '%s' repeats tokenizer.ggml.tokens[%d]", i, text,
          it->second));
    }
    if (!data.token_types.empty()) {
      const int32_t type = data.token_types[i];
      if (type < 0 || type > static_cast<int32_t>(TokenType::kByte)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "tokenizer.ggml.token_type[%d] = %d (token '%s') is not a token type (0..6)", i,
            type, text));
      }
      t.types_[i] = static_cast<TokenType>(type);
    }
  }
  t.eog_.assign(n, false);
  for (absl::string_view text : kEndOfGenerationTexts) {
    const auto it = t.token_to_id_.find(text);
    if (it == t.token_to_id_.end()) continue;
    t.eog_[it->second] = true;
    t.types_[it->second] = TokenType::kControl;
  }

  const std::pair<const char*, int32_t> ids[] = {
      {"tokenizer.ggml.bos_token_id", data.bos_id},
      {"tokenizer.ggml.eos_token_id", data.eos_id},
      {"tokenizer.ggml.unknown_token_id", data.unk_id},
      {"tokenizer.ggml.padding_token_id", data.pad_id},
  };
  for (const auto& [key, id] : ids) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s = %d is outside the vocabulary of %d tokens", key, id, n));
    }
  }
  if (data.add_bos && data.bos_id < 0) {
    return absl::InvalidArgumentError(
        "tokenizer.ggml.add_bos_token is true but there is no tokenizer.ggml.bos_token_id");
  }
  if (data.add_eos && data.eos_id < 0) {
    return absl::InvalidArgumentError(
        "tokenizer.ggml.add_eos_token is true but there is no tokenizer.ggml.eos_token_id");
  }
  t.bos_id_ = data.bos_id;
  t.eos_id_ = data.eos_id;
  t.unk_id_ = data.unk_id;
  t.pad_id_ = data.pad_id;
  t.add_bos_ = data.add_bos;
  t.add_eos_ = data.add_eos;
  if (t.eos_id_ >= 0) t.eog_[t.eos_id_] = true;

  if (t.is_spm_) {
    t.add_space_prefix_ = data.add_space_prefix;
    t.byte_tokens_.assign(256, -1);
    for (size_t i = 0; i < n; ++i) {
      if (t.types_[i] != TokenType::kByte) continue;
      uint8_t byte;
      if (!ParseByteToken(data.tokens[i], &byte)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "tokenizer.ggml.tokens[%d] = '%s' has token type 6 (byte) but is not <0xXX>", i,
            data.tokens[i]));
      }
      t.byte_tokens_[byte] = static_cast<int32_t>(i);
    }
  } else {
    const PreTokenizerSpec* spec = FindPreTokenizer(data.pre);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "unsupported pre-tokenizer '%s' (tokenizer.ggml.pre); supported: %s", data.pre,
          SupportedPreTokenizers()));
    }
    t.ignore_merges_ = spec->ignore_merges;
    t.pre_ = std::make_unique<PreTokenizer>();
    for (const char* pattern : spec->regexes) {
      RE2::Options options;
      options.set_log_errors(false);
      auto re = std::make_unique<RE2>(WhitespaceClass(pattern), options);
      if (!re->ok()) {
        return absl::InternalError(absl::StrFormat(
            "pre-tokenizer '%s': RE2 rejects regex %s: %s", data.pre, pattern, re->error()));
      }
      const bool lookahead_group = re->NumberOfCapturingGroups() == 1;
      t.pre_->steps.push_back({std::move(re), lookahead_group});
    }
    if (data.merges.empty()) {
      return absl::InvalidArgumentError(
          "tokenizer.ggml.merges is missing or empty (model 'gpt2' needs merges)");
    }
    t.merges_.reserve(data.merges.size());
    for (size_t rank = 0; rank < data.merges.size(); ++rank) {
      const std::string& merge = data.merges[rank];
      const size_t space = merge.size() > 1 ? merge.find(' ', 1) : std::string::npos;
      if (space == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "tokenizer.ggml.merges[%d] = '%s' is not two tokens separated by a space", rank,
            merge));
      }
      const std::string left = merge.substr(0, space);
      const std::string right = merge.substr(space + 1);
      int32_t part_ids[3];
      const std::string parts[3] = {left, right, left + right};
      for (int p = 0; p < 3; ++p) {
        const auto it = t.token_to_id_.find(parts[p]);
        if (it == t.token_to_id_.end()) {
          return absl::InvalidArgumentError(absl::StrFormat(
              "tokenizer.ggml.merges[%d] = '%s' refers to '%s', which is not a token", rank,
              merge, parts[p]));
        }
        part_ids[p] = it->second;
      }
      const uint64_t key = (static_cast<uint64_t>(part_ids[0]) << 32) |
                           static_cast<uint32_t>(part_ids[1]);
      // A repeated merge keeps its first (best) rank, as in llama.cpp.
      t.merges_.try_emplace(key, static_cast<int32_t>(rank), part_ids[2]);
    }
    const ByteAlphabet& alphabet = GetByteAlphabet();
    t.byte_tokens_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      const auto it = t.token_to_id_.find(alphabet.byte_to_char[b]);
      if (it != t.token_to_id_.end()) t.byte_tokens_[b] = it->second;
    }
  }

  // Pieces, as llama.cpp's token_to_piece with special = true renders them.
  t.pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = data.tokens[i];
    switch (t.types_[i]) {
      case TokenType::kNormal:
        if (t.is_spm_) {
          std::string piece;
          for (size_t at = 0;;) {
            const size_t next = text.find(kSpmSpace, at);
            piece.append(text, at, next == std::string::npos ? std::string::npos : next - at);
            if (next == std::string::npos) break;
            piece.push_back(' ');
            at = next + sizeof(kSpmSpace) - 1;
          }
          t.pieces_[i] = std::move(piece);
        } else {
          t.pieces_[i] = ByteLevelDecode(text);
        }
        break;
      case TokenType::kControl:
      case TokenType::kUserDefined:
      case TokenType::kUnknown:
        t.pieces_[i] = text;
        break;
      case TokenType::kByte:
        if (t.is_spm_) {
          uint8_t byte = 0;
          ParseByteToken(text, &byte);  // checked above
          t.pieces_[i] = std::string(1, static_cast<char>(byte));
        }
        break;
      case TokenType::kUnused:
      case TokenType::kUndefined:
        break;
    }
  }

  for (size_t i = 0; i < n; ++i) {
    if (t.IsSpecial(static_cast<int32_t>(i))) t.special_tokens_.push_back(static_cast<int32_t>(i));
  }
  // Longest text first (llama.cpp sorts by length too; equal lengths keep id order here).
  std::stable_sort(t.special_tokens_.begin(), t.special_tokens_.end(),
                   [&](int32_t a, int32_t b) {
                     return data.tokens[a].size() > data.tokens[b].size();
                   });

  t.chat_template_ = ChatTemplate::Detect(
      data.chat_template, t.bos_id_ >= 0 ? data.tokens[t.bos_id_] : "",
      t.eos_id_ >= 0 ? data.tokens[t.eos_id_] : "");
  t.scores_ = std::move(data.scores);
  t.tokens_ = std::move(data.tokens);
  return t;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  const TokenType type = types_[id];
  return type == TokenType::kControl || type == TokenType::kUserDefined ||
         type == TokenType::kUnknown;
}

const std::string& Tokenizer::token_text(int32_t id) const {
  static const std::string* empty = new std::string;
  return id >= 0 && id < vocab_size() ? tokens_[id] : *empty;
}

TokenType Tokenizer::token_type(int32_t id) const {
  return id >= 0 && id < vocab_size() ? types_[id] : TokenType::kUndefined;
}

const std::string& Tokenizer::TokenToPiece(int32_t id) const {
  static const std::string* empty = new std::string;
  return id >= 0 && id < vocab_size() ? pieces_[id] : *empty;
}

bool Tokenizer::IsEog(int32_t id) const { return id >= 0 && id < vocab_size() && eog_[id]; }

// llama.cpp's order: for each special token (longest first), cut every occurrence out of
// every raw-text fragment that is left.
std::vector<Tokenizer::Fragment> Tokenizer::SplitOnSpecialTokens(absl::string_view text,
                                                                bool parse_special) const {
  std::vector<Fragment> fragments = {{-1, 0, text.size()}};
  std::vector<Fragment> next;
  for (int32_t id : special_tokens_) {
    if (!parse_special && types_[id] != TokenType::kUserDefined) continue;
    const std::string& needle = tokens_[id];
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t at = f.begin;
      while (true) {
        const size_t hit = text.substr(0, f.end).find(needle, at);
        if (hit == absl::string_view::npos) break;
        if (hit > at) next.push_back({-1, at, hit});
        next.push_back({id, hit, hit + needle.size()});
        at = hit + needle.size();
      }
      if (at < f.end) next.push_back({-1, at, f.end});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::vector<int32_t> Tokenizer::Encode(absl::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(bos_id_);
  const std::vector<Fragment> fragments =
      text.empty() ? std::vector<Fragment>{} : SplitOnSpecialTokens(text, parse_special);
  bool after_special = true;  // SentencePiece: a space goes in front of the first text
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    const absl::string_view raw = text.substr(f.begin, f.end - f.begin);
    if (is_spm_) {
      std::string escaped;
      if (add_space_prefix_ && after_special) escaped = kSpmSpace;
      for (char c : raw) {
        if (c == ' ') {
          escaped += kSpmSpace;
        } else {
          escaped.push_back(c);
        }
      }
      EncodeSpm(escaped, &out);
    } else {
      EncodeBpe(raw, &out);
    }
    after_special = false;
  }
  if (add_special && add_eos_) out.push_back(eos_id_);
  return out;
}

void Tokenizer::EncodeBpe(absl::string_view raw, std::vector<int32_t>* out) const {
  const std::string text = SanitizeUtf8(raw);
  std::vector<Range> words = {{0, text.size()}};
  for (const PreTokenizer::Step& step : pre_->steps) {
    words = PreTokenizer::SplitPieces(step, text, words);
  }
  for (const Range& w : words) {
    BpeWord(absl::string_view(text).substr(w.first, w.second - w.first), out);
  }
}

// Merges the byte symbols of one word, lowest merge rank first (leftmost among equal
// ranks), like llama.cpp's llm_tokenizer_bpe_session. Every symbol is a token id: merges
// only join tokens into tokens (checked in Create). A byte whose byte-alphabet character
// is not a token (id -1) takes part in no merge and is dropped at the end, as in llama.cpp.
void Tokenizer::BpeWord(absl::string_view word, std::vector<int32_t>* out) const {
  if (ignore_merges_) {
    std::string encoded;
    const ByteAlphabet& alphabet = GetByteAlphabet();
    for (char c : word) encoded += alphabet.byte_to_char[static_cast<uint8_t>(c)];
    const auto it = token_to_id_.find(encoded);
    if (it != token_to_id_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  constexpr int32_t kMergedAway = -2;
  struct Symbol {
    int32_t id;
    int prev, next;
  };
  std::vector<Symbol> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols[i] = {byte_tokens_[static_cast<uint8_t>(word[i])], static_cast<int>(i) - 1,
                  i + 1 < word.size() ? static_cast<int>(i) + 1 : -1};
  }
  struct Pair {
    int32_t rank;
    int left, right;
    int32_t left_id, right_id, merged_id;
  };
  const auto worse = [](const Pair& a, const Pair& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> queue(worse);
  const auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t a = symbols[left].id, b = symbols[right].id;
    if (a < 0 || b < 0) return;
    const auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b));
    if (it == merges_.end()) return;
    queue.push({it->second.first, left, right, a, b, it->second.second});
  };
  for (size_t i = 1; i < word.size(); ++i) consider(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    // Stale if either side has changed since the pair was queued (a merge always makes
    // a longer token, so an unchanged id means an untouched, still adjacent symbol).
    if (symbols[p.left].id != p.left_id || symbols[p.right].id != p.right_id) continue;
    Symbol& left = symbols[p.left];
    left.id = p.merged_id;
    left.next = symbols[p.right].next;
    if (left.next >= 0) symbols[left.next].prev = p.left;
    symbols[p.right].id = kMergedAway;
    consider(left.prev, p.left);
    consider(p.left, left.next);
  }
  for (int i = word.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    if (symbols[i].id >= 0) out->push_back(symbols[i].id);
  }
}

// llama.cpp's llm_tokenizer_spm_session: start from characters, repeatedly merge the
// adjacent pair whose concatenation is the token with the highest score (leftmost among
// equal scores); what is not a token at the end is spelled with byte tokens.
void Tokenizer::EncodeSpm(absl::string_view text, std::vector<int32_t>* out) const {
  struct Symbol {
    size_t begin, size;  // size 0: merged into its left neighbour
    int prev, next;
  };
  std::vector<Symbol> symbols;
  for (size_t at = 0; at < text.size();) {
    const size_t size = std::min(Utf8LengthFromLeadByte(text[at]), text.size() - at);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({at, size, index - 1, at + size < text.size() ? index + 1 : -1});
    at += size;
  }
  struct Pair {
    float score;
    int left, right;
    size_t size;
  };
  const auto worse = [](const Pair& a, const Pair& b) {
    return a.score != b.score ? a.score < b.score : a.left > b.left;
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> queue(worse);
  const auto consider = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const size_t size = symbols[left].size + symbols[right].size;
    const auto it = token_to_id_.find(text.substr(symbols[left].begin, size));
    if (it == token_to_id_.end()) return;
    queue.push({scores_[it->second], left, right, size});
  };
  for (size_t i = 1; i < symbols.size(); ++i) {
    consider(static_cast<int>(i) - 1, static_cast<int>(i));
  }
  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Symbol& left = symbols[p.left];
    Symbol& right = symbols[p.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != p.size) continue;
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = p.left;
    consider(left.prev, p.left);
    consider(p.left, left.next);
  }
  for (int i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[i].next) {
    const absl::string_view piece = text.substr(symbols[i].begin, symbols[i].size);
    const auto it = token_to_id_.find(piece);
    if (it != token_to_id_.end()) {
      out->push_back(it->second);
    } else {
      for (char c : piece) AppendByteToken(static_cast<uint8_t>(c), out);
    }
  }
}

// SentencePiece byte fallback: <0xXX>, else a token that is the byte itself (llama.cpp's
// fallback), else the unknown token; a vocabulary with none of these drops the byte.
void Tokenizer::AppendByteToken(uint8_t byte, std::vector<int32_t>* out) const {
  if (byte_tokens_[byte] >= 0) {
    out->push_back(byte_tokens_[byte]);
    return;
  }
  const auto it = token_to_id_.find(std::string(1, static_cast<char>(byte)));
  if (it != token_to_id_.end()) {
    out->push_back(it->second);
  } else if (unk_id_ >= 0) {
    out->push_back(unk_id_);
  }
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string out;
  bool after_special = true;
  for (int32_t id : ids) {
    absl::string_view piece = TokenToPiece(id);
    const bool special = id >= 0 && id < vocab_size() && IsSpecial(id);
    if (is_spm_ && add_space_prefix_ && after_special && !special &&
        absl::StartsWith(piece, " ")) {
      piece.remove_prefix(1);  // the space Encode put in front of this text
    }
    out.append(piece.data(), piece.size());
    after_special = special;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// GGUF metadata

namespace {

// An optional token id key: absent -> `fallback` (or -1 when the vocabulary of n_vocab
// tokens is too small for it); present -> a value that fits int32 (Create checks range).
absl::Status ReadTokenId(const GgufFile& file, absl::string_view key, int32_t fallback,
                         size_t n_vocab, int32_t* out) {
  if (file.Find(key) == nullptr) {
    *out = fallback >= 0 && static_cast<size_t>(fallback) < n_vocab ? fallback : -1;
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> v = file.GetInt(key);
  if (!v.ok()) return v.status();
  if (*v < -1 || *v > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s = %d is not a token id", file.name(), key, *v));
  }
  *out = static_cast<int32_t>(*v);
  return absl::OkStatus();
}

absl::Status ReadBool(const GgufFile& file, absl::string_view key, bool fallback, bool* out) {
  if (file.Find(key) == nullptr) {
    *out = fallback;
    return absl::OkStatus();
  }
  absl::StatusOr<bool> v = file.GetBool(key);
  if (!v.ok()) return v.status();
  *out = *v;
  return absl::OkStatus();
}

bool IsLlama3Family(absl::string_view pre) {
  const PreTokenizerSpec* spec = FindPreTokenizer(pre);
  return spec != nullptr && spec->regexes.size() == 1 && spec->regexes[0] == kLlama3Regex &&
         spec->ignore_merges;
}

}  // namespace

absl::StatusOr<TokenizerData> TokenizerDataFromGguf(const GgufFile& file) {
  TokenizerData data;
  absl::StatusOr<std::string> model = file.GetString("tokenizer.ggml.model");
  if (!model.ok()) return model.status();
  data.model = *std::move(model);
  if (data.model != "gpt2" && data.model != "llama") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: unsupported tokenizer model '%s' (tokenizer.ggml.model); supported: gpt2, llama",
        file.name(), data.model));
  }
  const bool spm = data.model == "llama";
  if (file.Find("tokenizer.ggml.pre") != nullptr) {
    absl::StatusOr<std::string> pre = file.GetString("tokenizer.ggml.pre");
    if (!pre.ok()) return pre.status();
    data.pre = *std::move(pre);
  }
  absl::StatusOr<const std::vector<std::string>*> tokens =
      file.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  data.tokens = **tokens;
  if (file.Find("tokenizer.ggml.scores") != nullptr) {
    absl::StatusOr<std::vector<float>> scores = file.GetFloatArray("tokenizer.ggml.scores");
    if (!scores.ok()) return scores.status();
    data.scores = *std::move(scores);
  }
  if (file.Find("tokenizer.ggml.token_type") != nullptr) {
    absl::StatusOr<std::vector<int64_t>> types = file.GetIntArray("tokenizer.ggml.token_type");
    if (!types.ok()) return types.status();
    data.token_types.reserve(types->size());
    for (size_t i = 0; i < types->size(); ++i) {
      const int64_t t = (*types)[i];
      if (t < INT32_MIN || t > INT32_MAX) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: tokenizer.ggml.token_type[%d] = %d is not a token type", file.name(), i, t));
      }
      data.token_types.push_back(static_cast<int32_t>(t));
    }
  }
  if (file.Find("tokenizer.ggml.merges") != nullptr) {
    absl::StatusOr<const std::vector<std::string>*> merges =
        file.GetStringArray("tokenizer.ggml.merges");
    if (!merges.ok()) return merges.status();
    data.merges = **merges;
  }
  const size_t n = data.tokens.size();
  absl::Status s;
  if (!(s = ReadTokenId(file, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n, &data.bos_id))
           .ok() ||
      !(s = ReadTokenId(file, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n, &data.eos_id))
           .ok() ||
      !(s = ReadTokenId(file, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n,
                        &data.unk_id)).ok() ||
      !(s = ReadTokenId(file, "tokenizer.ggml.padding_token_id", -1, n, &data.pad_id)).ok()) {
    return s;
  }
  const bool default_add_bos = (spm || IsLlama3Family(data.pre)) && data.bos_id >= 0;
  if (!(s = ReadBool(file, "tokenizer.ggml.add_bos_token", default_add_bos, &data.add_bos))
           .ok() ||
      !(s = ReadBool(file, "tokenizer.ggml.add_eos_token", false, &data.add_eos)).ok() ||
      !(s = ReadBool(file, "tokenizer.ggml.add_space_prefix", spm, &data.add_space_prefix))
           .ok()) {
    return s;
  }
  if (file.Find("tokenizer.chat_template") != nullptr) {
    absl::StatusOr<std::string> tmpl = file.GetString("tokenizer.chat_template");
    if (!tmpl.ok()) return tmpl.status();
    data.chat_template = *std::move(tmpl);
  }
  return data;
}

absl::StatusOr<Tokenizer> Tokenizer::FromGguf(const GgufFile& file) {
  absl::StatusOr<TokenizerData> data = TokenizerDataFromGguf(file);
  if (!data.ok()) return data.status();
  absl::StatusOr<Tokenizer> t = Create(*std::move(data));
  if (!t.ok()) {
    return absl::Status(t.status().code(),
                        absl::StrCat(file.name(), ": ", t.status().message()));
  }
  return t;
}

}  // namespace fk
