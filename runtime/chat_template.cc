#include "runtime/chat_template.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fk {
namespace {

constexpr absl::string_view kImStart = "<|im_start|>";
constexpr absl::string_view kImEnd = "<|im_end|>";

// Finds a system prompt written literally inside a Jinja string, as in SmolLM2's
//   {{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, ...<|im_end|>\n' }}
// A system block whose content comes from an expression ('<|im_start|>system\n' +
// message['content']) is not a literal: a bare quote ends the string before <|im_end|>.
// The newline after "system" may be a real newline or the escape \n. Returns "" if none.
std::string FindLiteralSystemPrompt(absl::string_view source) {
  const std::string marker = absl::StrCat(kImStart, "system");
  // Linear in the template's size: the next <|im_end|> is searched for onwards from the
  // last one found, and after a bare quote the search for markers resumes past it (a
  // later marker before that quote would reach the same quote before the same <|im_end|>).
  size_t im_end = 0;
  bool searched = false;
  for (size_t at = source.find(marker); at != absl::string_view::npos;
       at = source.find(marker, at + 1)) {
    size_t start = at + marker.size();
    const absl::string_view after = source.substr(start);
    if (absl::StartsWith(after, "\n")) {
      start += 1;
    } else if (absl::StartsWith(after, "\\n")) {
      start += 2;
    } else {
      continue;
    }
    if (!searched || im_end < start) {
      im_end = source.find(kImEnd, start);
      searched = true;
    }
    if (im_end == absl::string_view::npos) return "";  // none here, none further on
    const absl::string_view rest = source.substr(start, im_end - start);
    const size_t end = rest.size();
    // Undo the Jinja string escapes; a bare quote means the literal ended early.
    std::string prompt;
    bool literal = true;
    size_t i = 0;
    for (; i < end && literal; ++i) {
      const char c = rest[i];
      if (c == '\'' || c == '"') {
        literal = false;
        break;
      } else if (c == '\\' && i + 1 < end) {
        const char e = rest[++i];
        prompt += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        prompt += c;
      }
    }
    if (literal && !prompt.empty()) return prompt;
    if (!literal) at = start + i;  // the quote
  }
  return "";
}

}  // namespace

const char* ChatFormatName(ChatFormat format) {
  switch (format) {
    case ChatFormat::kChatMl:
      return "chatml";
    case ChatFormat::kZephyr:
      return "zephyr";
    case ChatFormat::kLlama2:
      return "llama2";
  }
  return "?";
}

ChatTemplate ChatTemplate::Detect(absl::string_view source, std::string bos_text,
                                  std::string eos_text) {
  ChatTemplate t;
  t.bos_text_ = std::move(bos_text);
  t.eos_text_ = std::move(eos_text);
  if (absl::StrContains(source, kImStart)) {
    t.format_ = ChatFormat::kChatMl;
    t.default_system_prompt_ = FindLiteralSystemPrompt(source);
  } else if (absl::StrContains(source, "<|user|>") &&
             absl::StrContains(source, "<|assistant|>")) {
    t.format_ = ChatFormat::kZephyr;
  } else if (absl::StrContains(source, "[INST]")) {
    t.format_ = ChatFormat::kLlama2;
  } else {
    t.format_ = ChatFormat::kChatMl;
    t.note_ = source.empty()
                  ? "the model has no tokenizer.chat_template; using ChatML"
                  : "tokenizer.chat_template is not ChatML, Zephyr or Llama-2; using ChatML";
  }
  return t;
}

std::string ChatTemplate::Apply(const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) const {
  std::string out;
  switch (format_) {
    case ChatFormat::kChatMl:
      if (!default_system_prompt_.empty() && !messages.empty() &&
          messages[0].role != "system") {
        absl::StrAppend(&out, kImStart, "system\n", default_system_prompt_, kImEnd, "\n");
      }
      for (const ChatMessage& m : messages) {
        absl::StrAppend(&out, kImStart, m.role, "\n", m.content, kImEnd, "\n");
      }
      if (add_generation_prompt) absl::StrAppend(&out, kImStart, "assistant\n");
      break;
    case ChatFormat::kZephyr:
      for (const ChatMessage& m : messages) {
        absl::StrAppend(&out, "<|", m.role, "|>\n", m.content, eos_text_, "\n");
      }
      // The TinyLlama template prints the prompt inside its message loop (loop.last).
      if (add_generation_prompt && !messages.empty()) absl::StrAppend(&out, "<|assistant|>\n");
      break;
    case ChatFormat::kLlama2: {
      // A leading system message is folded into the first user turn; roles are not
      // checked for alternation (the Jinja template raises an exception instead).
      size_t first = 0;
      std::string system_block;
      if (!messages.empty() && messages[0].role == "system") {
        system_block = absl::StrCat("<<SYS>>\n", messages[0].content, "\n<</SYS>>\n\n");
        first = 1;
      }
      for (size_t i = first; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        std::string content = i == first ? system_block + m.content : m.content;
        absl::StripAsciiWhitespace(&content);
        if (m.role == "user") {
          absl::StrAppend(&out, bos_text_, "[INST] ", content, " [/INST]");
        } else if (m.role == "assistant") {
          absl::StrAppend(&out, " ", content, " ", eos_text_);
        }
      }
      break;
    }
  }
  return out;
}

}  // namespace fk
