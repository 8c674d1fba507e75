/*
 * egress_path_test - a worker's path configuration table: runs received, replaced, refused; the
 * configuration a DELIVER gets (held id, id 0, unknown id); references; prohibited/skip matching
 *
 * The table is the egress end of MSG_SCHEDULER_PATH_CONFIG: what it stores is what an attempt runs
 * under. The attempt's use of each option (connections, transactions) is covered end to end in
 * tests/e2e/egress_path_test.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "egress/egress_path.h"
#include "tests/lib/check.h"

static const char *prohibited[] = {"10.0.0.0/8", "2001:db8::/32"};
static const char *skip[] = {"192.0.2.7"};

static uint8_t *run_of(uint32_t id, uint32_t gen, uint64_t rcpt_ms, const char *ehlo, bool hosts, size_t *len)
{
    struct proto_path p;
    proto_path_node_defaults(&p, 1000, 2000, 3000, 4000, 5000, 2525, 10);
    p.hdr.path = id;
    p.hdr.generation = gen;
    p.hdr.rcpt_to_timeout_ms = rcpt_ms;
    p.hdr.max_recipients_per_batch = 2;
    p.hdr.enable_tls = PROTO_PATH_TLS_REQUIRED;
    p.ehlo_domain = ehlo;
    p.hdr.ehlo_len = (uint16_t)strlen(ehlo);
    if (hosts) {
        p.prohibited = prohibited;
        p.hdr.n_prohibited = 2;
        p.skip = skip;
        p.hdr.n_skip = 1;
    }
    *len = proto_path_size(&p);
    uint8_t *b = malloc(*len);
    if (proto_path_encode(&p, b, *len) < 0) {
        free(b);
        return NULL;
    }
    return b;
}

static struct sockaddr_storage addr(const char *ip)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    return ss;
}

static void test_table(void)
{
    struct egress_paths t;
    struct cfg cfg = {.egress_connect_timeout_ms = 11, .egress_banner_timeout_ms = 12,
                      .egress_command_timeout_ms = 13, .egress_data_timeout_ms = 14, .egress_idle_timeout_ms = 15,
                      .egress_port = 2500, .egress_max_deliveries_per_connection = 7};
    const char *why = NULL;
    size_t len;

    egress_path_table_init(&t);
    uint8_t *r1 = run_of(3, 1, 700, "mta.example", true, &len);
    CHECK(r1 && egress_path_receive(&t, r1, len, &why) == 0, "receive: %s", why ? why : "");
    struct egress_path *p = egress_path_get(&t, &cfg, 3);
    CHECK(p->h.path == 3 && p->h.generation == 1 && p->h.rcpt_to_timeout_ms == 700, "held id 3");
    CHECK(p->h.smtp_port == 2525 && p->h.max_recipients_per_batch == 2 && strcmp(p->ehlo, "mta.example") == 0,
          "values of id 3");
    CHECK(egress_path_tls_required(p), "Required is required");
    CHECK(p->n_prohibited == 2 && p->n_skip == 1, "host lists");

    /* a new generation replaces the table's entry; the reference an attempt holds keeps the old one */
    uint8_t *r2 = run_of(3, 2, 800, "", false, &len);
    CHECK(egress_path_receive(&t, r2, len, &why) == 0, "receive gen 2: %s", why ? why : "");
    CHECK(p->h.generation == 1 && p->h.rcpt_to_timeout_ms == 700, "a running attempt's configuration changed");
    struct egress_path *q = egress_path_get(&t, &cfg, 3);
    CHECK(q->h.generation == 2 && q->h.rcpt_to_timeout_ms == 800 && q->ehlo[0] == '\0' && q->n_prohibited == 0,
          "gen 2 not served");
    egress_path_put(p);
    egress_path_put(q);

    /* a bad run is dropped, the entry stays */
    r2[0] ^= 1;
    CHECK(egress_path_receive(&t, r2, len, &why) == -EBADMSG && why, "damaged run accepted");
    q = egress_path_get(&t, &cfg, 3);
    CHECK(q->h.generation == 2, "a refused run changed the table");
    egress_path_put(q);

    /* id 0 and an unknown id: the node's keys */
    for (uint32_t id = 0; id <= 9; id += 9) {
        struct egress_path *d = egress_path_get(&t, &cfg, id);
        CHECK(d->h.path == 0 && d->h.connect_timeout_ms == 11 && d->h.banner_timeout_ms == 12 &&
                  d->h.ehlo_timeout_ms == 13 && d->h.mail_from_timeout_ms == 13 && d->h.rcpt_to_timeout_ms == 13 &&
                  d->h.data_timeout_ms == 13 && d->h.rset_timeout_ms == 13 && d->h.data_dot_timeout_ms == 14 &&
                  d->h.idle_timeout_ms == 15 && d->h.smtp_port == 2500,
              "id %u: not the node's keys", id);
        CHECK(d->h.max_recipients_per_batch == PROTO_PATH_RCPTS_MAX && !egress_path_tls_required(d) &&
                  d->n_prohibited == 0 && d->n_skip == 0,
              "id %u: node defaults send as before", id);
        egress_path_put(d);
    }
    free(r1);
    free(r2);
    egress_path_table_fini(&t);
}

static void test_match(void)
{
    struct egress_paths t;
    struct cfg cfg = {0};
    const char *why = NULL;
    size_t len;

    egress_path_table_init(&t);
    uint8_t *r = run_of(1, 1, 700, "", true, &len);
    CHECK(egress_path_receive(&t, r, len, &why) == 0, "receive");
    struct egress_path *p = egress_path_get(&t, &cfg, 1);
    const struct {
        const char *ip;
        bool prohibited, skipped;
    } cases[] = {
        {"10.1.2.3", true, false},       {"11.0.0.1", false, false},     {"::ffff:10.9.9.9", true, false},
        {"2001:db8:1::25", true, false}, {"2001:db9::25", false, false}, {"192.0.2.7", false, true},
        {"192.0.2.8", false, false},     {"::ffff:192.0.2.7", false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage a = addr(cases[i].ip);
        CHECK(egress_path_match(p->prohibited, p->n_prohibited, &a) == cases[i].prohibited, "%s prohibited",
              cases[i].ip);
        CHECK(egress_path_match(p->skip, p->n_skip, &a) == cases[i].skipped, "%s skipped", cases[i].ip);
    }
    struct sockaddr_storage none = {0};
    CHECK(!egress_path_match(p->prohibited, p->n_prohibited, &none), "no address matched");
    egress_path_put(p);
    free(r);
    egress_path_table_fini(&t);
}

int main(void)
{
    test_table();
    test_match();
    CHECK_EXIT();
}
