/* Unit tests for gw_buf: the cap (GW_EFULL leaves the contents unchanged),
 * NUL termination, printf, consume, reset and steal. */
#include "gw/gw_buf.h"
#include "gw/gw_curlm.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ut_leak.h"

static gw_buf b;

static void
setup(void)
{
    gw_buf_init(&b, 16);
}

static void
teardown(void)
{
    gw_buf_fini(&b);
    ut_leak_check();
}

TestSuite(gw_buf, .init = setup, .fini = teardown, .timeout = 10);

Test(gw_buf, starts_empty_without_allocating)
{
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.max, 16);
}

Test(gw_buf, append_copies_bytes_and_keeps_a_trailing_nul)
{
    cr_assert_eq(gw_buf_append(&b, "abc", 3), GW_OK);
    cr_assert_eq(gw_buf_append_str(&b, "de"), GW_OK);
    cr_assert_eq(b.len, 5);
    cr_assert_str_eq(b.data, "abcde");
    cr_assert_eq(b.data[5], '\0');
}

Test(gw_buf, binary_data_with_nul_bytes_is_kept)
{
    cr_assert_eq(gw_buf_append(&b, "a\0b", 3), GW_OK);
    cr_assert_eq(b.len, 3);
    cr_assert_eq(memcmp(b.data, "a\0b", 3), 0);
}

Test(gw_buf, empty_append_on_a_fresh_buffer_is_ok)
{
    cr_assert_eq(gw_buf_append(&b, "", 0), GW_OK);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
}

Test(gw_buf, filling_exactly_to_the_cap_fits)
{
    cr_assert_eq(gw_buf_append(&b, "0123456789abcdef", 16), GW_OK);
    cr_assert_eq(b.len, 16);
    cr_assert_str_eq(b.data, "0123456789abcdef");
    cr_assert_eq(gw_buf_append(&b, "", 0), GW_OK, "an empty append still fits");
}

Test(gw_buf, going_over_the_cap_is_efull_and_leaves_contents_unchanged)
{
    cr_assert_eq(gw_buf_append_str(&b, "0123456789"), GW_OK);
    cr_assert_eq(gw_buf_append_str(&b, "abcdefg"), GW_EFULL);
    cr_assert_eq(b.len, 10);
    cr_assert_str_eq(b.data, "0123456789");
    cr_assert_eq(gw_buf_append(&b, "x", SIZE_MAX), GW_EFULL, "no size overflow");
    cr_assert_str_eq(b.data, "0123456789");
}

Test(gw_buf, growth_past_the_first_allocation_keeps_data)
{
    gw_buf big;
    char chunk[100];

    gw_buf_init(&big, 100000);
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(gw_buf_append(&big, chunk, sizeof(chunk)), GW_OK);
    cr_assert_eq(big.len, 100000);
    cr_assert_eq(big.data[99999], 'x');
    cr_assert_eq(big.data[100000], '\0');
    cr_assert_eq(gw_buf_append(&big, "y", 1), GW_EFULL);
    gw_buf_fini(&big);
}

Test(gw_buf, printf_appends_formatted_text)
{
    cr_assert_eq(gw_buf_printf(&b, "n=%d", 42), GW_OK);
    cr_assert_eq(gw_buf_printf(&b, " %s", "ok"), GW_OK);
    cr_assert_str_eq(b.data, "n=42 ok");
    cr_assert_eq(b.len, 7);
}

Test(gw_buf, printf_over_the_cap_is_efull_and_leaves_contents_unchanged)
{
    cr_assert_eq(gw_buf_printf(&b, "%s", "12345678"), GW_OK);
    cr_assert_eq(gw_buf_printf(&b, "%09d", 7), GW_EFULL);
    cr_assert_eq(b.len, 8);
    cr_assert_str_eq(b.data, "12345678");
}

Test(gw_buf, consume_drops_leading_bytes)
{
    cr_assert_eq(gw_buf_append_str(&b, "hello world"), GW_OK);
    gw_buf_consume(&b, 6);
    cr_assert_eq(b.len, 5);
    cr_assert_str_eq(b.data, "world");
    gw_buf_consume(&b, 0);
    cr_assert_str_eq(b.data, "world");
}

Test(gw_buf, consume_of_everything_or_more_empties_it)
{
    cr_assert_eq(gw_buf_append_str(&b, "abc"), GW_OK);
    gw_buf_consume(&b, 3);
    cr_assert_eq(b.len, 0);
    cr_assert_str_eq(b.data, "");
    cr_assert_eq(gw_buf_append_str(&b, "abc"), GW_OK);
    gw_buf_consume(&b, 1000);
    cr_assert_eq(b.len, 0);
    gw_buf consumed_fresh;
    gw_buf_init(&consumed_fresh, 4);
    gw_buf_consume(&consumed_fresh, 1); /* no data yet: must not crash */
    gw_buf_fini(&consumed_fresh);
}

Test(gw_buf, consume_frees_room_under_the_cap)
{
    cr_assert_eq(gw_buf_append_str(&b, "0123456789abcdef"), GW_OK);
    cr_assert_eq(gw_buf_append_str(&b, "g"), GW_EFULL);
    gw_buf_consume(&b, 4);
    cr_assert_eq(gw_buf_append_str(&b, "ghij"), GW_OK);
    cr_assert_str_eq(b.data, "456789abcdefghij");
}

Test(gw_buf, reset_empties_and_keeps_the_allocation)
{
    char *before;

    cr_assert_eq(gw_buf_append_str(&b, "abc"), GW_OK);
    before = b.data;
    gw_buf_reset(&b);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.data, before);
    cr_assert_str_eq(b.data, "");
}

Test(gw_buf, steal_hands_the_data_over_and_resets)
{
    char *s;

    cr_assert_eq(gw_buf_append_str(&b, "mine"), GW_OK);
    s = gw_buf_steal(&b);
    cr_assert_str_eq(s, "mine");
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.max, 16, "the cap survives");
    free(s);
    cr_assert_eq(gw_buf_append_str(&b, "again"), GW_OK);
    cr_assert_str_eq(b.data, "again");
}

Test(gw_buf, steal_of_an_unused_buffer_is_null)
{
    cr_assert_null(gw_buf_steal(&b));
}

Test(gw_buf, fini_is_idempotent)
{
    cr_assert_eq(gw_buf_append_str(&b, "x"), GW_OK);
    gw_buf_fini(&b);
    cr_assert_null(b.data);
    gw_buf_fini(&b);
}

Test(gw_buf, curl_write_callback_appends_and_fails_over_the_cap)
{
    char data[] = "0123456789";

    cr_assert_eq(gw_curl_to_buf(data, 1, 10, &b), 10);
    cr_assert_eq(gw_curl_to_buf(data, 2, 3, &b), 6);
    cr_assert_eq(b.len, 16);
    cr_assert_eq(memcmp(b.data, "0123456789012345", 16), 0);
    cr_assert_eq(gw_curl_to_buf(data, 1, 1, &b), 0, "over the cap: 0 fails the transfer");
    cr_assert_eq(b.len, 16, "and nothing is appended");
}
