/* fp_keys.c - see fp_keys.h. */
#include "fp_keys.h"

#include <errno.h>
#include <stdio.h>

int fp_key(char *buf, size_t len, const char *prefix, const char *name, const char *id)
{
    int n = snprintf(buf, len, "%s%s%s", prefix != NULL ? prefix : "", name, id != NULL ? id : "");

    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
