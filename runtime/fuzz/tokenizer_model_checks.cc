#include "runtime/fuzz/tokenizer_model_checks.h"

#include <algorithm>
#include <climits>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "kernels/kernel_api.h"
#include "runtime/chat_template.h"
#include "runtime/model.h"
#include "runtime/tokenizer.h"

namespace fk {
namespace fuzz {
namespace {

// Stray bytes, truncated sequences, an overlong form, a surrogate, a NUL.
constexpr char kInvalidUtf8[] =
    "\xFF\xFE abc \xC3\x28 \xE2\x82 \xF0\x9F\x98 \xED\xA0\x80 \xC0\xAF \x80\xBF end"
    "\xF8\x88\x80\x80\x80 \x00nul";

// The fixed texts every tokenizer encodes.
std::vector<std::string> FixedTexts() {
  return {
      // ASCII: contractions, digits, punctuation, tabs, newlines, double spaces.
      "Hello, world! It's 2024: the 3rd test's 12345 line -- ok?\nNew\tline  two  spaces.",
      // UTF-8 multibyte: 2-, 3- and 4-byte characters, U+2581 itself, no-break space.
      "h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x99\x82 "
      "\xCE\x95\xCE\xBB \xE2\x96\x81sp \xC2\xA0nb\xE3\x80\x80x",
      // Invalid UTF-8.
      std::string(kInvalidUtf8, sizeof(kInvalidUtf8) - 1),
      // Special-token texts of several families, glued to text and to each other.
      "<|im_start|>user\nhi<|im_end|>\n<s>[INST] x [/INST]</s><|endoftext|><unk>"
      "<|begin_of_text|><|eot_id|><tool><|im_start|><|im_start|>",
      // A long whitespace run of several kinds, then a word, then newlines.
      std::string(300, ' ') + "x" + std::string(40, '\n') + " \t \r\n\xE3\x80\x80 y" +
          std::string(60, '\t'),
      "",
  };
}

struct Lcg {
  uint64_t s;
  uint64_t Next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 11;
  }
};

bool IsSpecialType(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
}

class Checker {
 public:
  Checker(const GgufFile& file, const CheckOptions& options, CheckStats* stats)
      : file_(file), name_(file.name()), options_(options), stats_(*stats) {}

  std::vector<std::string> Run(size_t* max_output_bytes) {
    CheckTokenizer();
    CheckModel();
    *max_output_bytes = max_output_;
    return std::move(failures_);
  }

 private:
  void Fail(const std::string& what) {
    if (failures_.size() < 8) failures_.push_back(what);
  }
  void Output(size_t bytes) { max_output_ = std::max(max_output_, bytes); }

  // An error from a loader: it must name the file.
  void LoaderError(const char* what, const absl::Status& s) {
    const std::string msg(s.message());
    if (s.ok() || !absl::StartsWith(msg, name_ + ": ")) {
      Fail(absl::StrCat(what, " error does not name the file: ", msg));
    }
    stats_.error_kinds[ErrorBucket(msg, name_)]++;
  }

  // ---- tokenizer ------------------------------------------------------------------------

