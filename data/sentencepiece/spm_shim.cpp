// libqtune_spm.so: the C interface of spm_shim_abi.h over sentencepiece's SentencePieceProcessor.
//
// Special tokens. sentencepiece never matches control pieces ("<s>", "</s>", "[INST]" in Mistral) in text;
// only USER_DEFINED pieces are matched. HF's slow LlamaTokenizer splits the text on its special tokens
// first, then encodes the pieces in between. With legacy=False (what HF recommends and uses for new models)
// the dummy prefix "▁" is added once, at the start of the text, and not after each special token; legacy=True
// also added it after every special token ("</s>." -> "</s>", "▁."), the extra space HF fixed. We get the
// legacy=False result with sentencepiece's own rules: a second processor loads the same model with its
// control pieces retyped USER_DEFINED, so a literal "<s>" becomes its id while the text around it is
// normalized once, as a whole ("a </s> b" -> "▁a", "▁", "</s>", "▁b", as HF does). Like HF, a lone dummy
// "▁" in front of a leading special token is dropped ("<s>hi" -> "<s>", "hi", not "▁", "<s>", "hi").
// The same processor decodes with skip_special off, so control pieces come back as their text ("<s>")
// and <unk> as its piece, as HF decodes; with skip_special on, the stored model decodes (control pieces
// are invisible) and unknown ids are dropped first. "<unk>" written in text stays text (its type must stay
// UNKNOWN), and USER_DEFINED pieces are always matched, whatever parse_special says, as sentencepiece does.
#pragma GCC visibility push(default)
#include "data/sentencepiece/spm_shim_abi.h"
#pragma GCC visibility pop

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

struct qtune_spm {
  sentencepiece::SentencePieceProcessor plain;    // the model as stored: what spm_encode/spm_decode do
  sentencepiece::SentencePieceProcessor special;  // control pieces retyped USER_DEFINED, unk surface = piece
};

namespace {

// A malloc'ed, NUL-terminated copy: the caller frees it with qtune_spm_free_buffer.
char* copy_string(std::string_view text) {
  auto* out = static_cast<char*>(std::malloc(text.size() + 1));
  if (out == nullptr) return nullptr;
  std::memcpy(out, text.data(), text.size());
  out[text.size()] = '\0';
  return out;
}

void set_error(char** error, std::string_view message) {
  if (error != nullptr) *error = copy_string(message);
}

// --- protobuf wire format, just enough to edit a ModelProto (sentencepiece_model.proto), whose generated
// code Debian does not ship. Field numbers: ModelProto.pieces = 1, .trainer_spec = 2;
// SentencePiece.type = 3 (CONTROL = 3, USER_DEFINED = 4); TrainerSpec.unk_surface = 44.
constexpr uint64_t kModelPieces = 1, kModelTrainerSpec = 2, kPieceType = 3, kTrainerUnkSurface = 44;
constexpr uint64_t kTypeControl = 3, kTypeUserDefined = 4;
constexpr int kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;

struct Field {
  uint64_t number = 0;
  int wire_type = 0;
  uint64_t varint = 0;         // the value, for kVarint
  size_t begin = 0, end = 0;   // the value's bytes (the payload, for kLengthDelimited)
};

bool read_varint(const std::string& bytes, size_t& pos, size_t end, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && pos < end; shift += 7) {
    auto byte = static_cast<uint8_t>(bytes[pos++]);
    value |= uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80u) == 0) return true;
  }
  return false;
}

// Reads the field at `pos` (advancing past it); false when the bytes are not well formed.
bool next_field(const std::string& bytes, size_t& pos, size_t end, Field& field) {
  uint64_t key = 0;
  if (!read_varint(bytes, pos, end, key)) return false;
  field.number = key >> 3;
  field.wire_type = static_cast<int>(key & 7);
  field.begin = pos;
  uint64_t size = 0;
  switch (field.wire_type) {
    case kVarint: if (!read_varint(bytes, pos, end, field.varint)) return false; break;
    case kFixed64: size = 8; break;
    case kFixed32: size = 4; break;
    case kLengthDelimited:
      if (!read_varint(bytes, pos, end, size)) return false;
      field.begin = pos;
      break;
    default: return false;  // groups: not used by sentencepiece
  }
  if (size > end - pos) return false;
  pos += size;
  field.end = pos;
  return true;
}

void put_varint(std::string& out, uint64_t value) {
  for (; value >= 0x80; value >>= 7) out.push_back(static_cast<char>((value & 0x7f) | 0x80));
  out.push_back(static_cast<char>(value));
}

