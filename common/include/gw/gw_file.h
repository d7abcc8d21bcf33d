/* gw_file: whole-file reads for start-up configuration (certificates,
 * keys). Blocking: never on the request path. */
#ifndef GW_FILE_H
#define GW_FILE_H

#include <stddef.h>

#include "gw/gw_err.h"

/* Reads the text file <path> whole into *out: NUL-terminated, the caller
 * frees it (and wipes it first if it holds a secret, e.g. with
 * explicit_bzero). Errors, each logged with the path (GW-FILE-READ), *out
 * untouched: GW_ENOENT if it does not exist, GW_EFULL if it is longer than
 * <max> bytes, GW_EINVAL if it holds a NUL byte (not text), GW_ESYS otherwise.
 * Meant for startup reads of PEM files and the like: blocking, and it
 * allocates <max> bytes up front for what is not a regular file. */
GW_MUST_CHECK gw_err gw_read_file_text(const char *path, size_t max, char **out);

#endif
