/* llmgw-mock-engine: a stand-in for `vllm serve` in e2e tests and benchmarks
 * (README.md in this directory is its spec). main parses the options, starts
 * one me_engine per port, writes the bound ports to --port-file, then waits
 * for SIGTERM or SIGINT and stops everything, freeing all memory so a
 * sanitizer run exits clean. Signals are blocked in every thread and taken
 * with sigwait here, so no handler ever runs. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "gw/gw_log.h"
#include "gw/gw_mem.h"
#include "me_cfg.h"
#include "me_engine.h"

/* Writes one bound port per line to <path> via a temporary file and rename,
 * so a reader never sees a partial list. */
static int
write_port_file(const char *path, me_engine *const *engs, size_t n)
{
    size_t len = strlen(path) + 8;
    char *tmp = gw_xmalloc(len);
    FILE *f;
    int err = 0;

    snprintf(tmp, len, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        err = errno;
    } else {
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%u\n", me_engine_port(engs[i]));
        if (fclose(f) != 0)
            err = errno;
        else if (rename(tmp, path) != 0)
            err = errno;
    }
    if (err != 0)
        gw_log_errno(GW_LOG_ERR, err, "ME-PORT-FILE", "path=%s", path);
    free(tmp);
    return err;
}

int
main(int argc, char **argv)
{
    me_cfg cfg = {0};
    me_engine **engs = NULL;
    char why[256];
    sigset_t set;
    int sig = 0;
    int status = 1;

    gw_log_set_proc("mock");
    if (me_cfg_parse(&cfg, argc, argv, why, sizeof(why)) != GW_OK) {
        fprintf(stderr, "%s: %s (try --help)\n", argv[0], why);
        me_cfg_fini(&cfg);
        return 2;
    }
    if (cfg.help) {
        me_cfg_usage(stdout, argv[0]);
        me_cfg_fini(&cfg);
        return 0;
    }

    /* Before any thread exists: curl_global_init is not thread-safe, and
     * decodes fetch KV with curl from MHD's connection threads. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "%s: curl_global_init failed\n", argv[0]);
        me_cfg_fini(&cfg);
        return 1;
    }
    /* Before any thread exists, so MHD's threads inherit the mask. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    engs = gw_xcalloc(cfg.nports, sizeof(*engs));
    for (size_t i = 0; i < cfg.nports; i++) {
        if (me_engine_start(&cfg, cfg.ports[i], &engs[i]) != GW_OK)
            goto out;
    }
    if (cfg.port_file != NULL && write_port_file(cfg.port_file, engs, cfg.nports) != 0)
        goto out;
    gw_log(GW_LOG_NOTICE, "ME-START",
           "ports=%zu models=%zu ttft_ms=%u itl_ms=%u kv_sim=%d time_scale=%g pd_role=%s pid=%ld",
           cfg.nports, cfg.nmodels, cfg.knobs.ttft_ms, cfg.knobs.itl_ms, cfg.kv_sim, cfg.time_scale,
           me_pd_role_name(cfg.pd_role), (long)getpid());

    while (sigwait(&set, &sig) != 0)
        ;
    gw_log(GW_LOG_NOTICE, "ME-STOP", "signal=%d", sig);
    status = 0;
out:
    /* Wake every sleeping request first so the daemons stop in parallel. */
    for (size_t i = 0; i < cfg.nports; i++) {
        if (engs[i] != NULL)
            me_engine_shutdown(engs[i]);
    }
    for (size_t i = 0; i < cfg.nports; i++)
        me_engine_free(engs[i]);
    free(engs);
    me_cfg_fini(&cfg);
    curl_global_cleanup();
    return status;
}
