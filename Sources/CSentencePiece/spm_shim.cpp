// The C API declared in include/spm_shim.h. Every entry point is wrapped in try/catch: a C++ exception crossing
// into Swift would terminate the process. Status results are checked on every call.
#include "spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct spm_processor {
  sentencepiece::SentencePieceProcessor impl;
};

namespace {

int fail(char *err, size_t errlen, const std::string &message) {
  if (err != nullptr && errlen > 0) {
    size_t n = message.size() < errlen - 1 ? message.size() : errlen - 1;
    std::memcpy(err, message.data(), n);
    err[n] = '\0';
  }
  return SPM_ERROR;
}

int check_id(const spm_processor *p, int32_t id, char *err, size_t errlen) {
  int size = p->impl.GetPieceSize();
  if (id < 0 || id >= size) {
    return fail(err, errlen, "Out of range: id " + std::to_string(id) + " is not in [0, " + std::to_string(size) + ")");
  }
  return SPM_OK;
}

}  // namespace

#define SPM_GUARD_BEGIN try {
#define SPM_GUARD_END                                                   \
  }                                                                     \
  catch (const std::exception &e) {                                     \
    return fail(err, errlen, e.what());                                 \
  }                                                                     \
  catch (...) {                                                         \
    return fail(err, errlen, "unknown C++ exception in SentencePiece"); \
  }

extern "C" int spm_train(const char *const *keys, const char *const *values, size_t count, char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  std::unordered_map<std::string, std::string> kwargs;
  for (size_t i = 0; i < count; ++i) {
    if (keys[i] == nullptr || values[i] == nullptr) return fail(err, errlen, "null trainer flag");
    kwargs[keys[i]] = values[i];
  }
  auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
  if (!status.ok()) return fail(err, errlen, status.ToString());
  return SPM_OK;
  SPM_GUARD_END
}

namespace {

// SentencePiece's sentence iterator over the caller's callback.
class CallbackSentences : public sentencepiece::SentenceIterator {
 public:
  CallbackSentences(spm_sentence_source next, void *context) : next_(next), context_(context) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    const char *data = nullptr;
    size_t length = 0;
    if (next_(context_, &data, &length) && data != nullptr) {
      value_.assign(data, length);
    } else {
      done_ = true;
    }
  }
  const std::string &value() const override { return value_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  spm_sentence_source next_;
  void *context_;
  std::string value_;
  bool done_ = false;
};

}  // namespace

extern "C" int spm_train_sentences(const char *const *keys, const char *const *values, size_t count,
                                   spm_sentence_source next, void *context, void **model, size_t *model_length,
                                   char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (next == nullptr || model == nullptr || model_length == nullptr) return fail(err, errlen, "null argument");
  *model = nullptr;
  *model_length = 0;
  std::unordered_map<std::string, std::string> kwargs;
  for (size_t i = 0; i < count; ++i) {
    if (keys[i] == nullptr || values[i] == nullptr) return fail(err, errlen, "null trainer flag");
    kwargs[keys[i]] = values[i];
  }
  CallbackSentences sentences(next, context);
  std::string serialized;
  auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &sentences, &serialized);
  if (!status.ok()) return fail(err, errlen, status.ToString());
  void *bytes = std::malloc(serialized.size() > 0 ? serialized.size() : 1);
  if (bytes == nullptr) return fail(err, errlen, "out of memory for the serialized model");
  std::memcpy(bytes, serialized.data(), serialized.size());
  *model = bytes;
  *model_length = serialized.size();
  return SPM_OK;
  SPM_GUARD_END
}

extern "C" void spm_free_bytes(void *bytes) { std::free(bytes); }

extern "C" int spm_load(const char *path, spm_processor **out, char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (path == nullptr || out == nullptr) return fail(err, errlen, "null argument");
  *out = nullptr;
  auto p = std::make_unique<spm_processor>();
  auto status = p->impl.Load(path);
  if (!status.ok()) return fail(err, errlen, status.ToString());
  *out = p.release();
  return SPM_OK;
  SPM_GUARD_END
}

extern "C" int spm_load_from_bytes(const void *bytes, size_t length, spm_processor **out, char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (bytes == nullptr || out == nullptr) return fail(err, errlen, "null argument");
  *out = nullptr;
  auto p = std::make_unique<spm_processor>();
  auto status = p->impl.LoadFromSerializedProto(std::string_view(static_cast<const char *>(bytes), length));
  if (!status.ok()) return fail(err, errlen, status.ToString());
  *out = p.release();
  return SPM_OK;
  SPM_GUARD_END
}

extern "C" void spm_free(spm_processor *processor) {
  try {
    delete processor;
  } catch (...) {
  }
}

#define SPM_SIMPLE_ID(name, call)                                \
  extern "C" int32_t name(const spm_processor *processor) {      \
    try {                                                        \
      return processor == nullptr ? -1 : processor->impl.call(); \
    } catch (...) {                                              \
      return -1;                                                 \
    }                                                            \
  }
SPM_SIMPLE_ID(spm_vocab_size, GetPieceSize)
SPM_SIMPLE_ID(spm_bos_id, bos_id)
SPM_SIMPLE_ID(spm_eos_id, eos_id)
SPM_SIMPLE_ID(spm_unk_id, unk_id)
SPM_SIMPLE_ID(spm_pad_id, pad_id)

