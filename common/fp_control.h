/*
 * fp_control.h - the control message feed-bridge sends its broker's
 * feed_auth.so: one per feed.deliver message (bridge option deliver_mode
 * control), fanned out inside the broker to feed/<uid> per recipient.
 *
 * Topic FP_CONTROL_DELIVER_TOPIC, QoS 1, published by a role service
 * client only (the plugin's ACL refuses it to anyone else). Payload:
 *
 *   <expiry_s> <uid> <uid> ...\n<payload>
 *
 * expiry_s: decimal, the Message Expiry Interval in seconds each feed/<uid>
 * publish carries (0: none); then 1 to FP_CONTROL_IDS_MAX valid ids
 * (fp_id.h), each after one space; one '\n'; then the payload as published to every feed,
 * at least one byte. The broker's PUBACK comes after the fan-out has been
 * queued inside the broker.
 */
#ifndef FP_CONTROL_H
#define FP_CONTROL_H

#define FP_CONTROL_DELIVER_TOPIC "$CONTROL/feedpush/v1/deliver"
/* Largest expiry_s accepted: the Message Expiry Interval is 32 bits. */
#define FP_CONTROL_EXPIRY_MAX 4294967295u
/* Most recipients in one message: each costs the broker a copy of the
 * payload, held until its next loop turn. */
#define FP_CONTROL_IDS_MAX 1000

#endif
