/* gw_err: the error codes every fallible llmgw function returns.
 * GW_OK is 0 so `if (rc != GW_OK)` reads naturally. GW_EAGAIN is flow control
 * ("not ready, call again"), not a failure. Foreign codes (CURLcode, nng, MHD,
 * hiredis, msgpack) are translated once, in their wrapper module. */
#ifndef GW_ERR_H
#define GW_ERR_H

#include <stddef.h>

#define GW_MUST_CHECK __attribute__((warn_unused_result))

typedef enum gw_err {
    GW_OK = 0,
    GW_EAGAIN,    /* not ready yet; retry when the fd/timer fires */
    GW_ENOMEM,    /* allocation failed (only where we don't abort) */
    GW_EINVAL,    /* bad argument or malformed input */
    GW_ENOENT,    /* no such object */
    GW_EPROTO,    /* peer spoke the protocol wrong (bad msgpack, bad HTTP) */
    GW_ETIMEDOUT, /* a deadline passed */
    GW_ECLOSED,   /* the peer or object is closed */
    GW_EFULL,     /* a capped buffer or queue is full */
    GW_EIO,       /* I/O failure reported by a library */
    GW_ESYS,      /* a system call failed; errno was logged */
    GW_EEXIST,    /* already exists */
    GW_EVERSION,  /* unsupported schema major version */
} gw_err;

/* Static, human-readable name of <err>; never NULL. */
const char *gw_strerror(gw_err err);

/* Writes a printf-formatted reason into <why> (size <n>) and returns
 * GW_EINVAL: the one-liner of config parsers that explain a refusal. */
gw_err gw_refuse(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
