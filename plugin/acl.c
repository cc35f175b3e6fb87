/*
 * acl.c - topic rules, checked for every subscribe, publish and delivered
 * message, so pure in-memory string work.
 *
 *   role user:    subscribe to / receive only feed/<sub> and ribbon,
 *                 exact names (no wildcards); publish nothing.
 *   role service: publish feed/<id> (any valid id), ribbon and the
 *                 deliver control topic (fanout.c); subscribe to and
 *                 receive nothing.
 * Only the ribbon may be published retained: it is state, while a
 * retained feed/<id> event would reach every later subscriber again.
 * Unsubscribing is always allowed. Everything else ($SYS/#, wildcards,
 * other users' feeds) is denied. A persistent session that is offline is
 * checked like its connection was (deliveries into it are reads), until
 * its lifetime ends.
 */
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "feed_auth.h"
#include "fp_control.h"

_Static_assert(FA_ACL_READ == MOSQ_ACL_READ && FA_ACL_WRITE == MOSQ_ACL_WRITE &&
                   FA_ACL_SUBSCRIBE == MOSQ_ACL_SUBSCRIBE &&
                   FA_ACL_UNSUBSCRIBE == MOSQ_ACL_UNSUBSCRIBE,
               "FA_ACL_* must mirror MOSQ_ACL_*");

#define ACL__FEED "feed/"
#define ACL__FEED_LEN 5
#define ACL__RIBBON "ribbon"

/* topic is exactly "feed/<sub>". */
static bool acl__is_own_feed(const char *topic, const char *sub)
{
    return strncmp(topic, ACL__FEED, ACL__FEED_LEN) == 0 && strcmp(topic + ACL__FEED_LEN, sub) == 0;
}

/* topic is "feed/<id>" for some valid id (so no wildcard and no extra level). */
static bool acl__is_any_feed(const char *topic)
{
    return strncmp(topic, ACL__FEED, ACL__FEED_LEN) == 0 && fp_id_valid(topic + ACL__FEED_LEN);
}

bool fa_acl_allowed(fp_role role, const char *sub, const char *topic, int access)
{
    if (topic == NULL || sub == NULL)
        return false;
    if (access == FA_ACL_UNSUBSCRIBE)
        return true;
    if (role == FP_ROLE_SERVICE)
        return access == FA_ACL_WRITE &&
               (strcmp(topic, ACL__RIBBON) == 0 || acl__is_any_feed(topic) ||
                strcmp(topic, FP_CONTROL_DELIVER_TOPIC) == 0);
    if (access != FA_ACL_SUBSCRIBE && access != FA_ACL_READ)
        return false;
    return strcmp(topic, ACL__RIBBON) == 0 || acl__is_own_feed(topic, sub);
}

bool fa_acl_retain_allowed(const char *topic)
{
    return topic != NULL && strcmp(topic, ACL__RIBBON) == 0;
}

int fa_on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ev = event_data;
    fa_plugin *pl = userdata;
    fa_session *s;

    (void)event;
    s = fa_sessions_find(&pl->sessions, ev->client);
    if (s == NULL)
        s = fa_held_adopt(pl, ev->client);
    if (s == NULL)
        return MOSQ_ERR_ACL_DENIED;
    /* An offline persistent session past its lifetime takes nothing more
     * (the sweep drops its record shortly). Before, it only receives: a
     * subscribe or a publish under an offline record is a connection that
     * found a record not its own at its address (a freed context's, reused
     * while a reload's checks ran: auth.c), and gets nothing from it. */
    if (s->offline_until != 0 &&
        ((int64_t)time(NULL) >= s->offline_until || ev->access != MOSQ_ACL_READ))
        return MOSQ_ERR_ACL_DENIED;
    if (ev->access == MOSQ_ACL_WRITE && ev->retain && !fa_acl_retain_allowed(ev->topic))
        return MOSQ_ERR_ACL_DENIED;
    return fa_acl_allowed(s->role, s->sub, ev->topic, ev->access) ? MOSQ_ERR_SUCCESS
                                                                   : MOSQ_ERR_ACL_DENIED;
}