extern "C" int spm_encode(const spm_processor *processor, const char *text, size_t length, int32_t *ids,
                          size_t capacity, size_t *needed, char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (processor == nullptr || needed == nullptr || (text == nullptr && length > 0))
    return fail(err, errlen, "null argument");
  std::vector<int> out;
  auto status = processor->impl.Encode(std::string_view(text == nullptr ? "" : text, length), &out);
  if (!status.ok()) return fail(err, errlen, status.ToString());
  *needed = out.size();
  if (out.size() > capacity) return SPM_TOO_SMALL;
  for (size_t i = 0; i < out.size(); ++i) ids[i] = static_cast<int32_t>(out[i]);
  return SPM_OK;
  SPM_GUARD_END
}

namespace {

// Appends `n` values to a malloc'd array, doubling it as needed.
template <typename T>
bool append(T **array, size_t *capacity, size_t *count, const T *values, size_t n) {
  if (*count + n > *capacity) {
    size_t grown = *capacity < 1024 ? 1024 : *capacity;
    while (grown < *count + n) grown *= 2;
    T *bigger = static_cast<T *>(std::realloc(*array, grown * sizeof(T)));
    if (bigger == nullptr) return false;
    *array = bigger;
    *capacity = grown;
  }
  std::memcpy(*array + *count, values, n * sizeof(T));
  *count += n;
  return true;
}

}  // namespace

extern "C" int spm_encode_lines(const spm_processor *processor, const char *text, size_t length,
                                const int32_t *newline_ids, size_t newline_count, int32_t **ids, size_t *capacity,
                                size_t *count, int64_t **line_ends, size_t *line_capacity, size_t *line_count,
                                char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (processor == nullptr || ids == nullptr || capacity == nullptr || count == nullptr ||
      (text == nullptr && length > 0))
    return fail(err, errlen, "null argument");
  std::vector<int> line_ids;
  size_t start = 0;
  while (start < length) {
    const char *nl = static_cast<const char *>(std::memchr(text + start, '\n', length - start));
    size_t end = nl == nullptr ? length : static_cast<size_t>(nl - text);
    if (end > start) {
      auto status = processor->impl.Encode(std::string_view(text + start, end - start), &line_ids);
      if (!status.ok()) return fail(err, errlen, status.ToString());
      static_assert(sizeof(int) == sizeof(int32_t), "SentencePiece's ids are 32-bit ints");
      if (!append(ids, capacity, count, reinterpret_cast<const int32_t *>(line_ids.data()), line_ids.size()))
        return fail(err, errlen, "out of memory");
    }
    if (nl == nullptr) break;
    if (!append(ids, capacity, count, newline_ids, newline_count)) return fail(err, errlen, "out of memory");
    if (line_ends != nullptr) {
      int64_t at = static_cast<int64_t>(*count);
      if (!append(line_ends, line_capacity, line_count, &at, 1)) return fail(err, errlen, "out of memory");
    }
    start = end + 1;
  }
  return SPM_OK;
  SPM_GUARD_END
}

extern "C" int spm_decode(const spm_processor *processor, const int32_t *ids, size_t count, char *text, size_t capacity,
                          size_t *needed, char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (processor == nullptr || needed == nullptr || (ids == nullptr && count > 0))
    return fail(err, errlen, "null argument");
  std::vector<int> in(count);
  for (size_t i = 0; i < count; ++i) {
    if (check_id(processor, ids[i], err, errlen) != SPM_OK) return SPM_ERROR;
    in[i] = ids[i];
  }
  std::string out;
  auto status = processor->impl.Decode(in, &out);
  if (!status.ok()) return fail(err, errlen, status.ToString());
  *needed = out.size();
  if (out.size() > capacity) return SPM_TOO_SMALL;
  if (!out.empty()) std::memcpy(text, out.data(), out.size());
  return SPM_OK;
  SPM_GUARD_END
}

extern "C" int spm_piece_to_id(const spm_processor *processor, const char *piece, size_t length, int32_t *id, char *err,
                               size_t errlen) {
  SPM_GUARD_BEGIN
  if (processor == nullptr || id == nullptr || (piece == nullptr && length > 0))
    return fail(err, errlen, "null argument");
  *id = processor->impl.PieceToId(std::string_view(piece == nullptr ? "" : piece, length));
  return SPM_OK;
  SPM_GUARD_END
}

extern "C" int spm_id_to_piece(const spm_processor *processor, int32_t id, char *piece, size_t capacity, size_t *needed,
                               char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (processor == nullptr || needed == nullptr) return fail(err, errlen, "null argument");
  if (check_id(processor, id, err, errlen) != SPM_OK) return SPM_ERROR;
  const std::string &s = processor->impl.IdToPiece(id);
  *needed = s.size();
  if (s.size() > capacity) return SPM_TOO_SMALL;
  if (!s.empty()) std::memcpy(piece, s.data(), s.size());
  return SPM_OK;
  SPM_GUARD_END
}

extern "C" int spm_piece_kind(const spm_processor *processor, int32_t id, int32_t *kind, char *err, size_t errlen) {
  SPM_GUARD_BEGIN
  if (processor == nullptr || kind == nullptr) return fail(err, errlen, "null argument");
  if (check_id(processor, id, err, errlen) != SPM_OK) return SPM_ERROR;
  const auto &p = processor->impl;
  *kind = p.IsUnknown(id) ? 1 : p.IsControl(id) ? 2 : p.IsByte(id) ? 3 : p.IsUnused(id) ? 4 : 0;
  return SPM_OK;
  SPM_GUARD_END
}
