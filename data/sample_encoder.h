// qtune::SampleEncoder: samples -> token ids and labels. A conversation is rendered by its chat template,
// tokenized once as a whole (so ids equal the model's own tokenization), and every token overlapping a
// trained segment keeps its id as label; all others get -100.
#pragma once

#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/conversation.h"
#include "data/tokenizer.h"

namespace qtune {

constexpr TokenId kIgnoreLabel = -100;

// Which end-of-turn markers are trained (Axolotl's train_on_eos).
enum class TrainOnEos { Turn, Last, All, None };
TrainOnEos parse_train_on_eos(const std::string& value, const std::string& where);

struct MaskingOptions {
  bool train_on_inputs = false;                      // train every token (prompt included)
  std::vector<std::string> roles_to_train = {"assistant"};
  TrainOnEos train_on_eos = TrainOnEos::Turn;        // turn: the end of every trained turn
};

struct TokenizedSample {
  std::vector<TokenId> input_ids;
  std::vector<TokenId> labels;  // kIgnoreLabel where no loss is taken
  std::size_t trained_tokens() const;
};

// One sample in place (in a TokenizedSample or a memory-mapped token cache): `length` ids and labels.
struct SampleView {
  const TokenId* ids = nullptr;
  const TokenId* labels = nullptr;
  std::size_t length = 0;
};

struct TokenizedPair {
  TokenizedSample chosen, rejected;  // labels cover only the answers
};

class SampleEncoder {
 public:
  // `bos_id` >= 0 is prepended to templates that do not write BOS themselves when `add_bos` is set;
  // `eos_id` >= 0 ends completion texts.
  SampleEncoder(const Tokenizer& tokenizer, const ChatTemplate& chat, MaskingOptions options, TokenId bos_id, TokenId eos_id, bool add_bos);

  TokenizedSample encode(const Conversation& conversation) const;
  TokenizedSample encode(const CompletionText& text) const;
  TokenizedPair encode(const PreferencePair& pair) const;

  // Rendered text and per-token labels for one conversation: `trained_from` says from which message
  // on content may be trained (preference answers), messages before it are prompt.
  TokenizedSample encode_messages(const std::vector<Message>& messages, std::size_t trained_from) const;

 private:
  // Its per-message "train" flag, else whether its role is in roles_to_train.
  bool message_trained(const Message& message) const;
  bool segment_trained(const TemplateSegment& segment, const std::vector<Message>& messages, std::size_t trained_from,
                       int last_trained_message) const;

  const Tokenizer& tokenizer_;
  const ChatTemplate& chat_;
  MaskingOptions options_;
  TokenId bos_id_, eos_id_;
  bool add_bos_;
};

}  // namespace qtune
