/*
 * amqp_dead.c - feed.events.dead for an operator's tool: count, take,
 * replay to feed.events, purge (see fp_amqp.h, "Dead letters"). Every call
 * is one RPC on the link's publisher connection, which has confirms on.
 */
#include "amqp_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A kept letter's routing key (fp_amqp_dead_keep): its copy is routed to
 * the queue by name. */
#define DEAD__KEY_HEADER "x-feedpush-routing-key"

void amqp__dead_done(fp_amqp *a)
{
    if (!a->have_dead)
        return;
    amqp_destroy_envelope(&a->dead);
    a->have_dead = false;
}

/* 0 when the publisher connection is up and nothing awaits its confirm
 * (a basic.get's reply must be the next frame), else -EIO. */
static int dead__ready(fp_amqp *a, const char *what)
{
    if (a->out == NULL) {
        amqp__set_error(a, -1, "%s: %s", what, "not connected");
        return -EIO;
    }
    return a->n_pending > 0 ? fp_amqp_confirm(a) : 0;
}

static bool dead__key_is(const amqp_table_entry_t *e, const char *key)
{
    size_t n = strlen(key);

    return e->key.len == n && memcmp(e->key.bytes, key, n) == 0;
}

/* A string field's value into out (outsz bytes, cut to fit); nothing
 * when it is not a string. */
static void dead__string(const amqp_field_value_t *v, char *out, size_t outsz)
{
    if (v->kind != AMQP_FIELD_KIND_UTF8 && v->kind != AMQP_FIELD_KIND_BYTES)
        return;
    snprintf(out, outsz, "%.*s", (int)v->value.bytes.len, (const char *)v->value.bytes.bytes);
}

/* A number field (any integer kind or a timestamp) as int64, or 0. */
static int64_t dead__number(const amqp_field_value_t *v)
{
    switch (v->kind) {
    case AMQP_FIELD_KIND_I8:
        return v->value.i8;
    case AMQP_FIELD_KIND_U8:
        return v->value.u8;
    case AMQP_FIELD_KIND_I16:
        return v->value.i16;
    case AMQP_FIELD_KIND_U16:
        return v->value.u16;
    case AMQP_FIELD_KIND_I32:
        return v->value.i32;
    case AMQP_FIELD_KIND_U32:
        return v->value.u32;
    case AMQP_FIELD_KIND_I64:
        return v->value.i64;
    case AMQP_FIELD_KIND_U64:
    case AMQP_FIELD_KIND_TIMESTAMP:
        return v->value.u64 > INT64_MAX ? INT64_MAX : (int64_t)v->value.u64;
    default:
        return 0;
    }
}

/* d->time from x-feedpush-time, decimal seconds (ahead of x-death's). */
static void dead__time(const amqp_field_value_t *v, fp_amqp_dead *d)
{
    char buf[24], *end;
    long long t;

    buf[0] = '\0';
    dead__string(v, buf, sizeof(buf));
    errno = 0;
    t = strtoll(buf, &end, 10);
    if (errno == 0 && end != buf && *end == '\0' && t > 0)
        d->time = t;
}

/* Fills d's death_* from x-death, an array of tables, newest first. */
static void dead__death(const amqp_field_value_t *v, fp_amqp_dead *d)
{
    const amqp_table_t *t;
    const amqp_table_entry_t *e;
    int i;

    if (v->kind != AMQP_FIELD_KIND_ARRAY || v->value.array.num_entries < 1 ||
        v->value.array.entries[0].kind != AMQP_FIELD_KIND_TABLE)
        return;
    t = &v->value.array.entries[0].value.table;
    for (i = 0; i < t->num_entries; i++) {
        e = &t->entries[i];
        if (dead__key_is(e, "queue"))
            dead__string(&e->value, d->death_queue, sizeof(d->death_queue));
        else if (dead__key_is(e, "reason"))
            dead__string(&e->value, d->death_reason, sizeof(d->death_reason));
        else if (dead__key_is(e, "count"))
            d->death_count = dead__number(&e->value);
        else if (dead__key_is(e, "time") && d->time == 0)
            d->time = dead__number(&e->value);
    }
}

/* Fills d from the letter taken (a->dead): its headers and body. */
static void dead__fill(const fp_amqp *a, fp_amqp_dead *d)
{
    const amqp_basic_properties_t *p = &a->dead.message.properties;
    const amqp_table_entry_t *e;
    int i;

    d->body = a->dead.message.body.bytes;
    d->len = a->dead.message.body.len;
    if ((p->_flags & AMQP_BASIC_HEADERS_FLAG) == 0)
        return;
    for (i = 0; i < p->headers.num_entries; i++) {
        e = &p->headers.entries[i];
        if (dead__key_is(e, DEAD__KEY_HEADER))
            dead__string(&e->value, d->routing_key, sizeof(d->routing_key));
        else if (dead__key_is(e, "x-feedpush-reason"))
            dead__string(&e->value, d->reason, sizeof(d->reason));
        else if (dead__key_is(e, "x-feedpush-batch"))
            dead__string(&e->value, d->batch, sizeof(d->batch));
        else if (dead__key_is(e, "x-feedpush-time"))
            dead__time(&e->value, d);
        else if (dead__key_is(e, "x-death"))
            dead__death(&e->value, d);
    }
}

