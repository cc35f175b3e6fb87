#include "fp_id.h"

#include <string.h>

static bool id__char_ok(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return true;
    if (c >= 'A' && c <= 'Z')
        return true;
    if (c >= '0' && c <= '9')
        return true;
    return c == '_' || c == '-';
}

bool fp_id_valid_n(const char *s, size_t len)
{
    size_t i;

    if (s == NULL || len == 0 || len > FP_ID_MAX)
        return false;
    for (i = 0; i < len; i++) {
        if (!id__char_ok((unsigned char)s[i]))
            return false;
    }
    return true;
}

bool fp_id_valid(const char *s)
{
    if (s == NULL)
        return false;
    /* strnlen bounds the scan: a huge string is rejected after FP_ID_MAX+1 bytes. */
    return fp_id_valid_n(s, strnlen(s, FP_ID_MAX + 1));
}