// Retypes CONTROL pieces as USER_DEFINED in place: both are one-byte varints, so no length changes.
bool retype_control_pieces(std::string& model) {
  Field piece, field;
  for (size_t pos = 0; pos < model.size();) {
    if (!next_field(model, pos, model.size(), piece)) return false;
    if (piece.number != kModelPieces || piece.wire_type != kLengthDelimited) continue;
    for (size_t inner = piece.begin; inner < piece.end;) {
      if (!next_field(model, inner, piece.end, field)) return false;
      bool is_control = field.number == kPieceType && field.wire_type == kVarint && field.varint == kTypeControl;
      if (is_control && field.end - field.begin == 1) model[field.begin] = static_cast<char>(kTypeUserDefined);
    }
  }
  return true;
}

// Appends a trainer_spec holding only unk_surface: protobuf merges repeated messages, so it overrides.
void append_unk_surface(std::string& model, const std::string& surface) {
  std::string spec;
  put_varint(spec, kTrainerUnkSurface << 3 | kLengthDelimited);
  put_varint(spec, surface.size());
  spec += surface;
  put_varint(model, kModelTrainerSpec << 3 | kLengthDelimited);
  put_varint(model, spec.size());
  model += spec;
}

// --- loading

bool read_file(const char* path, std::string& bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// Why sentencepiece rejected a model, without its source locations.
std::string load_problem(const sentencepiece::util::Status& status) {
  std::string message = status.message();
  if (message.find("ParseFromArray") != std::string::npos) return "it does not parse as a ModelProto";
  while (!message.empty() && (message.back() == ' ' || message.back() == '.')) message.pop_back();
  return message.empty() ? status.ToString() : message;
}

// Loads both processors from the bytes of a .model file; returns an error message, empty on success.
std::string load_model(qtune_spm& model, std::string bytes) {
  auto status = model.plain.LoadFromSerializedProto(bytes);
  if (!status.ok()) return "not a valid sentencepiece model (" + load_problem(status) + ")";
  if (model.plain.unk_id() < 0) return "the model has no <unk> piece";
  if (!retype_control_pieces(bytes)) return "the piece table could not be read";
  append_unk_surface(bytes, model.plain.IdToPiece(model.plain.unk_id()));
  status = model.special.LoadFromSerializedProto(bytes);
  if (!status.ok()) return std::string("could not prepare special-token matching (") + status.ToString() + ")";
  return {};
}

bool valid_id(const qtune_spm& model, int32_t id) { return id >= 0 && id < model.plain.GetPieceSize(); }

// --- encoding

struct Encoded {
  std::vector<int> ids;
  std::vector<uint32_t> offsets;  // byte offset in the input where each piece begins
};

// Ids and offsets; with parse_special, literal control pieces are matched, and the dummy "▁" piece (it
// covers no input byte) goes when it only stands in front of a leading control piece, as HF's
// LlamaTokenizer (legacy=False) drops it.
Encoded encode(const qtune_spm& model, std::string_view text, bool parse_special) {
  const auto& processor = parse_special ? model.special : model.plain;
  auto spt = processor.EncodeAsImmutableProto(text);  // throws the status on failure
  Encoded out;
  out.ids.reserve(spt.pieces_size());
  out.offsets.reserve(spt.pieces_size());
  uint32_t previous = 0;
  for (const auto& piece : spt.pieces()) {
    out.ids.push_back(static_cast<int>(piece.id()));
    previous = std::max(previous, piece.begin());  // normalization can reorder spans; keep them monotonic
    out.offsets.push_back(previous);
  }
  bool dummy_first = out.ids.size() >= 2 && spt.pieces(0).begin() == spt.pieces(0).end();
  if (parse_special && dummy_first && model.plain.IsControl(out.ids[1])) {
    out.ids.erase(out.ids.begin());
    out.offsets.erase(out.offsets.begin());
  }
  return out;
}

// A malloc'ed copy of `values` (one byte when empty, so that NULL only ever means failure).
template <typename To, typename From>
To* copy_array(const std::vector<From>& values) {
  auto* out = static_cast<To*>(std::malloc(values.empty() ? 1 : values.size() * sizeof(To)));
  if (out == nullptr) throw std::bad_alloc();
  for (size_t i = 0; i < values.size(); ++i) out[i] = static_cast<To>(values[i]);
  return out;
}

// --- decoding

// The ids the chosen processor will decode: out-of-range ids go, and special ones too when skipping them.
std::vector<int> ids_to_decode(const qtune_spm& model, const int32_t* ids, size_t count, bool skip_special) {
  std::vector<int> kept;
  kept.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    if (!valid_id(model, ids[i])) continue;
    if (skip_special && (model.plain.IsControl(ids[i]) || model.plain.IsUnknown(ids[i]))) continue;
    kept.push_back(ids[i]);
  }
  return kept;
}

}  // namespace

