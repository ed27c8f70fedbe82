// Tokenizer and chat template against llama.cpp (golden/tokenizer_*.json, written by
// tools/make_tokenizer_golden through llama-cpp-python and jinja2).
#include "runtime/tokenizer.h"

#include <cstdint>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/chat_template.h"
#include "runtime/gguf.h"
#include "runtime/model_testing.h"

namespace fk {
namespace {

using nlohmann::json;

json ReadJson(const std::string& name) {
  const std::string path = GoldenPath(name);
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// entry[key] as UTF-8 text, or the bytes of entry[key + "_hex"].
std::string Bytes(const json& entry, const std::string& key) {
  if (entry.contains(key)) return entry[key].get<std::string>();
  return absl::HexStringToBytes(entry[key + "_hex"].get<std::string>());
}

std::vector<int32_t> Ids(const json& j) { return j.get<std::vector<int32_t>>(); }

std::string Printable(const std::string& s) { return absl::CHexEscape(s.substr(0, 80)); }

// FNV-1a 64 over (u32 little-endian length, bytes) of every piece, as the golden script.
std::string PiecesHash(const Tokenizer& t) {
  uint64_t h = 0xcbf29ce484222325ull;
  const auto mix = [&](uint8_t b) { h = (h ^ b) * 0x100000001b3ull; };
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    const std::string& p = t.TokenToPiece(id);
    const uint32_t n = static_cast<uint32_t>(p.size());
    for (int i = 0; i < 4; ++i) mix(static_cast<uint8_t>(n >> (8 * i)));
    for (char c : p) mix(static_cast<uint8_t>(c));
  }
  return absl::StrFormat("%016x", h);
}

std::vector<int32_t> EogIds(const Tokenizer& t) {
  std::vector<int32_t> out;
  for (int32_t id = 0; id < t.vocab_size(); ++id) {
    if (t.IsEog(id)) out.push_back(id);
  }
  return out;
}

std::vector<ChatMessage> Messages(const json& j) {
  std::vector<ChatMessage> out;
  for (const json& m : j) out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  return out;
}

// ---- SmolLM2 (byte-level BPE, 'smollm' pre-tokenizer) --------------------------------------

class SmolLm2Tokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    golden_ = new json(ReadJson("tokenizer_smollm2.json"));
    absl::StatusOr<GgufFile> file = GgufFile::Open(SmolLm2Path());
    ASSERT_TRUE(file.ok()) << file.status() << " (tools/bazel fetches the model: tools/fetch_model)";
    file_ = new GgufFile(*std::move(file));
    absl::StatusOr<TokenizerData> data = TokenizerDataFromGguf(*file_);
    ASSERT_TRUE(data.ok()) << data.status();
    data_ = new TokenizerData(*data);
    absl::StatusOr<Tokenizer> t = Tokenizer::Create(*std::move(data));
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = new Tokenizer(*std::move(t));
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete data_;
    delete file_;
    delete golden_;
    tok_ = nullptr;
    data_ = nullptr;
    file_ = nullptr;
    golden_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(tok_, nullptr) << "the tokenizer did not load"; }

  static json* golden_;
  static GgufFile* file_;
  static TokenizerData* data_;
  static Tokenizer* tok_;
};
json* SmolLm2Tokenizer::golden_ = nullptr;
GgufFile* SmolLm2Tokenizer::file_ = nullptr;
TokenizerData* SmolLm2Tokenizer::data_ = nullptr;
Tokenizer* SmolLm2Tokenizer::tok_ = nullptr;

TEST_F(SmolLm2Tokenizer, MetadataMatchesLlamaCpp) {
  const json& g = *golden_;
  EXPECT_EQ(data_->model, "gpt2");
  EXPECT_EQ(data_->pre, "smollm");
  EXPECT_EQ(tok_->vocab_size(), g["vocab_size"].get<int32_t>());
  EXPECT_EQ(tok_->bos_id(), g["bos_id"].get<int32_t>());
  EXPECT_EQ(tok_->eos_id(), g["eos_id"].get<int32_t>());
  EXPECT_FALSE(tok_->add_bos());
  EXPECT_EQ(EogIds(*tok_), Ids(g["eog_ids"]));
  EXPECT_EQ(PiecesHash(*tok_), g["pieces_fnv1a64"].get<std::string>())
      << "some token renders differently from llama_token_to_piece";
}

