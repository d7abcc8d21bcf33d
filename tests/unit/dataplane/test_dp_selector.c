/* Unit tests for dp_selector: the external-filter label-selector grammar
 * (good and bad inputs) and its matching semantics. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dp_selector.h"
#include "ut_leak.h"

static void
fini(void)
{
    ut_leak_check();
}
TestSuite(dp_selector, .fini = fini, .timeout = 10);

static bool
parse(const char *s, dp_selector *sel)
{
    char why[160];
    return dp_selector_parse(s, strlen(s), sel, why, sizeof(why));
}

static bool
matches(const char *s, char *const *labels, uint32_t n)
{
    dp_selector sel;
    cr_assert(parse(s, &sel), "'%s' should parse", s);
    return dp_selector_matches(&sel, labels, n);
}

Test(dp_selector, parses_every_operator)
{
    dp_selector sel;

    cr_assert(
        parse("app=web, tier==gold,env!=prod,zone in (a, b),gpu notin(a10),canary,!legacy", &sel));
    cr_assert_eq(sel.n, 7);
    cr_assert_eq(sel.reqs[0].op, DP_SEL_EQ);
    cr_assert_eq(sel.reqs[1].op, DP_SEL_EQ);
    cr_assert_eq(sel.reqs[2].op, DP_SEL_NE);
    cr_assert_eq(sel.reqs[3].op, DP_SEL_IN);
    cr_assert_eq(sel.reqs[3].n_values, 2);
    cr_assert_eq(sel.reqs[4].op, DP_SEL_NOTIN);
    cr_assert_eq(sel.reqs[5].op, DP_SEL_EXISTS);
    cr_assert_eq(sel.reqs[6].op, DP_SEL_NOT_EXISTS);
    cr_assert(parse("model.aibrix.ai/name=llama-3.1_8b", &sel));
    cr_assert(parse("k=", &sel), "an empty value is a value");
    cr_assert(parse("   ", &sel));
    cr_assert_eq(sel.n, 0);
    cr_assert(parse("", &sel));
}

Test(dp_selector, rejects_malformed_selectors)
{
    const char *bad[] = {",",
                         "a,",
                         ",a",
                         "a b",
                         "=v",
                         "a=b=c",
                         "a===b",
                         "a!b",
                         "a in a",
                         "a in ()",
                         "a in (b,)",
                         "a in (b",
                         "a in (b c)",
                         "a notin",
                         "a inn (b)",
                         "!a=b",
                         "!",
                         "-a=b",
                         "a-=b",
                         "a=-b",
                         "a=b.",
                         "a=b/c",
                         "A.b/c=d",
                         "/a=b",
                         "a/=b",
                         "a/b/c=d",
                         "a=\x01",
                         "a=b;c",
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=b"};
    dp_selector sel;
    char why[160];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        cr_assert_not(dp_selector_parse(bad[i], strlen(bad[i]), &sel, why, sizeof(why)),
                      "'%s' accepted", bad[i]);
        cr_assert(strstr(why, "invalid external-filter") != NULL, "'%s': %s", bad[i], why);
    }
}

Test(dp_selector, enforces_limits)
{
    dp_selector sel;
    char s[2048];
    size_t o = 0;

    for (int i = 0; i < 17; i++)
        o += (size_t)snprintf(s + o, sizeof(s) - o, "%sk%d", i ? "," : "", i);
    cr_assert_not(parse(s, &sel), "17 requirements");
    o = (size_t)snprintf(s, sizeof(s), "k in (");
    for (int i = 0; i < 17; i++)
        o += (size_t)snprintf(s + o, sizeof(s) - o, "%sv%d", i ? "," : "", i);
    snprintf(s + o, sizeof(s) - o, ")");
    cr_assert_not(parse(s, &sel), "17 values");
    memset(s, ' ', 1100);
    s[0] = 'k';
    s[1100] = '\0';
    cr_assert_not(parse(s, &sel), "over 1024 bytes");
}

Test(dp_selector, reads_only_len_bytes)
{
    dp_selector sel;
    char why[160];
    const char buf[] = {'a', '=', 'b', ',', 'c'}; /* no NUL */

    cr_assert(dp_selector_parse(buf, 3, &sel, why, sizeof(why)));
    cr_assert_eq(sel.n, 1);
    cr_assert_not(dp_selector_parse(buf, 4, &sel, why, sizeof(why)));
}

Test(dp_selector, matches_kubernetes_semantics)
{
    char *web[] = {"app=web", "zone=b", "canary", "tier=gold"};
    char *none[] = {NULL};

    cr_assert(matches("app=web", web, 4));
    cr_assert(matches("app==web,zone=b", web, 4));
    cr_assert_not(matches("app=we", web, 4), "values compare whole");
    cr_assert_not(matches("ap=web", web, 4), "keys compare whole");
    cr_assert(matches("app!=api", web, 4));
    cr_assert(matches("missing!=x", web, 4), "!= holds when the label is absent");
    cr_assert_not(matches("app!=web", web, 4));
    cr_assert(matches("zone in (a,b)", web, 4));
    cr_assert_not(matches("zone in (a,c)", web, 4));
    cr_assert_not(matches("missing in (a)", web, 4), "in needs the label");
    cr_assert(matches("zone notin (a,c)", web, 4));
    cr_assert(matches("missing notin (a)", web, 4), "notin holds when absent");
    cr_assert(matches("canary", web, 4), "a label without '=' exists");
    cr_assert(matches("canary=", web, 4), "with an empty value");
    cr_assert(matches("tier", web, 4));
    cr_assert_not(matches("!tier", web, 4));
    cr_assert(matches("!gpu", web, 4));
    cr_assert_not(matches("app=web,!canary", web, 4), "AND");
    cr_assert(matches("", none, 0));
    cr_assert_not(matches("app", none, 0));
    cr_assert(matches("app!=x,!app", none, 0));
}
