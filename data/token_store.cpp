// TokenStore building, saving and loading.
#include "data/token_store.h"

#include <cstring>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace qtune {
namespace {

constexpr char kMagic[8] = {'Q', 'T', 'T', 'O', 'K', 'E', 'N', 'S'};
constexpr uint32_t kVersion = 1;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t samples_per_record;
  uint64_t key;
  uint64_t samples;
  uint64_t tokens;
};
static_assert(sizeof(Header) == 40, "the cache header layout is part of the file format");

}  // namespace

TokenStore TokenStore::from_samples(const std::vector<TokenizedSample>& samples, uint32_t samples_per_record) {
  TokenStore store;
  store.samples_per_record_ = samples_per_record;
  store.own_offsets_.reserve(samples.size() + 1);
  store.own_offsets_.push_back(0);
  std::size_t total = 0;
  for (const auto& s : samples) total += s.input_ids.size();
  store.own_ids_.reserve(total);
  store.own_labels_.reserve(total);
  for (const auto& s : samples) {
    store.own_ids_.insert(store.own_ids_.end(), s.input_ids.begin(), s.input_ids.end());
    store.own_labels_.insert(store.own_labels_.end(), s.labels.begin(), s.labels.end());
    store.own_offsets_.push_back(store.own_ids_.size());
  }
  store.offsets_ = store.own_offsets_.data();
  store.ids_ = store.own_ids_.data();
  store.labels_ = store.own_labels_.data();
  store.samples_ = samples.size();
  store.tokens_ = total;
  return store;
}

void TokenStore::save(const std::string& path, uint64_t key) const {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  Header header{};
  std::memcpy(header.magic, kMagic, sizeof kMagic);
  header.version = kVersion;
  header.samples_per_record = samples_per_record_;
  header.key = key;
  header.samples = samples_;
  header.tokens = tokens_;
  AtomicFile file(path);
  file.write(&header, sizeof header);
  file.write(offsets_, (samples_ + 1) * sizeof(uint64_t));
  file.write(ids_, tokens_ * sizeof(int32_t));
  file.write(labels_, tokens_ * sizeof(int32_t));
  file.commit();
}

std::optional<TokenStore> TokenStore::load(const std::string& path, uint64_t key, std::string* problem) {
  auto fail = [&](const char* why) -> std::optional<TokenStore> {
    if (problem) *problem = why;
    return std::nullopt;
  };
  if (!std::filesystem::exists(path)) return fail("absent");
  std::shared_ptr<MappedFile> mapping;
  try {
    mapping = MappedFile::open(path);
  } catch (const InputError&) {
    return fail("unreadable");
  }
  if (mapping->size() < sizeof(Header)) return fail("truncated");
  Header header;
  std::memcpy(&header, mapping->data(), sizeof header);
  if (std::memcmp(header.magic, kMagic, sizeof kMagic) != 0 || header.version != kVersion) return fail("not a qtune token cache of this version");
  if (header.key != key) return fail("made for other data or options");
  const uint64_t expected = sizeof(Header) + (header.samples + 1) * 8 + header.tokens * 8;
  if (header.samples > mapping->size() || header.tokens > mapping->size() || mapping->size() != expected) return fail("truncated or padded");
  TokenStore store;
  store.mapping_ = mapping;
  const uint8_t* base = mapping->data() + sizeof(Header);
  store.offsets_ = reinterpret_cast<const uint64_t*>(base);
  store.ids_ = reinterpret_cast<const int32_t*>(base + (header.samples + 1) * 8);
  store.labels_ = store.ids_ + header.tokens;
  store.samples_ = header.samples;
  store.tokens_ = header.tokens;
  store.samples_per_record_ = header.samples_per_record;
  if (store.offsets_[0] != 0 || store.offsets_[header.samples] != header.tokens) return fail("inconsistent offsets");
  for (uint64_t i = 0; i < header.samples; ++i)
    if (store.offsets_[i] > store.offsets_[i + 1]) return fail("inconsistent offsets");
  return store;
}

}  // namespace qtune
