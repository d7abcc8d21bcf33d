/* ctl_main: the llmgw-controller binary. Parses and validates the options
 * (ctl_cfg), builds the context (ctl_ctx), runs the loop until SIGTERM or
 * SIGINT, then frees everything so sanitizer exits are clean. No logic
 * lives here (STYLE §1). Exit status: 0 after a signal or a clean
 * --help/--check-config, 1 on bad options or a failed start. */
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>

#include "ctl_cfg.h"
#include "ctl_ctx.h"
#include "gw/gw_cfg.h"
#include "gw/gw_log.h"

int
main(int argc, char **argv)
{
    ctl_cfg cfg = {0};
    ctl_ctx ctx = {0};
    gw_cfg_prog prog = {
        .name = "llmgw-controller",
        .version = GW_VERSION,
        .summary = "llmgw control plane: discovers models and endpoints, publishes routing "
                   "snapshots and fleet load to workers",
        .validate = ctl_cfg_validate,
    };
    int status = 1;

    gw_log_set_proc("ctl");
    switch (gw_cfg_parse(ctl_cfg_opts, &cfg, &prog, argc, argv)) {
    case GW_CFG_RUN:
        break;
    case GW_CFG_EXIT_OK:
        return 0;
    case GW_CFG_EXIT_ERR:
        return 1;
    }
    (void)gw_log_parse_level(cfg.log_level, &gw_log_level); /* validated */
    /* MHD writes with MSG_NOSIGNAL, but be sure a dead peer never kills us. */
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread exists (nng's, curl's resolver): the engine scraper
     * uses libcurl. */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (ctl_ctx_init(&ctx, &cfg) == GW_OK) {
        if (ctl_ctx_run(&ctx) == GW_OK)
            status = 0;
        gw_log(GW_LOG_NOTICE, "CTL-EXIT", "status=%d", status);
        ctl_ctx_fini(&ctx);
    }
    curl_global_cleanup();
    gw_cfg_free(ctl_cfg_opts, &cfg);
    return status;
}
