// Masking by segment overlap.
#include "data/sample_encoder.h"

#include <algorithm>

#include "core/error.h"

namespace qtune {

TrainOnEos parse_train_on_eos(const std::string& value, const std::string& where) {
  if (value == "turn") return TrainOnEos::Turn;
  if (value == "last") return TrainOnEos::Last;
  if (value == "all") return TrainOnEos::All;
  if (value == "none") return TrainOnEos::None;
  input_error("{}: train_on_eos must be turn, last, all or none (got '{}')", where, value);
}

std::size_t TokenizedSample::trained_tokens() const {
  return static_cast<std::size_t>(std::count_if(labels.begin(), labels.end(), [](TokenId l) { return l != kIgnoreLabel; }));
}

SampleEncoder::SampleEncoder(const Tokenizer& tokenizer, const ChatTemplate& chat, MaskingOptions options, TokenId bos_id,
                             TokenId eos_id, bool add_bos)
    : tokenizer_(tokenizer), chat_(chat), options_(std::move(options)), bos_id_(bos_id), eos_id_(eos_id), add_bos_(add_bos) {}

bool SampleEncoder::message_trained(const Message& message) const {
  const auto& roles = options_.roles_to_train;
  return message.train.value_or(std::find(roles.begin(), roles.end(), message.role) != roles.end());
}

bool SampleEncoder::segment_trained(const TemplateSegment& segment, const std::vector<Message>& messages, std::size_t trained_from,
                                    int last_trained_message) const {
  if (options_.train_on_inputs && trained_from == 0) return true;
  if (segment.kind == SegmentKind::Scaffold || segment.message < 0) return false;
  if (static_cast<std::size_t>(segment.message) < trained_from) return false;
  const Message& message = messages[segment.message];
  const bool role_trained = message_trained(message);
  if (segment.kind == SegmentKind::Content) return role_trained;
  switch (options_.train_on_eos) {
    case TrainOnEos::Turn: return role_trained;
    case TrainOnEos::Last: return segment.message == last_trained_message;
    case TrainOnEos::All: return true;
    case TrainOnEos::None: return false;
  }
  return false;
}

TokenizedSample SampleEncoder::encode_messages(const std::vector<Message>& messages, std::size_t trained_from) const {
  const auto segments = chat_.render(messages, false);
  // The last message whose end of turn train_on_eos "last" keeps.
  int last_trained_message = -1;
  for (const auto& s : segments)
    if (s.kind == SegmentKind::EndOfTurn && s.message >= static_cast<int>(trained_from)) {
      if (message_trained(messages[s.message])) last_trained_message = s.message;
    }

  // Byte ranges of the trained segments in the rendered text.
  std::string text;
  std::vector<std::pair<std::size_t, std::size_t>> trained;
  for (const auto& s : segments) {
    if (segment_trained(s, messages, trained_from, last_trained_message)) {
      if (!trained.empty() && trained.back().second == text.size()) trained.back().second += s.text.size();
      else trained.emplace_back(text.size(), text.size() + s.text.size());
    }
    text += s.text;
  }

  Encoding encoding = tokenizer_.encode_with_offsets(text, true);
  TokenizedSample sample;
  const bool prepend_bos = add_bos_ && bos_id_ >= 0 && !chat_.writes_bos();
  if (prepend_bos) {
    sample.input_ids.push_back(bos_id_);
    sample.labels.push_back(options_.train_on_inputs && trained_from == 0 ? bos_id_ : kIgnoreLabel);
  }
  // A token is trained when its span [offset, next offset) overlaps a trained range.
  std::size_t range = 0;
  for (std::size_t k = 0; k < encoding.ids.size(); ++k) {
    const std::size_t begin = encoding.offsets[k];
    const std::size_t end = std::max(begin + 1, k + 1 < encoding.ids.size() ? std::size_t(encoding.offsets[k + 1]) : text.size());
    while (range < trained.size() && trained[range].second <= begin) ++range;
    const bool is_trained = range < trained.size() && trained[range].first < end;
    sample.input_ids.push_back(encoding.ids[k]);
    sample.labels.push_back(is_trained ? encoding.ids[k] : kIgnoreLabel);
  }
  return sample;
}

TokenizedSample SampleEncoder::encode(const Conversation& conversation) const { return encode_messages(conversation.messages, 0); }

TokenizedSample SampleEncoder::encode(const CompletionText& completion) const {
  TokenizedSample sample;
  if (add_bos_ && bos_id_ >= 0) sample.input_ids.push_back(bos_id_);
  auto ids = tokenizer_.encode(completion.text, false);
  sample.input_ids.insert(sample.input_ids.end(), ids.begin(), ids.end());
  if (eos_id_ >= 0) sample.input_ids.push_back(eos_id_);
  sample.labels = sample.input_ids;
  if (add_bos_ && bos_id_ >= 0) sample.labels[0] = kIgnoreLabel;  // nothing predicts the first token
  return sample;
}

TokenizedPair SampleEncoder::encode(const PreferencePair& pair) const {
  auto with = [&](const std::vector<Message>& answer) {
    std::vector<Message> messages = pair.prompt;
    messages.insert(messages.end(), answer.begin(), answer.end());
    return encode_messages(messages, pair.prompt.size());
  };
  return {with(pair.chosen), with(pair.rejected)};
}

}  // namespace qtune
