/* ctl_mirror: the mirror file, re-read on a timer (see ctl_mirror.h). */
#include "ctl_mirror.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "gw/gw_mirror_cfg.h"

struct ctl_mirror {
    char *path;
    uint64_t interval_ms;
    ctl_metrics *metrics;
    ctl_mirror_change_fn cb;
    void *arg;
    gw_timer *timer;
    char *text; /* in effect: the last good file; NULL = none */
    bool started;
};

static void
set_text(ctl_mirror *m, char *text)
{
    free(m->text);
    m->text = text;
    if (m->started && m->cb != NULL)
        m->cb(m->text, m->arg);
}

void
ctl_mirror_reload(ctl_mirror *m)
{
    gw_mirror_cfg cfg;
    char why[256];
    char *text = NULL;

    if (m->path[0] == '\0')
        return;
    switch (gw_mirror_file_read(m->path, &text)) {
    case GW_MIRROR_FILE_MISSING:
        if (m->text != NULL) {
            gw_log(GW_LOG_NOTICE, "CTL-MIRROR-CONFIG", "file=%s msg=\"gone; mirror off\"", m->path);
            set_text(m, NULL);
        }
        return;
    case GW_MIRROR_FILE_UNREADABLE:
        ctl_metrics_config_error(m->metrics, "mirror");
        gw_log_ratelimited(GW_LOG_WARN, 1, "CTL-MIRROR-CONFIG",
                           "file=%s msg=\"unreadable or over %u bytes; the last good config "
                           "stays\"",
                           m->path, GW_MIRROR_FILE_MAX);
        return;
    case GW_MIRROR_FILE_READ:
        break;
    }
    if (m->text != NULL && strcmp(m->text, text) == 0) {
        free(text);
        return; /* unchanged */
    }
    if (gw_mirror_cfg_parse(text, strlen(text), &cfg, why, sizeof(why)) != GW_OK) {
        ctl_metrics_config_error(m->metrics, "mirror");
        gw_log(GW_LOG_WARN, "CTL-MIRROR-CONFIG",
               "file=%s msg=\"invalid; the last good config stays\" why=\"%s\"", m->path, why);
        free(text);
        return;
    }
    gw_log(GW_LOG_NOTICE, "CTL-MIRROR-CONFIG", "file=%s enable=%d target=%s ratio=%g", m->path,
           cfg.enable, cfg.target ? cfg.target : "-", cfg.ratio);
    gw_mirror_cfg_fini(&cfg);
    set_text(m, text);
}

static void
on_tick(gw_loop *loop, void *arg)
{
    ctl_mirror *m = arg;
    (void)loop;

    ctl_mirror_reload(m);
    gw_timer_start(m->timer, m->interval_ms);
}

ctl_mirror *
ctl_mirror_new(gw_loop *loop, const char *path, uint64_t interval_ms, ctl_metrics *metrics,
               ctl_mirror_change_fn cb, void *arg)
{
    ctl_mirror *m = gw_xcalloc(1, sizeof(*m));

    m->path = gw_xstrdup(path != NULL ? path : "");
    m->interval_ms = interval_ms;
    m->metrics = metrics;
    m->cb = cb;
    m->arg = arg;
    ctl_mirror_reload(m);
    m->started = true;
    if (m->path[0] != '\0') {
        m->timer = gw_timer_new(loop, on_tick, m);
        gw_timer_start(m->timer, m->interval_ms);
    }
    return m;
}

void
ctl_mirror_free(ctl_mirror *m)
{
    if (m == NULL)
        return;
    gw_timer_free(m->timer);
    free(m->text);
    free(m->path);
    free(m);
}

const char *
ctl_mirror_text(const ctl_mirror *m)
{
    return m != NULL ? m->text : NULL;
}
