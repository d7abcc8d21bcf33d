/* dp_access: access-log formatting and output (see dp_access.h). */
#include "dp_access.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gw/gw_log.h"

gw_err
dp_access_open(const char *spec, int *fd)
{
    int f, err;

    if (spec == NULL || strcmp(spec, "-") == 0) {
        *fd = STDOUT_FILENO;
        return GW_OK;
    }
    if (strcmp(spec, "off") == 0) {
        *fd = -1;
        return GW_OK;
    }
    f = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) {
        err = errno;
        gw_log_errno(GW_LOG_ERR, err, "DP-ACCESS-OPEN", "path=%s", spec);
        return GW_ESYS;
    }
    *fd = f;
    return GW_OK;
}

/* A logfmt value: bare when it is a plain token, else quoted and escaped. */
static const char *
val(char *buf, unsigned n, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return "-";
    for (const char *p = s; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            return gw_log_q(buf, n, s);
    }
    if (strlen(s) >= n)
        return gw_log_q(buf, n, s);
    return s;
}

size_t
dp_access_format(const dp_access_rec *r, char *out, size_t n)
{
    char model[256], strat[600], prof[160], pod[160], ep[160], ts[80], ttfb[32], pt[24], ct[24];
    time_t sec = (time_t)(r->wall_ms / 1000);
    struct tm tm;
    int k;

    gmtime_r(&sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(r->wall_ms % 1000));
    if (r->ttfb_ms >= 0)
        snprintf(ttfb, sizeof(ttfb), "%.1f", r->ttfb_ms);
    else
        snprintf(ttfb, sizeof(ttfb), "-");
    if (r->prompt_tokens >= 0)
        snprintf(pt, sizeof(pt), "%" PRId64, r->prompt_tokens);
    else
        snprintf(pt, sizeof(pt), "-");
    if (r->completion_tokens >= 0)
        snprintf(ct, sizeof(ct), "%" PRId64, r->completion_tokens);
    else
        snprintf(ct, sizeof(ct), "-");
    k = snprintf(out, n,
                 "ts=%s req=%s path=%s model=%s strategy=%s profile=%s pod=%s ep=%s status=%u "
                 "dur_ms=%.1f ttfb_ms=%s prompt_tokens=%s completion_tokens=%s tries=%u "
                 "fallback=%s\n",
                 ts, r->id, r->path, val(model, sizeof(model), r->model),
                 val(strat, sizeof(strat), r->strategy), val(prof, sizeof(prof), r->profile),
                 val(pod, sizeof(pod), r->pod), val(ep, sizeof(ep), r->ep), r->status, r->dur_ms,
                 ttfb, pt, ct, r->tries, r->fallback ? r->fallback : "-");
    if (k < 0)
        return 0;
    if ((size_t)k >= n) {
        /* Truncated: keep the line a line. */
        if (n < 2)
            return 0;
        out[n - 2] = '\n';
        return n - 1;
    }
    return (size_t)k;
}

bool
dp_access_write(int fd, const char *line, size_t len)
{
    ssize_t w;

    if (fd < 0)
        return true;
    do
        w = write(fd, line, len);
    while (w < 0 && errno == EINTR);
    return w == (ssize_t)len;
}

static unsigned
count_lines(const char *p, size_t n)
{
    unsigned k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == '\n';
    return k;
}

unsigned
dp_access_flush(int fd, gw_buf *pending)
{
    unsigned dropped = 0;
    size_t off = 0;

    while (off < pending->len) {
        size_t n = pending->len - off;
        if (n > DP_ACCESS_BATCH) {
            /* Cut after the last whole line that fits. */
            n = DP_ACCESS_BATCH;
            while (n > 0 && pending->data[off + n - 1] != '\n')
                n--;
            if (n == 0)
                n = DP_ACCESS_BATCH; /* cannot happen: lines are shorter */
        }
        if (!dp_access_write(fd, pending->data + off, n))
            dropped += count_lines(pending->data + off, n);
        off += n;
    }
    gw_buf_reset(pending);
    return dropped;
}

unsigned
dp_access_append(int fd, gw_buf *pending, const char *line, size_t len)
{
    unsigned dropped = 0;

    if (pending->len + len > pending->max)
        dropped = dp_access_flush(fd, pending);
    if (gw_buf_append(pending, line, len) != GW_OK)
        dropped++;
    return dropped;
}
