/*
 * trace - a role's side of ringctl trace-smtp-client / trace-smtp-server (supervisor/supervisor_trace.c)
 *
 * rt_trace_init() (role_rt_init) remembers the segment's trace word and prepares a non-blocking
 * SOCK_DGRAM socket towards DATA_DIR/trace.sock. rt_trace_on(side) is the whole cost of tracing while
 * nobody traces: one relaxed load of the supervisor's word and a branch; call it before building any
 * event. rt_trace_send() drops an event no tracer may want (the supervisor's prefilter in the header,
 * proto_trace.h), encodes and sends the others without waiting: when the socket is full or the
 * supervisor is not there, the event is dropped and counted (trace_events_dropped); sent ones count in
 * trace_events. The supervisor re-checks everything (the word is only a hint: a role cannot make itself
 * traced by anyone).
 * rt_trace_session_id() gives a number unique in this node for a new session (instance in the top bits).
 */
#ifndef RINGMAIL_RT_TRACE_H
#define RINGMAIL_RT_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/proto_trace.h"

struct role_rt;

extern const _Atomic uint32_t *rt_trace_word; /* NULL until rt_trace_init(): nothing is traced */

static inline bool rt_trace_on(enum proto_trace_side side)
{
    const _Atomic uint32_t *w = rt_trace_word;
    return w && (atomic_load_explicit(w, memory_order_relaxed) & (1u << side));
}

void rt_trace_init(struct role_rt *rt);
void rt_trace_send(struct proto_trace_event *ev);
uint64_t rt_trace_session_id(void);
void rt_trace_fini(void);

#endif
