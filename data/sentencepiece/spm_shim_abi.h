/* The C interface of libqtune_spm.so, the shim around libsentencepiece that qtune opens with dlopen.
 * Plain C types only, so the shim and its loader share no C++ ABI or protobuf. */
#ifndef QTUNE_DATA_SENTENCEPIECE_SPM_SHIM_ABI_H
#define QTUNE_DATA_SENTENCEPIECE_SPM_SHIM_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change below; the loader refuses a shim that reports another version (a stale build). */
#define QTUNE_SPM_ABI_VERSION 1

/* A loaded .model. Immutable after loading; every function below may be called from many threads. */
typedef struct qtune_spm qtune_spm;

/* Memory handed out by the shim (errors, encode/decode results) is released with qtune_spm_free_buffer. */
int32_t qtune_spm_abi_version(void);
void qtune_spm_free_buffer(void* buffer);

/* Loads the sentencepiece model file at `path`. On failure returns NULL and sets *error to a message. */
qtune_spm* qtune_spm_load(const char* path, char** error);
void qtune_spm_free(qtune_spm* model);

/* Ids for text[0, length): an array of *count ids, or NULL with *error set. When parse_special is nonzero,
 * control pieces written literally in the text (e.g. "<s>") become their ids; see spm_shim.cpp. When
 * `offsets` is not NULL, *offsets receives *count non-decreasing byte offsets into `text`, where each id's
 * piece begins (freed like the ids). */
int32_t* qtune_spm_encode(const qtune_spm* model, const char* text, size_t length, int parse_special,
                          size_t* count, uint32_t** offsets, char** error);

/* Text for ids[0, count) (NUL-terminated, *length bytes), or NULL with *error set. Ids out of range are
 * skipped. skip_special nonzero: control and unknown ids are dropped; zero: they are written as their piece. */
char* qtune_spm_decode(const qtune_spm* model, const int32_t* ids, size_t count, int skip_special,
                       size_t* length, char** error);

/* Vocabulary. piece_to_id returns -1 when the piece is not in the vocabulary; id_to_piece returns NULL when
 * `id` is out of range, else a pointer owned by the model (valid until qtune_spm_free), *length bytes. */
int32_t qtune_spm_vocab_size(const qtune_spm* model);
int32_t qtune_spm_piece_to_id(const qtune_spm* model, const char* piece, size_t length);
const char* qtune_spm_id_to_piece(const qtune_spm* model, int32_t id, size_t* length);

/* Piece kinds (0 or 1; 0 for ids out of range). */
int qtune_spm_is_control(const qtune_spm* model, int32_t id);
int qtune_spm_is_unknown(const qtune_spm* model, int32_t id);
int qtune_spm_is_byte(const qtune_spm* model, int32_t id);

/* Reserved ids; -1 when the model has none. */
int32_t qtune_spm_bos_id(const qtune_spm* model);
int32_t qtune_spm_eos_id(const qtune_spm* model);
int32_t qtune_spm_unk_id(const qtune_spm* model);
int32_t qtune_spm_pad_id(const qtune_spm* model);

#ifdef __cplusplus
}
#endif

#endif /* QTUNE_DATA_SENTENCEPIECE_SPM_SHIM_ABI_H */