  void CheckTokenizer() {
    absl::StatusOr<Tokenizer> t = Tokenizer::FromGguf(file_);
    if (!t.ok()) {
      stats_.tokenizer_errors++;
      LoaderError("Tokenizer::FromGguf", t.status());
      if (!absl::StrContains(t.status().message(), "tokenizer.")) {
        Fail(absl::StrCat("Tokenizer::FromGguf error does not name the key: ",
                          t.status().message()));
      }
      return;
    }
    stats_.tokenizer_ok++;
    const Tokenizer& tok = *t;
    const int32_t n = tok.vocab_size();
    absl::StatusOr<const std::vector<std::string>*> tokens =
        file_.GetStringArray("tokenizer.ggml.tokens");
    if (!tokens.ok() || static_cast<size_t>(n) != (*tokens)->size()) {
      Fail(absl::StrCat("vocab_size ", n, " differs from tokenizer.ggml.tokens"));
      return;
    }
    for (int32_t id : {tok.bos_id(), tok.eos_id(), tok.unk_id(), tok.pad_id()}) {
      if (id < -1 || id >= n) Fail(absl::StrCat("special id ", id, " outside the vocabulary"));
    }
    // Every id: a text, and a piece no longer than it.
    std::vector<int32_t> specials;
    for (int32_t id = 0; id < n; ++id) {
      const std::string& text = tok.token_text(id);
      if (text.empty() || tok.TokenToPiece(id).size() > text.size()) {
        Fail(absl::StrCat("token ", id, ": text of ", text.size(), " bytes, piece of ",
                          tok.TokenToPiece(id).size()));
      }
      if (IsSpecialType(tok.token_type(id)) && specials.size() < 4) specials.push_back(id);
    }
    // Ids outside the vocabulary.
    for (int64_t id : {int64_t{INT32_MIN}, int64_t{-2}, int64_t{-1}, int64_t{n},
                       int64_t{n} + 1, int64_t{INT32_MAX}}) {
      if (id > INT32_MAX) continue;
      const int32_t i = static_cast<int32_t>(id);
      if (!tok.TokenToPiece(i).empty() || !tok.token_text(i).empty() ||
          tok.token_type(i) != TokenType::kUndefined || tok.IsEog(i)) {
        Fail(absl::StrCat("id ", i, " outside a vocabulary of ", n, " has a piece/text/type"));
      }
    }

    std::vector<std::string> texts = FixedTexts();
    // Texts made of the vocabulary's own tokens (at most 12, each cut to 64 bytes).
    std::string own;
    const int32_t step = std::max<int32_t>(1, n / 12);
    for (int32_t id = 0; id < n; id += step) own += tok.token_text(id).substr(0, 64);
    texts.push_back(own);
    for (size_t i = 0; i < texts.size(); ++i) {
      for (int mode = 0; mode < 4; ++mode) {
        const bool add_special = mode & 1, parse_special = mode & 2;
        if (options_.encode_modes == 1 && add_special != parse_special) continue;
        if (options_.encode_modes == 2 && add_special == parse_special) continue;
        EncodeAndDecode(tok, texts[i], add_special, parse_special, /*twice=*/i == 0);
      }
    }
    // Each special token's own text is that token (user-defined ones even without
    // parse_special).
    for (int32_t id : specials) {
      const std::string& text = tok.token_text(id);
      const std::vector<int32_t> ids = tok.Encode(text, false, true);
      stats_.encodes++;
      if (ids.size() != 1 || ids[0] != id) {
        Fail(absl::StrCat("special token ", id, " does not encode to itself (", ids.size(),
                          " ids)"));
      }
      if (tok.token_type(id) == TokenType::kUserDefined) {
        const std::vector<int32_t> plain = tok.Encode(text, false, false);
        stats_.encodes++;
        if (plain != ids) Fail(absl::StrCat("user-defined token ", id, " not recognized"));
      }
    }
    // Random ids, out-of-range ones included.
    Lcg rng{options_.seed * 0x9E3779B97F4A7C15ull + 7};
    std::vector<int32_t> random;
    for (int k = 0; k < 24; ++k) {
      const uint64_t r = rng.Next();
      switch (r % 4) {
        case 0: random.push_back(static_cast<int32_t>((r >> 8) % static_cast<uint64_t>(n))); break;
        case 1: random.push_back(n + static_cast<int32_t>((r >> 8) % 1000)); break;
        case 2: random.push_back(-1 - static_cast<int32_t>((r >> 8) % 1000)); break;
        default: random.push_back(k % 2 ? INT32_MAX : INT32_MIN); break;
      }
    }
    CheckDecode(tok, random);
    CheckDecode(tok, {});

    CheckChatTemplate(tok);
  }

