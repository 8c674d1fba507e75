/*
 * supervisor_notify - tell systemd (Type=notify) how the node is: ready, reloading, stopping, alive
 *
 * Uses libsystemd's sd_notify(); without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.
 * READY=1 is sent once every role instance reports ready in its slot, not before, so `systemctl start`
 * returns when the node accepts and delivers mail. STATUS= says "N/M roles ready, Q queued" and follows
 * the node (at most once a second, and only when the text changes). A reload (SIGHUP, `ringctl reload`,
 * `systemctl reload`) is RELOADING=1 with MONOTONIC_USEC, then READY=1 once every running role applied
 * the new generation (or after [supervisor] ready_timeout, or at once when the file was refused).
 * STOPPING=1 when the node starts to drain.
 *
 * Watchdog: with $WATCHDOG_USEC set (WatchdogSec= in the unit), WATCHDOG=1 is sent every half of it,
 * from the main loop only (a wedged supervisor stops the pings), and only while every ready role's
 * heartbeat is fresh: younger than the smaller of [supervisor] heartbeat_timeout and the watchdog
 * interval. The supervisor already kills and restarts a role whose heartbeat is stale; the watchdog is
 * the last resort when that does not help (a role stuck where SIGKILL does not reach, a supervisor that
 * no longer runs its loop): systemd then restarts the whole node.
 *
 * The role table is writable by every role: a state or heartbeat read from it can at worst delay or
 * withhold a notification (which makes systemd restart the node), never make the supervisor act on
 * another process. The queued gauge is only printed.
 */
#include "supervisor/supervisor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef RINGMAIL_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#else
/* built without libsystemd (-Dsystemd=disabled): never started by systemd, nothing to tell */
static int sd_notify(int unset, const char *state)
{
    (void)unset, (void)state;
    return 0;
}
__attribute__((format(printf, 2, 3))) static int sd_notifyf(int unset, const char *fmt, ...)
{
    (void)unset, (void)fmt;
    return 0;
}
static int sd_watchdog_enabled(int unset, uint64_t *usec)
{
    (void)unset, (void)usec;
    return 0;
}
#endif

#include "base/clock.h"
#include "base/log.h"

#define NOTIFY_STATUS_EVERY_NS CLOCK_MS(1000)

void supervisor_notify_init(struct supervisor *s)
{
    uint64_t usec = 0;

    memset(&s->notify, 0, sizeof(s->notify));
    s->notify.enabled = getenv("NOTIFY_SOCKET") != NULL;
    /* only a watchdog meant for this process (WATCHDOG_PID, when set, must be our pid) */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        s->notify.watchdog_ns = usec * 1000u;
        log_info("systemd watchdog every %llu ms: pinged every %llu ms while the loop runs and every role's "
                 "heartbeat is fresh",
                 (unsigned long long)(usec / 1000u), (unsigned long long)(usec / 2000u));
    }
}

/* ready_count - running instances whose slot says ready; *total the instances that should run */
static unsigned ready_count(const struct supervisor *s, unsigned *total)
{
    unsigned n = 0, t = 0;
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        const struct sup_instance *si = &s->inst[i];
        if (si->state == PROTO_NODE_INST_STOPPED)
            continue;
        t++;
        n += si->pid > 0 && atomic_load(&s->seg.inst[i].state) == PROTO_NODE_INST_READY;
    }
    *total = t;
    return n;
}

static unsigned long long queued(const struct supervisor *s)
{
    unsigned long long q = 0;
    for (unsigned i = 0; i < s->seg.n_instances; i++)
        if (s->inst[i].role == PROTO_NODE_ROLE_SCHEDULER)
            q += atomic_load_explicit(&s->seg.inst[i].counters[PROTO_NODE_CTR_MESSAGES_QUEUED],
                                      memory_order_relaxed);
    return q;
}

