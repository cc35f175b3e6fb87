/*
 * Smoke test: a real mosquitto started by the harness with a generated
 * config routes a QoS 1 message from one libmosquitto client to another,
 * and listens for MQTT over WebSockets on its second port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <mosquitto.h>

#include "ft_harness.h"
#include "plugin_env.h" /* ft_mqtt_run_group */
#include "ft_main.h"

typedef struct {
    int subscribed;
    int received;
    char payload[128];
} sub_state;

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *qos)
{
    (void)m;
    (void)mid;
    (void)n;
    (void)qos;
    ((sub_state *)obj)->subscribed = 1;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    sub_state *st = obj;
    size_t n = (size_t)msg->payloadlen < sizeof(st->payload) - 1 ? (size_t)msg->payloadlen
                                                                  : sizeof(st->payload) - 1;

    (void)m;
    memcpy(st->payload, msg->payload, n);
    st->payload[n] = '\0';
    st->received++;
}

/* Runs the client loop until *flag is set or 5 s pass. */
static void loop_until(struct mosquitto *m, const int *flag)
{
    time_t end = time(NULL) + 5;

    while (*flag == 0 && time(NULL) < end)
        assert_int_equal(mosquitto_loop(m, 100, 1), MOSQ_ERR_SUCCESS);
}

static int tcp_accepts(int port)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), rc;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
    close(fd);
    return rc == 0;
}

static void test_mosquitto_pub_sub(void **state)
{
    ft_server s;
    sub_state st = {0};
    struct mosquitto *sub, *pub;
    int mid;

    (void)state;
    assert_int_equal(ft_server_start(&s, "mosquitto", NULL), 0);
    assert_true(tcp_accepts(s.ws_port));

    sub = mosquitto_new("smoke-sub", true, &st);
    pub = mosquitto_new("smoke-pub", true, NULL);
    assert_non_null(sub);
    assert_non_null(pub);
    mosquitto_subscribe_callback_set(sub, on_subscribe);
    mosquitto_message_callback_set(sub, on_message);
    assert_int_equal(mosquitto_connect(sub, "127.0.0.1", s.port, 30), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_subscribe(sub, &mid, "smoke/topic", 1), MOSQ_ERR_SUCCESS);
    loop_until(sub, &st.subscribed);
    assert_true(st.subscribed);

    assert_int_equal(mosquitto_connect(pub, "127.0.0.1", s.port, 30), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_publish(pub, &mid, "smoke/topic", 5, "hello", 1, false),
                     MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop(pub, 100, 1), MOSQ_ERR_SUCCESS);
    loop_until(sub, &st.received);
    assert_int_equal(st.received, 1);
    assert_string_equal(st.payload, "hello");

    mosquitto_disconnect(pub);
    mosquitto_disconnect(sub);
    mosquitto_destroy(pub);
    mosquitto_destroy(sub);
    assert_int_equal(ft_server_stop(&s), 0);
    assert_false(tcp_accepts(s.port));
}

/* clang-format off */
FT_MAIN(ft_mqtt_run_group, NULL, NULL,
        cmocka_unit_test(test_mosquitto_pub_sub))
/* clang-format on */
