/* dp_json: a validating one-pass JSON scanner for request bodies. It accepts
 * exactly what jansson 2.14's json_loadb(JSON_REJECT_DUPLICATES) accepts
 * (RFC 8259 with: an object or array at the top, valid UTF-8, no \u0000, no
 * lone surrogate escape, values nested at most 2048 deep, integers within
 * int64, reals that do not overflow, no duplicate key in any object), but
 * builds nothing: the caller walks the document with the calls below and
 * decodes only the strings it wants, straight from the body.
 *
 * Hand-written because jansson builds the whole tree (about 45 MB/s on a
 * 200 KB prompt, most of a request's CPU) and no packaged C library scans
 * without building one while keeping jansson's acceptance rules; the
 * differential fuzz target checks this against jansson (tests/fuzz).
 *
 * Errors are sticky: after the first one every call returns false and
 * j->err says why, with j->err_pos the byte offset. */
#ifndef DP_JSON_H
#define DP_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw/gw_buf.h"

#define DP_JSON_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

/* A string token: its raw bytes between the quotes, body[start, end). */
typedef struct dp_json_str {
    size_t start, end;
    size_t decoded_len; /* UTF-8 bytes once escapes are decoded */
    bool escaped;       /* has a backslash escape (else raw == decoded) */
} dp_json_str;

typedef struct dp_json_key dp_json_key; /* dp_json.c */

typedef struct dp_json {
    const unsigned char *p;
    size_t len, pos;
    unsigned depth;  /* containers open around the current position */
    const char *err; /* first error, NULL while the document is fine */
    size_t err_pos;
    dp_json_key *keys; /* the keys of every open object, innermost last */
    size_t nkeys, capkeys;
    gw_buf scratch; /* decoded keys, for hashing and comparing */
} dp_json;

/* Where an object or array being walked stands. */
typedef struct dp_json_iter {
    size_t keys_mark; /* j->nkeys when the object opened */
    bool started;
} dp_json_iter;

void dp_json_init(dp_json *j, const char *body, size_t len);
void dp_json_fini(dp_json *j);

/* The next non-blank byte (not consumed), or -1 at the end or after an
 * error. What it is tells the kind of the next value: '"', '{', '[', 't'/'f'
 * (boolean), 'n' (null), '-' or a digit (number). */
int dp_json_peek(dp_json *j);

/* Each scans one value of its kind at the current position; false (and the
 * error set) if the value is not of that kind or is malformed. */
bool dp_json_string(dp_json *j, dp_json_str *s);
/* <is_int>: an integer token (no fraction or exponent), its value in <ival>. */
bool dp_json_number(dp_json *j, bool *is_int, int64_t *ival);
/* true, false or null: *lit is 't', 'f' or 'n'. */
bool dp_json_literal(dp_json *j, char *lit);
/* Any value, validated and skipped. */
bool dp_json_skip(dp_json *j);

/* Walks an object: open at '{', then dp_json_object_key returns each key
 * (positioned on its value, which the caller must scan or skip) until it
 * returns false at the closing '}' (or on an error: check j->err). */
bool dp_json_object_open(dp_json *j, dp_json_iter *it);
bool dp_json_object_key(dp_json *j, dp_json_iter *it, dp_json_str *key);
/* Walks an array the same way: true while positioned on an element. */
bool dp_json_array_open(dp_json *j, dp_json_iter *it);
bool dp_json_array_next(dp_json *j, dp_json_iter *it);

/* After the top-level value: only blanks may follow. */
bool dp_json_end(dp_json *j);

/* The decoded string equals the NUL-terminated <lit>. */
bool dp_json_str_is(dp_json *j, const dp_json_str *s, const char *lit);
/* Appends the decoded string to <out>, at most up to <out>'s cap (the rest
 * is cut). The string must come from a successful scan of this body. */
void dp_json_decode(const dp_json *j, const dp_json_str *s, gw_buf *out);

#endif