/* supervisor_notify_healthy - the watchdog's condition: every ready instance heartbeated within `fresh_ns` */
bool supervisor_notify_healthy(const struct supervisor *s, uint64_t now, uint64_t fresh_ns)
{
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        const struct proto_node_instance *in = &s->seg.inst[i];
        if (s->inst[i].pid <= 0 || atomic_load(&in->state) != PROTO_NODE_INST_READY)
            continue; /* starting, dead, held: the restart policy's business (ready_timeout, backoff) */
        uint64_t hb = atomic_load(&in->heartbeat_ns);
        if (hb && now > hb && now - hb > fresh_ns)
            return false;
    }
    return true;
}

static void send_status(struct supervisor *s, uint64_t now, const char *prefix)
{
    unsigned total, ready = ready_count(s, &total);
    char text[160];

    snprintf(text, sizeof(text), "%s%u/%u roles ready, %llu queued", prefix, ready, total, queued(s));
    s->notify.status_at_ns = now;
    if (strcmp(text, s->notify.status) == 0)
        return;
    snprintf(s->notify.status, sizeof(s->notify.status), "%s", text);
    sd_notifyf(0, "STATUS=%s", text);
}

static bool reload_applied(const struct supervisor *s)
{
    for (unsigned i = 0; i < s->seg.n_instances; i++) {
        const struct proto_node_instance *in = &s->seg.inst[i];
        if (s->inst[i].pid > 0 && atomic_load(&in->state) == PROTO_NODE_INST_READY &&
            atomic_load(&in->reload_seen) != s->reload_gen)
            return false;
    }
    return true;
}

void supervisor_notify_tick(struct supervisor *s, uint64_t now)
{
    struct supervisor_notify *n = &s->notify;

    if (n->watchdog_ns && now - n->watchdog_at_ns >= n->watchdog_ns / 2) {
        uint64_t fresh = CLOCK_MS(s->cfg.heartbeat_timeout_ms);
        if (fresh > n->watchdog_ns)
            fresh = n->watchdog_ns;
        if (supervisor_notify_healthy(s, now, fresh)) {
            sd_notify(0, "WATCHDOG=1");
            n->watchdog_at_ns = now;
            n->withheld = false;
        } else if (!n->withheld) {
            n->withheld = true;
            log_error("systemd watchdog: a role's heartbeat is older than %llu ms; pings withheld until it "
                      "recovers (systemd restarts the node when the watchdog expires)",
                      (unsigned long long)(fresh / 1000000u));
        }
    }
    if (!n->enabled || s->stopping)
        return;
    unsigned total, ready = ready_count(s, &total);
    if (!n->ready_sent) {
        if (ready < total || total == 0)
            return;
        n->ready_sent = true;
        n->status[0] = '\0';
        send_status(s, now, "");
        sd_notify(0, "READY=1");
        log_info("systemd notified: every role ready");
        return;
    }
    if (n->reloading) {
        if (!reload_applied(s) && now - n->reloading_since_ns < CLOCK_MS(s->cfg.ready_timeout_ms))
            return;
        n->reloading = false;
        send_status(s, now, "");
        sd_notify(0, "READY=1");
        return;
    }
    if (now - n->status_at_ns >= NOTIFY_STATUS_EVERY_NS)
        send_status(s, now, "");
}

void supervisor_notify_reloading(struct supervisor *s)
{
    struct timespec ts;

    if (!s->notify.enabled || !s->notify.ready_sent)
        return; /* before the start-up READY=1 systemd still sees the node starting */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
               (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    s->notify.status[0] = '\0';
}

void supervisor_notify_reloaded(struct supervisor *s, int status)
{
    if (!s->notify.enabled)
        return;
    if (!s->notify.ready_sent)
        return; /* the start-up READY=1 is still to come; it covers this reload too */
    if (status < 0) {
        /* refused: the node runs on as before */
        sd_notify(0, "READY=1\nSTATUS=reload refused (configuration not valid), running on the previous one");
        s->notify.status_at_ns = clock_mono_ns();
        snprintf(s->notify.status, sizeof(s->notify.status), "reload refused");
        return;
    }
    s->notify.reloading = true;
    s->notify.reloading_since_ns = clock_mono_ns();
}

void supervisor_notify_stopping(struct supervisor *s)
{
    if (s->notify.enabled)
        sd_notify(0, "STOPPING=1\nSTATUS=draining and stopping");
}
