/* Unit tests for reg_cfg: llmgw-register's options and the record it
 * builds from them (what the controller's parser must accept). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_disc_rec.h"
#include "reg_cfg.h"
#include "ut_cfg.h"
#include "ut_leak.h"

static void
clean_env(void)
{
    unsetenv("POD_NAME");
    unsetenv("LLMGW_REGISTER_MODEL");
    unsetenv("LLMGW_BACKEND_DISCOVERY");
}

TestSuite(reg_cfg, .init = clean_env, .fini = ut_leak_check, .timeout = 10);

static const gw_cfg_prog prog = {.name = "llmgw-register", .validate = reg_cfg_validate};
#define RUN(cfg, text, ...)                                                                        \
    ut_cfg_run(reg_cfg_opts, (cfg), sizeof(reg_cfg), prog, (text),                                 \
               (const char *const[]){__VA_ARGS__, NULL})

Test(reg_cfg, defaults_and_the_record_round_trip_through_the_controller_parser)
{
    reg_cfg cfg;
    ctl_disc_rec rec = {0}, back;
    char *text, *why = NULL, *json;

    cr_assert_eq(RUN(&cfg, &text, "--model", "llama3", "--ip", "10.0.0.9", "--port", "8001",
                     "--role", "decode", "--roleset", "rs", "--id", "pod-a"),
                 GW_CFG_RUN, "%s", text);
    cr_assert_str_eq(cfg.discovery, "redis");
    cr_assert_eq(reg_cfg_ttl_ms(&cfg), 60000, "seed 004 status TTL");
    cr_assert_eq(reg_cfg_period_ms(&cfg), 20000, "a third of the TTL");
    reg_cfg_record(&cfg, 1234, &rec);
    cr_assert_str_eq(rec.id, "pod-a");
    json = ctl_disc_rec_encode(&rec);
    cr_assert_eq(ctl_disc_rec_parse(json, strlen(json), NULL, &back, &why), GW_OK, "%s", why);
    cr_assert_str_eq(back.model, "llama3");
    cr_assert_str_eq(back.ip, "10.0.0.9");
    cr_assert_eq(back.port, 8001);
    cr_assert_str_eq(back.role, "decode");
    cr_assert_str_eq(back.roleset, "rs");
    cr_assert_str_eq(back.engine, "vllm");
    cr_assert_eq(back.timestamp_ms, 1234);
    ctl_disc_rec_fini(&back);
    ctl_disc_rec_fini(&rec);
    free(json);
    gw_cfg_free(reg_cfg_opts, &cfg);
    free(text);
}

Test(reg_cfg, etcd_ttl_and_an_explicit_period)
{
    reg_cfg cfg;
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--model", "m", "--llm-backend-discovery", "etcd",
                     "--discovery-etcd-lease-ttl", "9", "--discovery-etcd-endpoints", "a:1,b:2"),
                 GW_CFG_RUN, "%s", text);
    cr_assert_eq(reg_cfg_ttl_ms(&cfg), 9000);
    cr_assert_eq(reg_cfg_period_ms(&cfg), 3000);
    gw_cfg_free(reg_cfg_opts, &cfg);
    free(text);
    cr_assert_eq(RUN(&cfg, &text, "--model", "m", "--refresh-interval", "50"), GW_CFG_RUN, "%s",
                 text);
    cr_assert_eq(reg_cfg_period_ms(&cfg), 100, "at least 100 ms");
    gw_cfg_free(reg_cfg_opts, &cfg);
    free(text);
}

Test(reg_cfg, the_id_comes_from_pod_name_then_the_host)
{
    reg_cfg cfg;
    ctl_disc_rec rec = {0};
    char *text;

    cr_assert_eq(RUN(&cfg, &text, "--model", "m", "--port", "7000"), GW_CFG_RUN, "%s", text);
    setenv("POD_NAME", "vllm-3", 1);
    reg_cfg_record(&cfg, 1, &rec);
    cr_assert_str_eq(rec.id, "vllm-3");
    cr_assert_null(rec.role, "both");
    ctl_disc_rec_fini(&rec);
    unsetenv("POD_NAME");
    reg_cfg_record(&cfg, 1, &rec);
    cr_assert(strstr(rec.id, "-7000") != NULL, "%s", rec.id);
    ctl_disc_rec_fini(&rec);
    gw_cfg_free(reg_cfg_opts, &cfg);
    free(text);
}

Test(reg_cfg, refuses_bad_options)
{
    const char *cases[][3] = {
        {"--role", "prefil", "--role must be"},
        {"--llm-backend-discovery", "consul", "must be redis or etcd"},
        {"--ip", "a b", "--ip must be"},
        {"--health-path", "health", "must start with /"},
    };
    reg_cfg cfg;
    char *text;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(RUN(&cfg, &text, "--model", "m", cases[i][0], cases[i][1]), GW_CFG_EXIT_ERR,
                     "%s %s accepted", cases[i][0], cases[i][1]);
        cr_assert(strstr(text, cases[i][2]) != NULL, "%s", text);
        free(text);
    }
    cr_assert_eq(RUN(&cfg, &text, "--port", "1"), GW_CFG_EXIT_ERR, "--model is required");
    cr_assert(strstr(text, "model") != NULL, "%s", text);
    free(text);
    cr_assert_eq(RUN(&cfg, &text, "--model", "m", "--llm-backend-discovery", "etcd",
                     "--discovery-etcd-endpoints", "a,,b"),
                 GW_CFG_EXIT_ERR);
    cr_assert(strstr(text, "entry 2") != NULL, "%s", text);
    free(text);
}
