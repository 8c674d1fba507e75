/*
 * supervisor_listen - the SMTP listening sockets that the ingress workers inherit
 *
 * The supervisor opens every listener before it starts any role and keeps it open for the life
 * of the node, so an ingress restart never closes a listener: connections that arrive while no
 * ingress runs wait in the kernel's accept queue and are served by the next instance.
 * The descriptors are not close-on-exec; ringmaild passes their numbers to ingress on its argv.
 * The [[http_listener]] sockets (HTTP injection) are opened the same way, one per listener shared by
 * every ingress worker, and follow the SMTP ones after a '/' in --listen-fds.
 */
#include "supervisor/supervisor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"
#include "supervisor/supervisor_bpf.h"

#define LISTEN_BACKLOG 4096

static int open_one(const char *address, bool reuseport, char **err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char *why = NULL;
    int fd = -1, one = 1, rc;

    rc = hostport_resolve(address, 0, AI_PASSIVE, NULL, &ss, &sslen, &why);
    if (rc < 0) {
        *err = xasprintf("listener %s", why);
        free(why);
        return rc;
    }
    /* close-on-exec: only an ingress worker gets its listeners, uncovered in the child (spawn_one) */
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        *err = xasprintf("listener %s: socket: %s", address, strerror(errno));
        return rc;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        rc = -errno;
        *err = xasprintf("listener %s: SO_REUSEPORT: %s", address, strerror(errno));
        close(fd);
        return rc;
    }
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        rc = -errno;
        *err = xasprintf("listener %s: %s", address, strerror(errno));
        close(fd);
        return rc;
    }
    return fd;
}

/*
 * open_steered - one SO_REUSEPORT socket per ingress worker for every listener, with the BPF program
 * choosing the least-loaded ready worker. Any failure undoes everything and says why once.
 */
static int open_steered(struct supervisor *s, char **why)
{
    unsigned n = s->cfg.ingress_workers;
    char *obj = xasprintf("%s/bpf/reuseport_select.bpf.o", s->bin_dir);
    int rc = 0;

    for (size_t l = 0; l < s->cfg.n_listeners && rc == 0; l++) {
        rc = supervisor_bpf_open(obj, n, &s->bpf[l], why);
        for (unsigned w = 0; rc == 0 && w < n; w++) {
            int fd = open_one(s->cfg.listeners[l].address, true, why);
            if (fd < 0) {
                rc = fd;
                break;
            }
            s->worker_fds[l][w] = fd;
            if (w == 0)
                rc = supervisor_bpf_attach(s->bpf[l], fd, why);
            if (rc == 0)
                rc = supervisor_bpf_set_socket(s->bpf[l], w, fd, why);
        }
    }
    free(obj);
    if (rc == 0)
        return 0;
    supervisor_listen_close(s);
    return rc;
}

/* open_http - the HTTP injection listeners: one socket each, shared by the ingress workers */
static int open_http(struct supervisor *s, char **err)
{
    for (size_t i = 0; i < s->cfg.n_http_listeners && i < CFG_MAX_HTTP_LISTENERS; i++) {
        int fd = open_one(s->cfg.http_listeners[i].listen, false, err);
        if (fd < 0)
            return fd;
        s->http_fds[s->n_http_fds++] = fd;
        log_info("listening for HTTP injection on %s%s", s->cfg.http_listeners[i].listen,
                 s->cfg.http_listeners[i].tls_certificate[0] ? " (TLS)" : "");
    }
    return 0;
}

