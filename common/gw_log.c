/* gw_log: logfmt lines on stderr (see gw_log.h). Each line is formatted into a
 * stack buffer and written with one write(2) so lines from many processes
 * sharing a pipe never interleave mid-line. */
#include "gw/gw_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

gw_lvl gw_log_level = GW_LOG_NOTICE;

static char log_proc[32] = "gw";

static const char *const lvl_names[] = {"alert", "err", "warn", "notice", "info", "debug"};

void
gw_log_set_proc(const char *tag)
{
    snprintf(log_proc, sizeof(log_proc), "%s", tag);
}

bool
gw_log_parse_level(const char *s, gw_lvl *out)
{
    for (unsigned i = 0; i < sizeof(lvl_names) / sizeof(lvl_names[0]); i++) {
        if (strcmp(s, lvl_names[i]) == 0) {
            *out = (gw_lvl)i;
            return true;
        }
    }
    if (strcmp(s, "error") == 0) {
        *out = GW_LOG_ERR;
        return true;
    }
    if (strcmp(s, "warning") == 0) {
        *out = GW_LOG_WARN;
        return true;
    }
    return false;
}

static void log_vwrite(gw_lvl lvl, int errnum, const char *id, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void
log_vwrite(gw_lvl lvl, int errnum, const char *id, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int rc;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    rc = snprintf(line, sizeof(line),
                  "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lvl=%s proc=%s id=%s ",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  ts.tv_nsec / 1000000, lvl_names[lvl], log_proc, id);
    n = rc < 0 ? 0 : (size_t)rc;
    if (n < sizeof(line)) {
        rc = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
        n += rc < 0 ? 0 : (size_t)rc;
    }
    if (errnum != 0 && n < sizeof(line)) {
        char q[160];
        rc = snprintf(line + n, sizeof(line) - n, " err=%s",
                      gw_log_q(q, sizeof(q), strerror(errnum)));
        n += rc < 0 ? 0 : (size_t)rc;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    /* One write per line; a short write to a pipe of <PIPE_BUF bytes cannot happen. */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void
gw_log_raw(gw_lvl lvl, const char *id, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    log_vwrite(lvl, 0, id, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
gw_log_raw_errno(gw_lvl lvl, int errnum, const char *id, const char *fmt, ...)
{
    va_list ap;
    int saved = errno;

    va_start(ap, fmt);
    log_vwrite(lvl, errnum, id, fmt, ap);
    va_end(ap);
    errno = saved;
}

bool
gw_log_rl_allow(gw_log_rl *rl, uint32_t per_sec)
{
    struct timespec ts;
    uint64_t now;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (now - rl->window_ms >= 1000) {
        if (rl->suppressed > 0)
            gw_log_raw(GW_LOG_WARN, "GW-LOG-SUPPRESSED", "suppressed=%u", rl->suppressed);
        rl->window_ms = now;
        rl->count = 0;
        rl->suppressed = 0;
    }
    if (rl->count < per_sec) {
        rl->count++;
        return true;
    }
    rl->suppressed++;
    return false;
}

const char *
gw_log_q(char *dst, unsigned n, const char *s)
{
    unsigned o = 0;

    if (n < 3) {
        if (n > 0)
            dst[0] = '\0';
        return dst;
    }
    dst[o++] = '"';
    for (; s != NULL && *s != '\0' && o + 3 < n; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            if (o + 4 >= n)
                break;
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            dst[o++] = '?';
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}
