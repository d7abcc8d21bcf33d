/* Unit tests for ctl_yaml: the bounded YAML tree builder. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_yaml.h"
#include "ut_leak.h"

TestSuite(ctl_yaml, .fini = ut_leak_check, .timeout = 10);

static ctl_ynode *
parse_ok(const char *text)
{
    ctl_ynode *root = NULL;
    char *why = NULL;

    cr_assert_eq(ctl_yaml_parse(text, strlen(text), &root, &why), GW_OK, "%s", why);
    return root;
}

static void
expect_refused(const char *text, const char *needle)
{
    ctl_ynode *root = (ctl_ynode *)0x1;
    char *why = NULL;

    cr_assert_eq(ctl_yaml_parse(text, strlen(text), &root, &why), GW_EINVAL, "accepted: %s", text);
    cr_assert_eq(root, (ctl_ynode *)0x1, "out must be untouched on error");
    cr_assert(why != NULL && strstr(why, needle) != NULL, "message \"%s\" lacks \"%s\"", why,
              needle);
    free(why);
}

Test(ctl_yaml, builds_maps_lists_and_scalars_with_positions)
{
    ctl_ynode *root = parse_ok("a: 1\nb:\n  - x\n  - 'y'\n");
    const ctl_ynode *b;

    cr_assert_eq(root->kind, CTL_Y_MAP);
    cr_assert_eq(root->n, 2);
    cr_assert_str_eq(ctl_yaml_get(root, "a")->str, "1");
    b = ctl_yaml_get(root, "b");
    cr_assert_eq(b->kind, CTL_Y_SEQ);
    cr_assert_eq(b->n, 2);
    cr_assert_eq(b->items[1]->line, 4);
    cr_assert_eq(b->items[1]->col, 5);
    cr_assert(b->items[0]->plain);
    cr_assert(!b->items[1]->plain, "quoted scalars are not plain");
    cr_assert_null(ctl_yaml_get(root, "c"));
    ctl_yaml_free(root);
}

Test(ctl_yaml, empty_stream_is_a_null_root)
{
    ctl_ynode *root = parse_ok("# only a comment\n");

    cr_assert_null(root);
}

Test(ctl_yaml, scalar_helpers_resolve_null_bool_and_int)
{
    ctl_ynode *root =
        parse_ok("n: ~\ne:\nq: 'null'\nt: yes\nf: FALSE\ni: -42\nbig: 99999999999999999999\n"
                 "x: 12a\n");
    bool bv;
    int64_t iv;

    cr_assert(ctl_yaml_is_null(ctl_yaml_get(root, "n")));
    cr_assert(ctl_yaml_is_null(ctl_yaml_get(root, "e")));
    cr_assert(!ctl_yaml_is_null(ctl_yaml_get(root, "q")), "a quoted 'null' is a string");
    cr_assert(ctl_yaml_bool(ctl_yaml_get(root, "t"), &bv) && bv);
    cr_assert(ctl_yaml_bool(ctl_yaml_get(root, "f"), &bv) && !bv);
    cr_assert(ctl_yaml_int(ctl_yaml_get(root, "i"), &iv) && iv == -42);
    cr_assert(!ctl_yaml_int(ctl_yaml_get(root, "big"), &iv), "overflow is refused");
    cr_assert(!ctl_yaml_int(ctl_yaml_get(root, "x"), &iv));
    cr_assert_str_eq(ctl_yaml_kind_name(root), "a mapping");
    ctl_yaml_free(root);
}

Test(ctl_yaml, syntax_errors_carry_line_and_column)
{
    expect_refused("a: 1\nb: [1, 2\n", "3:1:");
    expect_refused("a: b: c\n", "1:5: mapping values are not allowed");
}

Test(ctl_yaml, aliases_are_refused)
{
    expect_refused("a: &x [1]\nb: *x\n", "2:4: aliases are not supported (*x)");
}

Test(ctl_yaml, duplicate_keys_are_refused)
{
    expect_refused("a: 1\nb: 2\na: 3\n", "3:1: duplicate key \"a\"");
}

Test(ctl_yaml, second_document_is_refused)
{
    expect_refused("a: 1\n---\nb: 2\n", "only one YAML document");
}

Test(ctl_yaml, non_scalar_keys_are_refused)
{
    expect_refused("? [a, b]\n: 1\n", "mapping keys must be plain strings");
}

Test(ctl_yaml, nesting_depth_is_capped)
{
    char text[256];
    size_t n = 0;

    for (int i = 0; i < 70; i++)
        text[n++] = '[';
    for (int i = 0; i < 70; i++)
        text[n++] = ']';
    text[n] = '\0';
    expect_refused(text, "nesting is deeper than 64 levels");
}

Test(ctl_yaml, errors_inside_open_mappings_free_everything)
{
    /* The duplicate is found with several containers open; LSan checks. */
    expect_refused("top:\n  mid:\n    - k: 1\n      k: 2\n", "duplicate key");
    expect_refused("top:\n  list: [a, {x: 1, y: *nope}]\n", "aliases");
}