int supervisor_listen_open(struct supervisor *s, char **err)
{
    char *why = NULL;

    s->n_listen_fds = 0;
    s->n_http_fds = 0;
    s->steering = false;
    for (size_t l = 0; l < CFG_MAX_LISTENERS; l++)
        for (unsigned w = 0; w < PROTO_NODE_MAX_WORKERS; w++)
            s->worker_fds[l][w] = -1;
    if (s->cfg.ingress_workers > 1 && open_steered(s, &why) == 0) {
        s->steering = true;
        s->n_listen_fds = (unsigned)s->cfg.n_listeners;
        for (size_t i = 0; i < s->cfg.n_listeners; i++)
            log_info("listening for SMTP on %s (%u sockets, BPF steering to the least-loaded ingress worker)",
                     s->cfg.listeners[i].address, s->cfg.ingress_workers);
        return open_http(s, err);
    }
    if (s->cfg.ingress_workers > 1) {
        s->steering_note = xasprintf("BPF steering unavailable (%s): ingress workers share each listener",
                                     why ? why : "unknown reason");
        log_warn("%s", s->steering_note);
    } else {
        s->steering_note = xstrdup("one ingress worker: no steering needed");
    }
    free(why);
    for (size_t i = 0; i < s->cfg.n_listeners; i++) {
        int fd = open_one(s->cfg.listeners[i].address, false, err);
        if (fd < 0)
            return fd;
        s->listen_fds[s->n_listen_fds++] = fd;
        log_info("listening for SMTP on %s", s->cfg.listeners[i].address);
    }
    return open_http(s, err);
}

size_t supervisor_listen_worker_fds(const struct supervisor *s, unsigned index, int *out, size_t cap,
                                    size_t *n_smtp)
{
    size_t n = 0;
    for (unsigned k = 0; k < s->n_listen_fds && n < cap; k++)
        out[n++] = s->steering ? s->worker_fds[k][index] : s->listen_fds[k];
    *n_smtp = n;
    for (unsigned k = 0; k < s->n_http_fds && n < cap; k++)
        out[n++] = s->http_fds[k];
    return n;
}

void supervisor_listen_fds(const struct supervisor *s, unsigned index, char *buf, size_t len)
{
    int fds[CFG_MAX_LISTENERS + CFG_MAX_HTTP_LISTENERS];
    size_t n_smtp, n = supervisor_listen_worker_fds(s, index, fds, sizeof(fds) / sizeof(fds[0]), &n_smtp);
    size_t off = 0;

    buf[0] = '\0';
    for (size_t k = 0; k < n && off + 12 < len; k++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", k == 0 ? (k < n_smtp ? "" : "/") : (k == n_smtp ? "/" : ","),
                                fds[k]);
}

void supervisor_listen_balance(struct supervisor *s)
{
    uint32_t loads[PROTO_NODE_MAX_WORKERS];
    unsigned n = s->cfg.ingress_workers;

    if (!s->steering)
        return;
    for (unsigned w = 0; w < n; w++) {
        int i = shm_segment_instance_of(&s->seg, PROTO_NODE_ROLE_INGRESS, w);
        struct proto_node_instance *in = &s->seg.inst[i];
        uint64_t sessions = atomic_load_explicit(&in->counters[PROTO_NODE_CTR_SMTP_SESSIONS], memory_order_relaxed);
        /* ready as the worker says, and not draining as the supervisor decided (an operator restart) */
        bool ready = atomic_load(&in->state) == PROTO_NODE_INST_READY && s->inst[i].state != PROTO_NODE_INST_DRAINING &&
                     s->inst[i].pid > 0 && !s->stopping;
        loads[w] = ready ? (uint32_t)(sessions < SUPERVISOR_BPF_NOT_READY - 1 ? sessions : SUPERVISOR_BPF_NOT_READY - 1)
                         : SUPERVISOR_BPF_NOT_READY;
    }
    for (size_t l = 0; l < s->cfg.n_listeners; l++)
        if (s->bpf[l])
            supervisor_bpf_set_loads(s->bpf[l], loads, n);
}

void supervisor_listen_close(struct supervisor *s)
{
    for (size_t l = 0; l < s->cfg.n_listeners; l++) {
        if (s->bpf[l]) {
            if (s->worker_fds[l][0] >= 0)
                supervisor_bpf_detach(s->bpf[l], s->worker_fds[l][0], NULL);
            supervisor_bpf_free(s->bpf[l]);
            s->bpf[l] = NULL;
        }
        for (unsigned w = 0; w < s->cfg.ingress_workers; w++) {
            if (s->worker_fds[l][w] >= 0)
                close(s->worker_fds[l][w]);
            s->worker_fds[l][w] = -1;
        }
    }
    for (unsigned k = 0; k < s->n_http_fds; k++)
        close(s->http_fds[k]);
    s->n_http_fds = 0;
    s->steering = false;
}
