/* ut_file: see ut_file.h. */
#include "ut_file.h"

#include <criterion/criterion.h>
#include <stdio.h>

void
ut_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}