TEST_F(SmolLm2Tokenizer, EncodeMatchesLlamaCpp) {
  int checked = 0;
  for (const json& c : (*golden_)["cases"]) {
    const std::string text = Bytes(c, "text");
    const std::string name = c["name"].get<std::string>();
    EXPECT_EQ(tok_->Encode(text, false, false), Ids(c["plain"])) << name << ": " << Printable(text);
    EXPECT_EQ(tok_->Encode(text, false, true), Ids(c["special"])) << name;
    EXPECT_EQ(tok_->Encode(text, true, true), Ids(c["add_special"])) << name;
    ++checked;
  }
  EXPECT_GE(checked, 30);
}

TEST_F(SmolLm2Tokenizer, DecodeMatchesLlamaCppPieces) {
  for (const json& c : (*golden_)["cases"]) {
    const std::string name = c["name"].get<std::string>();
    EXPECT_EQ(tok_->Decode(Ids(c["special"])), Bytes(c, "special_pieces")) << name;
  }
}

TEST_F(SmolLm2Tokenizer, RoundTripsUtf8Text) {
  // Valid UTF-8 made only of bytes the vocabulary has comes back byte for byte.
  int round_trips = 0;
  for (const json& c : (*golden_)["cases"]) {
    if (!c.contains("text")) continue;  // not valid UTF-8
    const std::string text = c["text"].get<std::string>();
    if (Bytes(c, "special_pieces") != text) continue;  // llama.cpp drops bytes here too
    EXPECT_EQ(tok_->Decode(tok_->Encode(text, false, false)), text) << c["name"];
    ++round_trips;
  }
  EXPECT_GE(round_trips, 25);
}

TEST_F(SmolLm2Tokenizer, OtherPreTokenizersMatchLlamaCpp) {
  const json& variants = (*golden_)["pre_variants"];
  ASSERT_GE(variants.size(), 4u);
  for (const auto& [pre, ids] : variants.items()) {
    TokenizerData data = *data_;
    data.pre = pre;
    absl::StatusOr<Tokenizer> t = Tokenizer::Create(data);
    ASSERT_TRUE(t.ok()) << pre << ": " << t.status();
    const json& cases = (*golden_)["cases"];
    ASSERT_EQ(ids.size(), cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      EXPECT_EQ(t->Encode(Bytes(cases[i], "text"), false, false), Ids(ids[i]))
          << "pre " << pre << ", case " << cases[i]["name"];
    }
  }
}

TEST_F(SmolLm2Tokenizer, ChatTemplateMatchesJinjaAndIds) {
  EXPECT_EQ(tok_->chat_template().format(), ChatFormat::kChatMl);
  EXPECT_EQ(tok_->chat_template().default_system_prompt(),
            "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  int n = 0;
  for (const json& chat : (*golden_)["chats"]) {
    const std::string text =
        tok_->ApplyChatTemplate(Messages(chat["messages"]), chat["add_generation_prompt"].get<bool>());
    EXPECT_EQ(text, chat["text"].get<std::string>()) << chat["name"];
    EXPECT_EQ(tok_->Encode(text, false, true), Ids(chat["ids"])) << chat["name"];
    ++n;
  }
  EXPECT_GE(n, 3);
}

TEST_F(SmolLm2Tokenizer, UnknownPreTokenizerIsAnError) {
  TokenizerData data = *data_;
  data.pre = "no-such-pre";
  absl::StatusOr<Tokenizer> t = Tokenizer::Create(data);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("no-such-pre"), std::string::npos) << t.status();
}

// ---- SentencePiece-style ('llama') ---------------------------------------------------------

