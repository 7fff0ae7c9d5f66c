// read_dataset(): turns a user's JSONL / JSON dataset (alpaca, sharegpt, OpenAI messages, completion text,
// preference pairs) into qtune::Samples, with one-line errors naming file:line.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "data/conversation.h"
#include "data/dataset_spec.h"

namespace qtune {

struct ReadReport {
  std::size_t read = 0;     // samples returned
  std::size_t skipped = 0;  // bad samples skipped (skip_bad_lines: true)
  std::vector<std::string> skip_reasons;  // the first kMaxSkipReasons of them, each "file:line: problem"
  static constexpr std::size_t kMaxSkipReasons = 10;
};

// The text alpaca puts between a non-empty instruction and a non-empty input in the user message (what
// LLaMA-Factory does: "\n".join([instruction, input])).
inline constexpr const char* kAlpacaInputSeparator = "\n";

// Reads every sample of `spec.path` (a file, or a folder's *.jsonl/*.json files in sorted order). A file
// whose first non-space character is '[' is a JSON array of objects, any other is JSON Lines (one object
// per line, blank lines ignored). Sample origins are file:line for JSONL, file:(element index + 1) for
// arrays. `report` is overwritten.
//
// Throws InputError for a missing path, an unsupported file type, a dataset with no samples, and (unless
// spec.skip_bad_lines) the first bad sample: "<file>:<line>: <problem>; <what to fix>", where the problem
// is malformed JSON (with its column), invalid UTF-8, a line that is not an object, a missing or wrongly
// typed field (named), an empty conversation, an unknown role, a conversation that does not start with a
// system/user message or has no assistant message, or a preference pair whose parts do not fit.
std::vector<Sample> read_dataset(const DatasetSpec& spec, ReadReport& report);

}  // namespace qtune