int fp_amqp_dead_count(fp_amqp *a, uint32_t *n)
{
    amqp_queue_declare_ok_t *ok;

    if (dead__ready(a, FP_QUEUE_DEAD) != 0)
        return -EIO;
    ok = amqp_queue_declare(a->out, AMQP__CHANNEL, amqp_cstring_bytes(FP_QUEUE_DEAD), 1, 0, 0, 0,
                            amqp_empty_table);
    if (ok == NULL)
        return amqp__check(a, a->out, FP_QUEUE_DEAD);
    *n = ok->message_count;
    return 0;
}

/*
 * basic.get (not acked) of one letter, then its content. A message longer
 * than rabbitmq-c takes in one frame is read whole by amqp_read_message.
 * Returns 1, 0 (empty) or -EIO.
 */
int fp_amqp_dead_get(fp_amqp *a, fp_amqp_dead *d)
{
    const amqp_basic_get_ok_t *ok;
    amqp_rpc_reply_t r;

    memset(d, 0, sizeof(*d));
    amqp__dead_done(a);
    if (dead__ready(a, "amqp basic.get") != 0)
        return -EIO;
    amqp__recycle(a); /* the last letter's frames */
    r = amqp_basic_get(a->out, AMQP__CHANNEL, amqp_cstring_bytes(FP_QUEUE_DEAD), 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return amqp__reply_error(a, r, "amqp basic.get");
    if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
        return 0;
    ok = r.reply.decoded;
    d->tag = ok->delivery_tag;
    snprintf(d->routing_key, sizeof(d->routing_key), "%.*s", (int)ok->routing_key.len,
             (const char *)ok->routing_key.bytes);
    memset(&a->dead, 0, sizeof(a->dead));
    r = amqp_read_message(a->out, AMQP__CHANNEL, &a->dead.message, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return amqp__reply_error(a, r, "amqp basic.get");
    a->have_dead = true;
    dead__fill(a, d);
    return 1;
}

/* Acks the letter taken with tag: it leaves the queue. 0 or -EIO. */
static int dead__ack(fp_amqp *a, uint64_t tag)
{
    int rc = amqp_basic_ack(a->out, AMQP__CHANNEL, tag, 0);

    if (rc != AMQP_STATUS_OK) {
        amqp__set_error(a, rc, "%s: %s", "amqp ack", amqp_error_string2(rc));
        return -EIO;
    }
    return 0;
}

int fp_amqp_dead_replay(fp_amqp *a, const fp_amqp_dead *d)
{
    if (fp_amqp_publish(a, FP_EXCHANGE_EVENTS, d->routing_key, d->body, d->len) != 0 ||
        fp_amqp_confirm(a) != 0)
        return -EIO;
    return dead__ack(a, d->tag);
}

/*
 * The headers of the letter taken last, for its copy: all of them but
 * x-delivery-count (the queue's count of the original's deliveries) and
 * an older DEAD__KEY_HEADER, then DEAD__KEY_HEADER with key. Returns
 * the entries (to free) with *n set, or NULL (out of memory).
 */
static amqp_table_entry_t *dead__copy_headers(const fp_amqp *a, const char *key, int *n)
{
    const amqp_basic_properties_t *p = &a->dead.message.properties;
    int i, have = (p->_flags & AMQP_BASIC_HEADERS_FLAG) != 0 ? p->headers.num_entries : 0;
    amqp_table_entry_t *out = malloc((size_t)(have + 1) * sizeof(*out));
    const amqp_table_entry_t *e;

    if (out == NULL)
        return NULL;
    *n = 0;
    for (i = 0; i < have; i++) {
        e = &p->headers.entries[i];
        if (!dead__key_is(e, "x-delivery-count") && !dead__key_is(e, DEAD__KEY_HEADER))
            out[(*n)++] = *e;
    }
    out[*n].key = amqp_cstring_bytes(DEAD__KEY_HEADER);
    out[*n].value.kind = AMQP_FIELD_KIND_UTF8;
    out[*n].value.value.bytes = amqp_cstring_bytes(key);
    (*n)++;
    return out;
}

int fp_amqp_dead_keep(fp_amqp *a, const fp_amqp_dead *d)
{
    amqp_basic_properties_t props;
    amqp_table_entry_t *headers;
    int n, rc;

    if (!a->have_dead || d->tag == 0) {
        amqp__set_error(a, -1, "%s: %s", "amqp keep", "no letter taken");
        return -EIO;
    }
    headers = dead__copy_headers(a, d->routing_key, &n);
    if (headers == NULL)
        return -ENOMEM;
    props = a->dead.message.properties;
    props._flags |= AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.headers.num_entries = n;
    props.headers.entries = headers;
    props.delivery_mode = 2; /* persistent */
    rc = amqp__publish_props(a, "", FP_QUEUE_DEAD, &props, a->dead.message.body);
    free(headers); /* encoded by the publish */
    if (rc != 0 || fp_amqp_confirm(a) != 0)
        return -EIO;
    return dead__ack(a, d->tag);
}

int fp_amqp_dead_purge(fp_amqp *a, uint32_t *n)
{
    amqp_queue_purge_ok_t *ok;

    if (dead__ready(a, FP_QUEUE_DEAD) != 0)
        return -EIO;
    ok = amqp_queue_purge(a->out, AMQP__CHANNEL, amqp_cstring_bytes(FP_QUEUE_DEAD));
    if (ok == NULL)
        return amqp__check(a, a->out, "queue.purge");
    *n = ok->message_count;
    return 0;
}