TEST(SpmTokenizer, MatchesLlamaCpp) {
  const json g = ReadJson("tokenizer_spm.json");
  TokenizerData data;
  data.model = "llama";
  data.tokens = g["tokens"].get<std::vector<std::string>>();
  data.scores = g["scores"].get<std::vector<float>>();
  data.token_types = g["token_types"].get<std::vector<int32_t>>();
  data.bos_id = g["bos_id"];
  data.eos_id = g["eos_id"];
  data.unk_id = g["unk_id"];
  data.add_bos = g["add_bos"];
  data.add_space_prefix = true;
  absl::StatusOr<Tokenizer> t = Tokenizer::Create(data);
  ASSERT_TRUE(t.ok()) << t.status();
  data.add_space_prefix = false;
  absl::StatusOr<Tokenizer> no_prefix = Tokenizer::Create(data);
  ASSERT_TRUE(no_prefix.ok()) << no_prefix.status();

  EXPECT_EQ(EogIds(*t), Ids(g["eog_ids"]));
  EXPECT_EQ(PiecesHash(*t), g["pieces_fnv1a64"].get<std::string>());
  int n = 0;
  for (const json& c : g["cases"]) {
    const std::string text = Bytes(c, "text");
    const std::string name = c["name"].get<std::string>();
    EXPECT_EQ(t->Encode(text, false, false), Ids(c["plain"])) << name;
    EXPECT_EQ(t->Encode(text, false, true), Ids(c["special"])) << name;
    EXPECT_EQ(t->Encode(text, true, true), Ids(c["add_special"])) << name;
    EXPECT_EQ(no_prefix->Encode(text, false, true), Ids(c["no_space_prefix"])) << name;
    // The pieces are llama.cpp's, byte for byte.
    std::string pieces;
    for (int32_t id : Ids(c["special"])) pieces += t->TokenToPiece(id);
    EXPECT_EQ(pieces, Bytes(c, "special_pieces")) << name;
    if (c.contains("text") && name != "escaped space in text") {
      // Bytes survive through <0xXX> tokens, so any text comes back as it was, except a
      // literal U+2581 (SentencePiece's space), which decodes as a space in llama.cpp too.
      EXPECT_EQ(t->Decode(t->Encode(text, false, false)), text) << name;
    }
    ++n;
  }
  EXPECT_GE(n, 10);
}

// ---- Gemma 3 (SentencePiece, 262,144 tokens, byte fallback) ------------------------------

// The real Gemma 3 270M vocabulary against llama.cpp (golden/tokenizer_gemma3.json): the
// same strings as SmolLM2's plus Gemma-specific ones (runs of spaces, tabs and newlines
// that are user-defined tokens, HTML tags, turn markers, byte fallback), the EOG set and
// every piece.
TEST(Gemma3Tokenizer, MatchesLlamaCpp) {
  const json g = ReadJson("tokenizer_gemma3.json");
  absl::StatusOr<GgufFile> file = GgufFile::Open(Gemma3Path());
  ASSERT_TRUE(file.ok()) << file.status() << " (tools/bazel fetches the model: tools/fetch_model)";
  ASSERT_EQ(static_cast<int64_t>(file->file_size()), g["model_size"].get<int64_t>())
      << Gemma3Path() << " is not the file the golden data was made from";
  absl::StatusOr<TokenizerData> data = TokenizerDataFromGguf(*file);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->model, "llama");
  EXPECT_FALSE(data->add_space_prefix);
  EXPECT_TRUE(data->add_bos);
  absl::StatusOr<Tokenizer> t = Tokenizer::Create(*std::move(data));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->vocab_size(), g["vocab_size"].get<int32_t>());
  EXPECT_EQ(t->bos_id(), g["bos_id"].get<int32_t>());
  EXPECT_EQ(t->eos_id(), g["eos_id"].get<int32_t>());
  EXPECT_EQ(EogIds(*t), Ids(g["eog_ids"]));
  EXPECT_EQ(PiecesHash(*t), g["pieces_fnv1a64"].get<std::string>())
      << "some token renders differently from llama_token_to_piece";
  int n = 0;
  for (const json& c : g["cases"]) {
    const std::string text = Bytes(c, "text");
    const std::string name = c["name"].get<std::string>();
    EXPECT_EQ(t->Encode(text, false, false), Ids(c["plain"])) << name << ": " << Printable(text);
    EXPECT_EQ(t->Encode(text, false, true), Ids(c["special"])) << name;
    EXPECT_EQ(t->Encode(text, true, true), Ids(c["add_special"])) << name;
    EXPECT_EQ(t->Decode(Ids(c["special"])), Bytes(c, "special_pieces")) << name;
    ++n;
  }
  EXPECT_GE(n, 40);
}

// ---- Chat templates rendered by jinja2 -----------------------------------------------------

TEST(ChatTemplate, ZephyrAndLlama2MatchJinja) {
  const json g = ReadJson("tokenizer_chat.json");
  std::set<std::string> families;
  for (const json& tmpl : g["templates"]) {
    const std::string family = tmpl["family"].get<std::string>();
    const ChatTemplate t = ChatTemplate::Detect(tmpl["template"].get<std::string>(),
                                                tmpl["bos"].get<std::string>(),
                                                tmpl["eos"].get<std::string>());
    EXPECT_EQ(ChatFormatName(t.format()), family);
    EXPECT_TRUE(t.note().empty()) << t.note();
    for (const json& r : tmpl["renders"]) {
      EXPECT_EQ(t.Apply(Messages(r["messages"]), r["add_generation_prompt"].get<bool>()),
                r["text"].get<std::string>())
          << family << " / " << r["name"];
    }
    families.insert(family);
  }
  EXPECT_EQ(families, (std::set<std::string>{"zephyr", "llama2"}));
}

