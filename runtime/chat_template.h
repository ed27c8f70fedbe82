// Chat templates without a Jinja engine: recognizes the family of a model's
// `tokenizer.chat_template` by its markers and renders conversations in that family's
// format, reproducing what the Jinja source would print.
//
//   ChatML (the template contains "<|im_start|>"), e.g. SmolLM2, Qwen2:
//     <|im_start|>system\n...<|im_end|>\n<|im_start|>user\n...<|im_end|>\n
//     and, for a generation prompt, <|im_start|>assistant\n
//     A default system prompt written literally in the template (SmolLM2: "You are a
//     helpful AI assistant named SmolLM, trained by Hugging Face") is read from the
//     template and inserted when the first message is not a system message.
//   Zephyr ("<|user|>" and "<|assistant|>"), e.g. TinyLlama-Chat:
//     <|system|>\n...EOS\n<|user|>\n...EOS\n and, for a generation prompt, <|assistant|>\n
//   Llama-2 ("[INST]"):
//     BOS[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant EOS BOS[INST] ...
//     (contents stripped of surrounding ASCII whitespace; no generation prompt).
// Anything else (or no template at all) is rendered as ChatML and note() says why.
#ifndef RUNTIME_CHAT_TEMPLATE_H_
#define RUNTIME_CHAT_TEMPLATE_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace fk {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant"
  std::string content;
};

enum class ChatFormat { kChatMl, kZephyr, kLlama2 };

const char* ChatFormatName(ChatFormat format);

class ChatTemplate {
 public:
  ChatTemplate() = default;  // ChatML, no default system prompt, empty note

  // `source`: the Jinja text of tokenizer.chat_template (may be empty). `bos_text` and
  // `eos_text` are the texts of the model's BOS/EOS tokens (Zephyr and Llama-2 print them).
  static ChatTemplate Detect(absl::string_view source, std::string bos_text,
                             std::string eos_text);

  ChatFormat format() const { return format_; }
  // Empty when the template was recognized; otherwise why ChatML was chosen.
  const std::string& note() const { return note_; }
  // ChatML only: the system prompt the template inserts when none is given ("" if none).
  const std::string& default_system_prompt() const { return default_system_prompt_; }

  std::string Apply(const std::vector<ChatMessage>& messages,
                    bool add_generation_prompt) const;

 private:
  ChatFormat format_ = ChatFormat::kChatMl;
  std::string note_;
  std::string default_system_prompt_;
  std::string bos_text_;
  std::string eos_text_;
};

}  // namespace fk

#endif  // RUNTIME_CHAT_TEMPLATE_H_