  void EncodeAndDecode(const Tokenizer& tok, const std::string& text, bool add_special,
                       bool parse_special, bool twice) {
    const std::vector<int32_t> ids = tok.Encode(text, add_special, parse_special);
    stats_.encodes++;
    stats_.ids_encoded += static_cast<int64_t>(ids.size());
    Output(ids.size() * sizeof(int32_t));
    const std::string where = absl::StrCat("Encode(text of ", text.size(), " bytes, add_special ",
                                           add_special, ", parse_special ", parse_special, ")");
    if (ids.size() > 6 * text.size() + 5) {
      Fail(absl::StrCat(where, " gave ", ids.size(), " ids"));
    }
    for (int32_t id : ids) {
      if (id < 0 || id >= tok.vocab_size()) {
        Fail(absl::StrCat(where, " gave id ", id, " outside the vocabulary"));
        return;
      }
    }
    if (!add_special && text.empty() && !ids.empty()) Fail(where + " is not empty");
    if (add_special && tok.add_bos() && (ids.empty() || ids.front() != tok.bos_id())) {
      Fail(where + " does not start with BOS");
    }
    if (twice && tok.Encode(text, add_special, parse_special) != ids) {
      Fail(where + " differs between two calls");
    }
    CheckDecode(tok, ids);
  }

  void CheckDecode(const Tokenizer& tok, const std::vector<int32_t>& ids) {
    const std::string text = tok.Decode(ids);
    stats_.decodes++;
    Output(text.size());
    size_t sum = 0;
    for (int32_t id : ids) sum += tok.TokenToPiece(id).size();
    if (text.size() > sum || text.size() + ids.size() < sum) {
      Fail(absl::StrCat("Decode of ", ids.size(), " ids gave ", text.size(),
                        " bytes; the pieces have ", sum));
    }
  }

  void CheckChatTemplate(const Tokenizer& tok) {
    const std::vector<ChatMessage> messages = {
        {"system", "Be brief."},
        {"user", "What is 2+2?"},
        {"assistant", "4."},
        {"user", "And \xC3\xA9t\xC3\xA9?"},
    };
    size_t budget = 64 * (messages.size() + 1) + tok.chat_template().default_system_prompt().size();
    for (const ChatMessage& m : messages) budget += m.role.size() + m.content.size();
    for (int32_t id : {tok.bos_id(), tok.eos_id()}) {
      budget += (messages.size() + 1) * tok.token_text(id).size();
    }
    for (bool gen : {false, true}) {
      const std::string out = tok.ApplyChatTemplate(messages, gen);
      Output(out.size());
      for (const ChatMessage& m : messages) {
        if (!absl::StrContains(out, m.content)) {
          Fail(absl::StrCat("chat template (", ChatFormatName(tok.chat_template().format()),
                            ") drops the ", m.role, " message"));
        }
      }
      if (out.size() > budget) {
        Fail(absl::StrCat("chat template output of ", out.size(), " bytes exceeds ", budget));
      }
    }
  }

  // ---- model --------------------------------------------------------------------------------

  void CheckModel() {
    absl::StatusOr<std::unique_ptr<Model>> m = Model::Load(file_, WeightMode::kNative);
    if (!m.ok()) {
      stats_.model_errors++;
      LoaderError("Model::Load", m.status());
    } else {
      stats_.model_ok++;
      CheckLoadedModel(**m, /*int8=*/options_.int8_path);
    }
    if (!options_.f32_weights) return;
    absl::StatusOr<std::unique_ptr<Model>> f = Model::Load(file_, WeightMode::kF32);
    if (f.ok() != m.ok()) {
      Fail(absl::StrCat("Model::Load: native ", m.ok() ? "OK" : "failed", ", f32 ",
                        f.ok() ? "OK" : std::string(f.status().message())));
    }
    if (!f.ok()) {
      LoaderError("Model::Load (f32)", f.status());
      return;
    }
    stats_.f32_models++;
    CheckLoadedModel(**f, /*int8=*/false);
  }

