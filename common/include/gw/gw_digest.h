/* gw_digest: SHA-256 for API keys, SHA-1 for Redis script ids (EVALSHA),
 * FNV-1a for in-process hash tables, and a constant-time comparison; OpenSSL's libcrypto, already
 * linked through libcurl. Keys are hashed once where they enter (config load, request header) and
 * only digests are stored, compared and sent between processes. */
#ifndef GW_DIGEST_H
#define GW_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GW_SHA256_HEX_LEN 64u
#define GW_SHA1_HEX_LEN   40u

/* Writes the SHA-256 of <p>/<n> to <out> as 64 lower-case hex digits and a
 * NUL. */
void gw_sha256_hex(const void *p, size_t n, char out[GW_SHA256_HEX_LEN + 1]);

/* The SHA-1 of <p>/<n> as 40 lower-case hex digits and a NUL (not for
 * secrets: Redis names scripts by it). */
void gw_sha1_hex(const void *p, size_t n, char out[GW_SHA1_HEX_LEN + 1]);

/* FNV-1a, 64 bits, of <p>/<n>: the hash of in-process tables (not for
 * anything shared between processes or versions). */
uint64_t gw_fnv1a64(const void *p, size_t n);

/* Whether <a> and <b> (<n> bytes each) are equal, in time that depends only
 * on <n>. */
bool gw_equal_ct(const void *a, const void *b, size_t n);

#endif
