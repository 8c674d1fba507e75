/*
 * spool_ann - announce batches: queued messages to the scheduler as proto_ann runs in the arena
 *
 * spool_ann_add() encodes a message's entry (spool_dlv_ann_append) into the newest open batch, a run
 * begun by proto_dlv_ann_begin(); a batch closes at SPOOL_ANN_BATCH_MAX entries or
 * SPOOL_ANN_BATCH_BYTES bytes, so one run stays small next to message bodies. spool_ann_flush()
 * sends batches oldest first: it allocates the run, copies the batch, gives it to the scheduler's current
 * generation (the scheduler frees it; if that scheduler dies the supervisor reclaims it) and
 * pushes MSG_SPOOL_MESSAGE_ANNOUNCE_BATCH through the outbox. An arena without room keeps the
 * batch for the next pass, tick or idle call: an announcement is delayed, never dropped.
 * The walk's MSG_SPOOL_WALK_DONE is sent here, right after the last batch the walk filled.
 */
#include "spool/spool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "common/proto_dlv.h"
#include "spool/spool_dlv.h"

#define SPOOL_ANN_BATCH_MAX 256
#define SPOOL_ANN_BATCH_BYTES (64u * 1024u)
#define SCHEDULER 1 /* the scheduler's instance index in the role table */

static struct spool_ann_batch *open_batch(struct spool *sp)
{
    if (sp->n_ann > 0) {
        struct spool_ann_batch *b = &sp->ann[sp->n_ann - 1];
        if (b->count < SPOOL_ANN_BATCH_MAX && b->buf.len < SPOOL_ANN_BATCH_BYTES)
            return b;
    }
    if (sp->n_ann == sp->ann_cap) {
        sp->ann_cap = sp->ann_cap ? sp->ann_cap * 2 : 16;
        sp->ann = xrealloc(sp->ann, sp->ann_cap * sizeof(*sp->ann));
    }
    struct spool_ann_batch *b = &sp->ann[sp->n_ann++];
    memset(b, 0, sizeof(*b));
    b->seq = ++sp->ann_seq;
    proto_dlv_ann_begin(&b->buf);
    return b;
}

bool spool_ann_add(struct spool *sp, struct msgid id, const struct proto_env *rec)
{
    bool any = false;

    for (uint32_t i = 0; i < rec->rcpt_count && !any; i++)
        any = rec->rcpts[i].state == PROTO_RCPT_QUEUED;
    if (!any)
        return false;
    struct spool_ann_batch *b = open_batch(sp);
    uint32_t refused = 0;
    b->count += (uint32_t)spool_dlv_ann_append(&b->buf, id, rec, &refused);
    if (refused) {
        char idtext[MSGID_TEXT_SIZE];
        msgid_format(id, idtext);
        log_warn("message %s: %u recipient domain(s) not announced: queue name or domain empty or with "
                 "a space or control character",
                 idtext, refused);
    }
    return true;
}

size_t spool_ann_backlog(const struct spool *sp)
{
    return sp->n_ann;
}

static void walk_done_check(struct spool *sp)
{
    if (!sp->walk_done_pending || sp->ann_sent_seq < sp->walk_done_seq || !spool_tsa_flush(sp))
        return;
    struct proto_rec d = {.type = MSG_SPOOL_WALK_DONE};
    d.body.count.count = sp->walk_announced;
    spool_out_send(sp, SCHEDULER, &d);
    sp->walk_done_pending = false;
    log_info("start-up walk done: %llu queued messages announced, %llu quarantined",
             (unsigned long long)sp->walk_announced, (unsigned long long)sp->walk.quarantined);
}

/* send_one - 0 sent, -ENOSPC no room now */
static int send_one(struct spool *sp, struct spool_ann_batch *b)
{
    int rc = spool_out_run(sp, SCHEDULER, MSG_SPOOL_MESSAGE_ANNOUNCE_BATCH, b->buf.data, b->buf.len, b->count);
    if (rc < 0 && rc != -ENOSPC)
        log_error("announce batch of %zu bytes does not fit the arena at all (%d)", b->buf.len, rc);
    return rc < 0 ? -ENOSPC : 0;
}

bool spool_ann_flush(struct spool *sp)
{
    size_t i = 0;

    for (; i < sp->n_ann; i++) {
        struct spool_ann_batch *b = &sp->ann[i];
        if (b->count > 0 && send_one(sp, b) < 0) {
            if (sp->ann_stalls++ % 1000 == 0)
                log_warn("arena full: %zu announce batch(es) wait for room", sp->n_ann - i);
            break;
        }
        sp->ann_sent_seq = b->seq;
        buf_fini(&b->buf);
    }
    if (i > 0) {
        memmove(sp->ann, sp->ann + i, (sp->n_ann - i) * sizeof(*sp->ann));
        sp->n_ann -= i;
    }
    walk_done_check(sp);
    return sp->n_ann == 0;
}

void spool_ann_fini(struct spool *sp)
{
    for (size_t i = 0; i < sp->n_ann; i++)
        buf_fini(&sp->ann[i].buf);
    free(sp->ann);
    sp->ann = NULL;
    sp->n_ann = sp->ann_cap = 0;
}
