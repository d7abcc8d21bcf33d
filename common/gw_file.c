/* gw_file: see gw_file.h. */
#include "gw/gw_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"

gw_err
gw_read_file_text(const char *path, size_t max, char **out)
{
    struct stat st;
    char *buf = NULL, q[300];
    size_t cap = 0, n = 0;
    const char *why = NULL;
    gw_err rc = GW_OK;
    int fd, err = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = errno;
        gw_log_errno(GW_LOG_ERR, err, "GW-FILE-READ", "path=%s", gw_log_q(q, sizeof(q), path));
        return err == ENOENT ? GW_ENOENT : GW_ESYS;
    }
    if (fstat(fd, &st) != 0) {
        err = errno;
        rc = GW_ESYS;
        goto out;
    }
    /* One buffer of the final size: a key is never left behind in memory
     * that realloc() moved away from. One byte more shows a file over <max>
     * (or one that grew while read). Not a regular file (a pipe): <max>. */
    if (max > SIZE_MAX / 2)
        max = SIZE_MAX / 2;
    cap = S_ISREG(st.st_mode) && (uintmax_t)st.st_size < max ? (size_t)st.st_size : max;
    buf = gw_xmalloc(cap + 2);
    while (n < cap + 1) {
        ssize_t r = read(fd, buf + n, cap + 1 - n);
        if (r == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            rc = GW_ESYS;
            goto out;
        }
        n += (size_t)r;
    }
    if (n > cap) {
        why = cap < max ? "file grew while being read" : "file too large";
        rc = GW_EFULL;
    } else if (memchr(buf, '\0', n) != NULL) {
        why = "not a text file (NUL byte)";
        rc = GW_EINVAL;
    }
out:
    close(fd);
    if (rc != GW_OK) {
        if (why != NULL)
            gw_log(GW_LOG_ERR, "GW-FILE-READ", "path=%s max=%zu msg=\"%s\"",
                   gw_log_q(q, sizeof(q), path), max, why);
        else
            gw_log_errno(GW_LOG_ERR, err, "GW-FILE-READ", "path=%s", gw_log_q(q, sizeof(q), path));
        if (buf != NULL)
            explicit_bzero(buf, cap + 2);
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    return GW_OK;
}
