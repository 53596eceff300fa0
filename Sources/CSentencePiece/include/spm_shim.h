// A plain C API over SentencePiece (https://github.com/google/sentencepiece), for Swift.
//
// Conventions, the same for every function that can fail:
//  - the return value is SPM_OK (0) on success, SPM_ERROR (-1) on failure, or SPM_TOO_SMALL (1) when a caller
//    buffer is too small: `*needed` then holds the size to retry with;
//  - on SPM_ERROR a NUL-terminated message (util::Status::ToString() or the exception's what()) is written to
//    `err` (at most `errlen` bytes, always terminated when errlen > 0);
//  - nothing ever throws across this boundary, and ids are range-checked before they reach the library
//    (IdToPiece aborts the process on a bad id otherwise).
#ifndef NGPT_SPM_SHIM_H
#define NGPT_SPM_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { SPM_OK = 0, SPM_ERROR = -1, SPM_TOO_SMALL = 1 };

typedef struct spm_processor spm_processor;

// Trains a model. `keys`/`values` are `count` trainer flags without the leading dashes, e.g.
// {"input", "/data/a.txt"}, {"model_prefix", "/tmp/m"}, {"vocab_size", "4096"} (see SentencePiece's
// options.md). Passing them as pairs, not one command line, keeps paths with spaces intact.
int spm_train(const char *const *keys, const char *const *values, size_t count, char *err, size_t errlen);

// Supplies training sentences: sets *data/*length to the next sentence (valid until the next call) and returns 1,
// or returns 0 when there are no more.
typedef int (*spm_sentence_source)(void *context, const char **data, size_t *length);

// Trains a model on the sentences `next` supplies (flags as for spm_train, without input and model_prefix) and
// returns the serialized model in *model (free it with spm_free_bytes). Neither an input file nor a model file is
// involved, so the model records no path: it is a function of the sentences and the flags alone.
int spm_train_sentences(const char *const *keys, const char *const *values, size_t count, spm_sentence_source next,
                        void *context, void **model, size_t *model_length, char *err, size_t errlen);
void spm_free_bytes(void *bytes);

// Loads a .model file (or serialized ModelProto bytes). On success *out owns a processor; free it with spm_free.
int spm_load(const char *path, spm_processor **out, char *err, size_t errlen);
int spm_load_from_bytes(const void *bytes, size_t length, spm_processor **out, char *err, size_t errlen);
void spm_free(spm_processor *processor);

int32_t spm_vocab_size(const spm_processor *processor);
int32_t spm_bos_id(const spm_processor *processor);  // -1 when the model has none
int32_t spm_eos_id(const spm_processor *processor);
int32_t spm_unk_id(const spm_processor *processor);
int32_t spm_pad_id(const spm_processor *processor);

// Encodes `length` bytes of UTF-8 (embedded NULs allowed) into ids. Writes *needed ids when capacity suffices.
int spm_encode(const spm_processor *processor, const char *text, size_t length, int32_t *ids, size_t capacity,
               size_t *needed, char *err, size_t errlen);

// Encodes `length` bytes of UTF-8 text line by line: each line's ids, then `newline_ids` after every '\n' (so a
// model trained without pieces across newlines gives the ids of the whole text, far faster). Writes into *ids
// (grown with realloc as needed; *capacity is its size in elements, the caller frees it with spm_free_bytes) and
// sets *count. When `line_ends` is not null, the id count after each '\n' is appended there the same way.
int spm_encode_lines(const spm_processor *processor, const char *text, size_t length, const int32_t *newline_ids,
                     size_t newline_count, int32_t **ids, size_t *capacity, size_t *count, int64_t **line_ends,
                     size_t *line_capacity, size_t *line_count, char *err, size_t errlen);

// Decodes ids to UTF-8 bytes (not NUL-terminated); *needed is the byte count.
int spm_decode(const spm_processor *processor, const int32_t *ids, size_t count, char *text, size_t capacity,
               size_t *needed, char *err, size_t errlen);

// Piece <-> id. spm_piece_to_id gives the unk id for an unknown piece (as SentencePiece does).
int spm_piece_to_id(const spm_processor *processor, const char *piece, size_t length, int32_t *id, char *err,
                    size_t errlen);
int spm_id_to_piece(const spm_processor *processor, int32_t id, char *piece, size_t capacity, size_t *needed, char *err,
                    size_t errlen);

// Kind of a piece: 0 normal, 1 unknown, 2 control (<s>, </s>), 3 byte-fallback piece (<0x0A>), 4 unused.
int spm_piece_kind(const spm_processor *processor, int32_t id, int32_t *kind, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
