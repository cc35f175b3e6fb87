/*
 * deliver_msg.c - the deliver control message of fp_control.h, parsed and
 * checked (pure, so unit-tested without the broker; fanout.c acts on it):
 *
 *   <expiry_s> <uid> <uid> ...\n<payload>
 *
 * Everything is checked before anything is published, so a malformed
 * message delivers nothing.
 */
#include <string.h>

#include "feed_auth.h"
#include "fp_control.h"

/* Most digits of expiry_s: FP_CONTROL_EXPIRY_MAX has 10. */
#define DELIVER_MSG__DIGITS_MAX 10
#define DELIVER_MSG__STR2(x) #x
#define DELIVER_MSG__STR(x) DELIVER_MSG__STR2(x)

const char *fa_deliver_parse(const void *payload, size_t len, fa_deliver_msg *m)
{
    const char *p = payload, *nl, *tok;
    uint64_t secs = 0;
    size_t digits = 0;

    memset(m, 0, sizeof(*m));
    if (p == NULL || len == 0)
        return "empty";
    nl = memchr(p, '\n', len);
    if (nl == NULL)
        return "no header line";
    for (; p < nl && *p >= '0' && *p <= '9' && digits <= DELIVER_MSG__DIGITS_MAX; p++, digits++)
        secs = secs * 10 + (uint64_t)(*p - '0');
    if (digits == 0 || digits > DELIVER_MSG__DIGITS_MAX || secs > FP_CONTROL_EXPIRY_MAX)
        return "no expiry in seconds first";
    if (p == nl || *p != ' ')
        return "no recipients";
    m->expiry_s = (uint32_t)secs;
    m->ids = ++p;
    m->ids_len = (size_t)(nl - p);
    for (tok = p;; p++) {
        if (p < nl && *p != ' ')
            continue;
        if (!fp_id_valid_n(tok, (size_t)(p - tok)))
            return "a recipient is not a valid id";
        if (m->n == FP_CONTROL_IDS_MAX)
            return "more than " DELIVER_MSG__STR(FP_CONTROL_IDS_MAX) " recipients";
        m->n++;
        tok = p + 1;
        if (p == nl)
            break;
    }
    m->body = nl + 1;
    m->body_len = len - (size_t)(m->body - (const char *)payload);
    if (m->body_len == 0)
        return "no payload after the header line";
    return NULL;
}

bool fa_deliver_next(const fa_deliver_msg *m, size_t *pos, const char **id, size_t *id_len)
{
    const char *sp;

    if (*pos >= m->ids_len)
        return false;
    *id = m->ids + *pos;
    sp = memchr(*id, ' ', m->ids_len - *pos);
    *id_len = sp != NULL ? (size_t)(sp - *id) : m->ids_len - *pos;
    *pos += *id_len + 1;
    return true;
}
