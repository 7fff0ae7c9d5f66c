// The sentencepiece Tokenizer: finds and dlopen()s libqtune_spm.so once per process, then forwards to it.
#include "data/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "core/error.h"
#include "data/sentencepiece/spm_shim_abi.h"

namespace qtune {
namespace {

namespace fs = std::filesystem;

// The shim's functions, resolved with dlsym.
struct ShimApi {
  decltype(&qtune_spm_abi_version) abi_version = nullptr;
  decltype(&qtune_spm_free_buffer) free_buffer = nullptr;
  decltype(&qtune_spm_load) load = nullptr;
  decltype(&qtune_spm_free) free = nullptr;
  decltype(&qtune_spm_encode) encode = nullptr;
  decltype(&qtune_spm_decode) decode = nullptr;
  decltype(&qtune_spm_vocab_size) vocab_size = nullptr;
  decltype(&qtune_spm_piece_to_id) piece_to_id = nullptr;
  decltype(&qtune_spm_id_to_piece) id_to_piece = nullptr;
  decltype(&qtune_spm_is_control) is_control = nullptr;
  decltype(&qtune_spm_is_unknown) is_unknown = nullptr;
  decltype(&qtune_spm_bos_id) bos_id = nullptr;
};

// The process-wide shim: the functions, or why it could not be opened.
struct Shim {
  ShimApi api;
  std::string error;  // empty when api is usable
};

// ASan refuses RTLD_DEEPBIND (its interceptors must win); sanitizer builds then rely on RTLD_LOCAL alone.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kDlopenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

constexpr const char* kShimName = "libqtune_spm.so";

// Where the shim may be, in the order they are tried.
std::vector<std::string> shim_candidates() {
  std::vector<std::string> paths;
  if (const char* env = std::getenv("QTUNE_SPM_SHIM"); env != nullptr && *env != '\0') paths.emplace_back(env);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path dir = exe.parent_path();
    paths.push_back((dir / ".." / "lib" / kShimName).lexically_normal().string());  // build/trainer/qtune
    paths.push_back((dir / kShimName).string());
    paths.push_back((dir / ".." / ".." / "lib" / kShimName).lexically_normal().string());
  }
#ifdef QTUNE_SPM_SHIM_BUILD_PATH
  paths.emplace_back(QTUNE_SPM_SHIM_BUILD_PATH);
#endif
  return paths;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

template <typename Fn>
bool resolve(void* library, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(::dlsym(library, name));
  return fn != nullptr;
}

// Resolves every function; returns the first missing name, empty when all were found.
std::string resolve_all(void* library, ShimApi& api) {
#define QTUNE_RESOLVE(field, symbol) \
  if (!resolve(library, #symbol, api.field)) return #symbol;
  QTUNE_RESOLVE(abi_version, qtune_spm_abi_version)
  QTUNE_RESOLVE(free_buffer, qtune_spm_free_buffer)
  QTUNE_RESOLVE(load, qtune_spm_load)
  QTUNE_RESOLVE(free, qtune_spm_free)
  QTUNE_RESOLVE(encode, qtune_spm_encode)
  QTUNE_RESOLVE(decode, qtune_spm_decode)
  QTUNE_RESOLVE(vocab_size, qtune_spm_vocab_size)
  QTUNE_RESOLVE(piece_to_id, qtune_spm_piece_to_id)
  QTUNE_RESOLVE(id_to_piece, qtune_spm_id_to_piece)
  QTUNE_RESOLVE(is_control, qtune_spm_is_control)
  QTUNE_RESOLVE(is_unknown, qtune_spm_is_unknown)
  QTUNE_RESOLVE(bos_id, qtune_spm_bos_id)
#undef QTUNE_RESOLVE
  return {};
}

// Opens the first shim that exists. The handle is never closed: the shim lives as long as the process.
Shim open_shim() {
  Shim shim;
  const auto candidates = shim_candidates();
  std::string path;
  for (const auto& candidate : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) {
      path = candidate;
      break;
    }
  }
  if (path.empty()) {
    shim.error = std::string(kShimName) + " was not found (looked at " + join(candidates) +
                 "); build the qtune_spm target or set QTUNE_SPM_SHIM to its path";
    return shim;
  }
  void* library = ::dlopen(path.c_str(), kDlopenFlags);
  if (library == nullptr) {
    const char* why = ::dlerror();
    shim.error = "cannot open " + path + " (" + (why ? why : "unknown dlopen error") +
                 "); rebuild the qtune_spm target or set QTUNE_SPM_SHIM to a working copy";
    return shim;
  }
  if (std::string missing = resolve_all(library, shim.api); !missing.empty()) {
    shim.error = path + " lacks " + missing + "; rebuild the qtune_spm target";
  } else if (shim.api.abi_version() != QTUNE_SPM_ABI_VERSION) {
    shim.error = path + " is from another qtune version (interface " + std::to_string(shim.api.abi_version()) +
                 ", need " + std::to_string(QTUNE_SPM_ABI_VERSION) + "); rebuild the qtune_spm target";
  }
  return shim;
}

// Opened on first use; C++ guarantees the initialization runs once even when threads race here.
const Shim& shim() {
  static const Shim instance = open_shim();
  return instance;
}

// Takes ownership of a shim-allocated buffer (or error message).
template <typename T>
struct ShimBuffer {
  const ShimApi& api;
  T* data;
  ~ShimBuffer() { api.free_buffer(data); }
};

// The shim's error as one line.
std::string take_error(const ShimApi& api, char* error) {
  ShimBuffer<char> owned{api, error};
  std::string message = error != nullptr ? error : "unknown error";
  for (char& c : message) if (c == '\n' || c == '\r') c = ' ';
  return message;
}

class SentencepieceTokenizer final : public Tokenizer {
 public:
  SentencepieceTokenizer(const ShimApi& api, qtune_spm* model, std::string path)
      : api_(api), model_(model), path_(std::move(path)) {}
  ~SentencepieceTokenizer() override { api_.free(model_); }
  SentencepieceTokenizer(const SentencepieceTokenizer&) = delete;
  SentencepieceTokenizer& operator=(const SentencepieceTokenizer&) = delete;

  std::vector<TokenId> encode(std::string_view text, bool parse_special) const override {
    return run_encode(text, parse_special, false).ids;
  }

  Encoding encode_with_offsets(std::string_view text, bool parse_special) const override {
    return run_encode(text, parse_special, true);
  }

  std::vector<TokenId> encode_with_special_tokens(std::string_view text) const override {
    std::vector<TokenId> ids;
    if (TokenId bos = api_.bos_id(model_); bos >= 0) ids.push_back(bos);
    auto body = encode(text, true);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }

  std::string decode(const std::vector<TokenId>& ids, bool skip_special) const override {
    size_t length = 0;
    char* error = nullptr;
    char* text = api_.decode(model_, ids.data(), ids.size(), skip_special ? 1 : 0, &length, &error);
    if (text == nullptr) throw std::runtime_error(path_ + ": sentencepiece decode failed: " + take_error(api_, error));
    ShimBuffer<char> owned{api_, text};
    return std::string(text, length);
  }

  TokenId vocab_size() const override { return api_.vocab_size(model_); }

  std::optional<TokenId> token_to_id(std::string_view token) const override {
    TokenId id = api_.piece_to_id(model_, token.data(), token.size());
    return id >= 0 ? std::optional<TokenId>(id) : std::nullopt;
  }

  std::string id_to_token(TokenId id) const override {
    size_t length = 0;
    const char* piece = api_.id_to_piece(model_, id, &length);
    return piece != nullptr ? std::string(piece, length) : std::string();
  }

  bool is_special(TokenId id) const override {
    return api_.is_control(model_, id) != 0 || api_.is_unknown(model_, id) != 0;
  }

 private:
  Encoding run_encode(std::string_view text, bool parse_special, bool with_offsets) const {
    size_t count = 0;
    uint32_t* offsets = nullptr;
    char* error = nullptr;
    int32_t* ids = api_.encode(model_, text.data(), text.size(), parse_special ? 1 : 0, &count,
                               with_offsets ? &offsets : nullptr, &error);
    if (ids == nullptr) throw std::runtime_error(path_ + ": sentencepiece encode failed: " + take_error(api_, error));
    ShimBuffer<int32_t> owned_ids{api_, ids};
    ShimBuffer<uint32_t> owned_offsets{api_, offsets};
    Encoding encoding;
    encoding.ids.assign(ids, ids + count);
    if (with_offsets) encoding.offsets.assign(offsets, offsets + count);
    return encoding;
  }

  const ShimApi& api_;  // the process-wide shim, which outlives every tokenizer
  qtune_spm* model_;    // owned
  std::string path_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& model_path) {
  std::error_code ec;
  if (!fs::exists(model_path, ec)) {
    input_error("{}: no such file; pass the model's sentencepiece tokenizer.model (or the folder holding it)",
                model_path);
  }
  if (!fs::is_regular_file(model_path, ec)) {
    input_error("{}: not a file; pass the model's sentencepiece tokenizer.model", model_path);
  }
  const Shim& loaded = shim();
  if (!loaded.error.empty()) input_error("{}: cannot load sentencepiece models: {}", model_path, loaded.error);
  char* error = nullptr;
  qtune_spm* model = loaded.api.load(model_path.c_str(), &error);
  if (model == nullptr) {
    input_error("{}: {}; pass the sentencepiece tokenizer.model that came with the model",
                model_path, take_error(loaded.api, error));
  }
  return std::make_unique<SentencepieceTokenizer>(loaded.api, model, model_path);
}

}  // namespace qtune