extern "C" {

int32_t qtune_spm_abi_version(void) { return QTUNE_SPM_ABI_VERSION; }

void qtune_spm_free_buffer(void* buffer) { std::free(buffer); }

qtune_spm* qtune_spm_load(const char* path, char** error) {
  if (error != nullptr) *error = nullptr;
  try {
    std::string bytes;
    if (path == nullptr || !read_file(path, bytes)) {
      set_error(error, "cannot read the file");
      return nullptr;
    }
    auto model = std::make_unique<qtune_spm>();
    std::string message = load_model(*model, std::move(bytes));
    if (!message.empty()) {
      set_error(error, message);
      return nullptr;
    }
    return model.release();
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown failure while loading");
  }
  return nullptr;
}

void qtune_spm_free(qtune_spm* model) { delete model; }

int32_t* qtune_spm_encode(const qtune_spm* model, const char* text, size_t length, int parse_special,
                          size_t* count, uint32_t** offsets, char** error) {
  if (error != nullptr) *error = nullptr;
  try {
    std::string_view input(text == nullptr ? "" : text, text == nullptr ? 0 : length);
    Encoded encoded = encode(*model, input, parse_special != 0);
    auto* ids = copy_array<int32_t>(encoded.ids);
    if (offsets != nullptr) {
      try {
        *offsets = copy_array<uint32_t>(encoded.offsets);
      } catch (...) {
        std::free(ids);
        throw;
      }
    }
    *count = encoded.ids.size();
    return ids;
  } catch (const sentencepiece::util::Status& status) {
    set_error(error, status.ToString());
  } catch (const std::bad_alloc&) {
    set_error(error, "out of memory");
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown failure while encoding");
  }
  return nullptr;
}

char* qtune_spm_decode(const qtune_spm* model, const int32_t* ids, size_t count, int skip_special,
                       size_t* length, char** error) {
  if (error != nullptr) *error = nullptr;
  try {
    std::vector<int> kept = ids_to_decode(*model, ids, count, skip_special != 0);
    std::string text;
    auto status = (skip_special ? model->plain : model->special).Decode(kept, &text);
    if (!status.ok()) {
      set_error(error, status.ToString());
      return nullptr;
    }
    char* out = copy_string(text);
    if (out == nullptr) set_error(error, "out of memory");
    *length = text.size();
    return out;
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown failure while decoding");
  }
  return nullptr;
}

int32_t qtune_spm_vocab_size(const qtune_spm* model) { return model->plain.GetPieceSize(); }

int32_t qtune_spm_piece_to_id(const qtune_spm* model, const char* piece, size_t length) {
  std::string_view wanted(piece, length);
  int id = model->plain.PieceToId(wanted);  // the unk id when absent, so check the round trip
  return valid_id(*model, id) && model->plain.IdToPiece(id) == wanted ? id : -1;
}

const char* qtune_spm_id_to_piece(const qtune_spm* model, int32_t id, size_t* length) {
  if (!valid_id(*model, id)) return nullptr;
  const std::string& piece = model->plain.IdToPiece(id);
  *length = piece.size();
  return piece.c_str();
}

int qtune_spm_is_control(const qtune_spm* model, int32_t id) {
  return valid_id(*model, id) && model->plain.IsControl(id);
}
int qtune_spm_is_unknown(const qtune_spm* model, int32_t id) {
  return valid_id(*model, id) && model->plain.IsUnknown(id);
}
int qtune_spm_is_byte(const qtune_spm* model, int32_t id) {
  return valid_id(*model, id) && model->plain.IsByte(id);
}

int32_t qtune_spm_bos_id(const qtune_spm* model) { return model->plain.bos_id(); }
int32_t qtune_spm_eos_id(const qtune_spm* model) { return model->plain.eos_id(); }
int32_t qtune_spm_unk_id(const qtune_spm* model) { return model->plain.unk_id(); }
int32_t qtune_spm_pad_id(const qtune_spm* model) { return model->plain.pad_id(); }

}  // extern "C"