TEST(ChatTemplate, UnknownTemplateFallsBackToChatMlWithANote) {
  const ChatTemplate t = ChatTemplate::Detect("{{ messages }}", "<s>", "</s>");
  EXPECT_EQ(t.format(), ChatFormat::kChatMl);
  EXPECT_FALSE(t.note().empty());
  EXPECT_EQ(t.Apply({{"user", "hi"}}, true), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

// ---- Bad metadata -------------------------------------------------------------------------

TokenizerData SmallBpe() {
  TokenizerData d;
  d.model = "gpt2";
  d.pre = "gpt-2";
  d.tokens = {"a", "b", "ab"};
  d.merges = {"a b"};
  return d;
}

void ExpectError(const TokenizerData& d, const std::string& needle) {
  absl::StatusOr<Tokenizer> t = Tokenizer::Create(d);
  ASSERT_FALSE(t.ok()) << "expected an error mentioning " << needle;
  EXPECT_NE(t.status().message().find(needle), std::string::npos) << t.status();
}

TEST(TokenizerErrors, NameWhatIsWrong) {
  ASSERT_TRUE(Tokenizer::Create(SmallBpe()).ok());
  EXPECT_EQ(Tokenizer::Create(SmallBpe())->Encode("ab", false, false), std::vector<int32_t>{2});
  TokenizerData d = SmallBpe();
  d.model = "wordpiece";
  ExpectError(d, "wordpiece");
  d = SmallBpe();
  d.tokens.clear();
  ExpectError(d, "tokenizer.ggml.tokens");
  d = SmallBpe();
  d.tokens.push_back("a");
  ExpectError(d, "repeats");
  d = SmallBpe();
  d.token_types = {1, 1};
  ExpectError(d, "tokenizer.ggml.token_type");
  d = SmallBpe();
  d.token_types = {1, 1, 9};
  ExpectError(d, "token type");
  d = SmallBpe();
  d.merges = {"a c"};
  ExpectError(d, "'c'");
  d = SmallBpe();
  d.merges = {"ab"};
  ExpectError(d, "tokenizer.ggml.merges[0]");
  d = SmallBpe();
  d.merges.clear();
  ExpectError(d, "merges");
  d = SmallBpe();
  d.bos_id = 3;
  ExpectError(d, "bos_token_id = 3");
  d = SmallBpe();
  d.add_bos = true;
  ExpectError(d, "add_bos_token");
  d = SmallBpe();
  d.model = "llama";
  ExpectError(d, "scores");
}

// A GGUF without tokenizer metadata, or with a key of the wrong type: errors name the key.
TEST(TokenizerErrors, FromGgufNamesTheKey) {
  GgufWriter w;
  w.Add("general.architecture", GgufValue::String("llama"));
  absl::StatusOr<std::string> bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<GgufFile> file = GgufFile::FromBuffer(bytes->data(), bytes->size(), "no-tok.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<Tokenizer> t = Tokenizer::FromGguf(*file);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.ggml.model"), std::string::npos) << t.status();

  w.Add("tokenizer.ggml.model", GgufValue::String("gpt2"));
  w.Add("tokenizer.ggml.tokens", GgufValue::StringArray({"a", "b", "ab"}));
  w.Add("tokenizer.ggml.merges", GgufValue::StringArray({"a b"}));
  w.Add("tokenizer.ggml.bos_token_id", GgufValue::String("one"));
  bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok());
  file = GgufFile::FromBuffer(bytes->data(), bytes->size(), "bad-bos.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  t = Tokenizer::FromGguf(*file);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("tokenizer.ggml.bos_token_id"), std::string::npos)
      << t.status();

  w.Add("tokenizer.ggml.bos_token_id", GgufValue::Uint32(0));
  w.Add("tokenizer.ggml.pre", GgufValue::String("gpt-2"));
  bytes = w.ToBytes();
  ASSERT_TRUE(bytes.ok());
  file = GgufFile::FromBuffer(bytes->data(), bytes->size(), "ok.gguf");
  ASSERT_TRUE(file.ok()) << file.status();
  t = Tokenizer::FromGguf(*file);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->bos_id(), 0);
  EXPECT_EQ(t->Encode("abba", false, false), (std::vector<int32_t>{2, 1, 0}));
}

}  // namespace
}  // namespace fk