  void CheckLoadedModel(const Model& model, bool int8) {
    const ModelConfig& c = model.config();
    if (model.token_embd().rows() != c.n_vocab || model.token_embd().cols() != c.n_embd ||
        model.lm_head().rows() != c.n_vocab || model.lm_head().cols() != c.n_embd ||
        static_cast<int64_t>(model.layers().size()) != c.n_layer ||
        static_cast<int64_t>(model.output_norm().size()) != c.n_embd || c.n_vocab < 1) {
      Fail("loaded model has inconsistent shapes");
      return;
    }
    // One step costs about the weights' size; the files here are small, but keep the
    // fuzzer's worst case cheap.
    if (model.weight_memory_bytes() > (size_t{1} << 20)) return;
    RunOptions run;
    run.variant = Variant::kScalar;
    run.path = int8 ? Path::kInt8 : Path::kF32;
    const int64_t ctx = c.n_ctx_train > 0 ? std::min<int64_t>(2, c.n_ctx_train) : 2;
    absl::StatusOr<std::unique_ptr<Session>> s = Session::Create(model, ctx, run, 1);
    if (!s.ok()) {
      stats_.session_errors++;
      stats_.error_kinds[ErrorBucket(std::string(s.status().message()), name_)]++;
      return;
    }
    Session& session = **s;
    const int32_t n_vocab = static_cast<int32_t>(c.n_vocab);
    for (int32_t bad : {n_vocab, -1}) {
      const int32_t token[1] = {bad};
      if (session.Eval(token).ok()) Fail(absl::StrCat("Eval of token ", bad, " succeeded"));
    }
    for (int64_t pos = 0; pos < ctx; ++pos) {
      const int32_t token[1] = {pos == 0 ? 0 : n_vocab - 1};
      const absl::Status st = session.Eval(token);
      if (!st.ok()) {
        Fail(absl::StrCat("forward step at position ", pos, ": ", st.message()));
        return;
      }
      stats_.forward_steps++;
      if (static_cast<int64_t>(session.logits().size()) != c.n_vocab) {
        Fail(absl::StrCat("forward step gave ", session.logits().size(), " logits"));
      }
    }
    const int32_t token[1] = {0};
    if (session.Eval(token).ok()) Fail("Eval past the context succeeded");
  }

  const GgufFile& file_;
  const std::string name_;
  const CheckOptions options_;
  CheckStats& stats_;
  std::vector<std::string> failures_;
  size_t max_output_ = 0;
};

}  // namespace

std::vector<std::string> CheckTokenizerAndModel(const GgufFile& file, const CheckOptions& options,
                                                CheckStats* stats, size_t* max_output_bytes) {
  return Checker(file, options, stats).Run(max_output_bytes);
}

bool HasBpeTokenizer(const GgufFile& file) {
  const GgufValue* v = file.Find("tokenizer.ggml.model");
  return v != nullptr && v->type == GgufValueType::kString && v->s == "gpt2";
}

std::string ErrorBucket(const std::string& message, const std::string& file_name) {
  absl::string_view m = message;
  if (absl::StartsWith(m, file_name + ": ")) m.remove_prefix(file_name.size() + 2);
  std::string out, quoted;
  char quote = 0;
  for (char ch : m) {
    if (out.size() >= 90) break;
    if (quote != 0) {
      if (ch == quote) {
        // Keep metadata keys and tensor names; blank other quoted text (token texts).
        const bool keep = quoted.size() <= 40 && (absl::StartsWith(quoted, "tokenizer.") ||
                                                  absl::StartsWith(quoted, "llama.") ||
                                                  absl::StartsWith(quoted, "general.") ||
                                                  absl::EndsWith(quoted, ".weight"));
        out += keep ? quoted : "";
        out += '\'';
        quote = 0;
        quoted.clear();
      } else {
        quoted += ch;
      }
      continue;
    }
    if (ch == '\'' || ch == '"') {
      quote = ch;
      out += '\'';
    } else if (ch >= '0' && ch <= '9') {
      if (out.empty() || out.back() != '#') out += '#';
    } else {
      out += ch;
    }
  }
  return out;
}

}  // namespace fuzz
}  // namespace fk
