/*
 * trace - send SMTP trace events to the supervisor (contract in rt/trace.h)
 */
#include "rt/trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "rt/role_rt.h"
#include "shm/shm_segment.h"

const _Atomic uint32_t *rt_trace_word;

static int trace_fd = -1;
static const struct shm_header *trace_hdr;
static struct sockaddr_un trace_addr;
static struct proto_node_instance *trace_self;
static uint64_t trace_seq;
static unsigned trace_instance;

void rt_trace_init(struct role_rt *rt)
{
    char *path = xasprintf("%s/trace.sock", rt->cfg.data_dir);
    trace_self = rt->self;
    trace_instance = rt->self_idx;
    if (strlen(path) < sizeof(trace_addr.sun_path)) {
        trace_addr.sun_family = AF_UNIX;
        memcpy(trace_addr.sun_path, path, strlen(path) + 1);
        trace_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    } else {
        log_warn("no SMTP trace from this role: %s is too long for a socket path", path);
    }
    free(path);
    if (trace_fd >= 0) {
        trace_hdr = rt->seg.hdr;
        rt_trace_word = &rt->seg.hdr->trace_on;
    }
}

uint64_t rt_trace_session_id(void)
{
    return ((uint64_t)trace_instance << 48) | (++trace_seq & ((UINT64_C(1) << 48) - 1));
}

/*
 * wanted - may some tracer want this event (the supervisor's prefilter, copied under its sequence
 * lock)? When the copy keeps changing under us, yes: the supervisor filters anyway.
 */
static bool wanted(const struct proto_trace_event *ev)
{
    struct proto_trace_shm_filter fs[PROTO_TRACE_SHM_FILTERS];
    for (int tries = 0; tries < 4; tries++) {
        uint32_t g = atomic_load_explicit(&trace_hdr->trace_gen, memory_order_acquire);
        if (g & 1)
            continue;
        memcpy(fs, (const void *)trace_hdr->trace_filters, sizeof(fs));
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&trace_hdr->trace_gen, memory_order_relaxed) == g)
            return proto_trace_shm_wanted(fs, PROTO_TRACE_SHM_FILTERS, ev);
    }
    return true;
}

void rt_trace_send(struct proto_trace_event *ev)
{
    uint8_t rec[PROTO_TRACE_DGRAM_MAX];
    struct timespec ts;

    if (trace_fd < 0 || !wanted(ev))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    ev->time_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    int n = proto_trace_encode(ev, rec, sizeof(rec));
    if (n < 0)
        panic("a trace event this role built does not encode: %s", strerror(-n));
    /* sendto each time: the supervisor's socket may have been made again since (its restart) */
    ssize_t w = sendto(trace_fd, rec, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&trace_addr,
                       sizeof(trace_addr));
    proto_node_counter_add(trace_self, w == n ? PROTO_NODE_CTR_TRACE_EVENTS : PROTO_NODE_CTR_TRACE_DROPPED, 1);
}

void rt_trace_fini(void)
{
    rt_trace_word = NULL;
    if (trace_fd >= 0)
        close(trace_fd);
    trace_fd = -1;
}
