/*
 * sink_fault - which RCPT ringmail-sink refuses, and with what words
 *
 * Scripted by the local part (case-insensitive prefix, so tempfail7@ works too): tempfail gets
 * 451 4.3.0, permfail 550 5.1.1, 421 a 421 4.7.0 and the session closes; disconnect-in-data is
 * accepted here and cut later by sink_conn.c. Random: --tempfail / --permfail percentages drawn
 * from the worker's splitmix64 stream (seeded from --seed and the worker index, so a run with the
 * same seed, one worker and the same order of recipients repeats exactly), with a reply line
 * picked from the 4xx or 5xx pool: the --responses file, or the built-in provider-like set.
 * A reply line that says "x.x.x.x" gets the client's address there, as the providers' do.
 */
#include "tools/sink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/mem.h"

/* written for this tool in the manner of large providers' deferrals and refusals */
static const char *const builtin[] = {
    "421 4.7.28 Our system has detected an unusual rate of unsolicited mail originating from your IP "
    "address. To protect our users from spam, mail sent from your IP address has been temporarily "
    "rate limited.",
    "421 4.7.0 [TS04] Messages from x.x.x.x temporarily deferred due to unexpected volume or user complaints",
    "451 4.7.1 Greylisted, please try again in a few minutes",
    "452 4.2.2 The recipient's mailbox is over its storage quota, try again later",
    "450 4.2.1 The user you are trying to contact is receiving mail too quickly, please resend later",
    "550 5.1.1 The email account that you tried to reach does not exist",
    "554 5.7.1 Message rejected because of local policy",
    "552 5.2.2 The recipient's mailbox is full and cannot accept messages now",
    "553 5.1.3 The recipient address is not a valid address",
};

static const char scripted_temp[] = "451 4.3.0 Temporary failure requested by the recipient's local part";
static const char scripted_perm[] = "550 5.1.1 No such user here (requested by the recipient's local part)";
static const char scripted_421[] = "421 4.7.0 Closing the connection as requested by the recipient's local part";

uint64_t sink_fault_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int sink_fault_parse_line(const char *line, struct sink_response *out)
{
    size_t len = strlen(line);

    if (len < 5 || len > SINK_TEXT_MAX || (line[0] != '4' && line[0] != '5') || line[1] < '0' || line[1] > '9' ||
        line[2] < '0' || line[2] > '9' || line[3] != ' ')
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            return -EINVAL;
    out->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    out->text = xstrdup(line);
    return 0;
}

static int add(struct sink_faults *f, const struct sink_response *r)
{
    if (r->code / 100 == 4) {
        if (f->n_temp == SINK_RESPONSES_MAX)
            return -E2BIG;
        f->temp[f->n_temp++] = *r;
    } else {
        if (f->n_perm == SINK_RESPONSES_MAX)
            return -E2BIG;
        f->perm[f->n_perm++] = *r;
    }
    return 0;
}

int sink_fault_load(struct sink_faults *f, const char *path, char **err)
{
    struct sink_response r;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned lineno = 0;
    FILE *fp;
    int rc = 0;

    memset(f, 0, sizeof(*f));
    if (!path) {
        for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
            rc = sink_fault_parse_line(builtin[i], &r);
            ASSERT(rc == 0);
            rc = add(f, &r);
            ASSERT(rc == 0);
        }
        return 0;
    }
    fp = fopen(path, "r");
    if (!fp) {
        rc = -errno;
        *err = xasprintf("%s: %s", path, strerror(-rc));
        return rc;
    }
    while ((n = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        if (sink_fault_parse_line(line, &r) < 0) {
            *err = xasprintf("%s:%u: not a 4xx or 5xx reply line of at most %d printable characters", path, lineno,
                             SINK_TEXT_MAX);
            rc = -EINVAL;
            break;
        }
        if (add(f, &r) < 0) {
            free(r.text);
            *err = xasprintf("%s:%u: more than %d lines of one class", path, lineno, SINK_RESPONSES_MAX);
            rc = -E2BIG;
            break;
        }
    }
    free(line);
    fclose(fp);
    if (rc)
        sink_fault_free(f);
    return rc;
}

void sink_fault_free(struct sink_faults *f)
{
    for (unsigned i = 0; i < f->n_temp; i++)
        free(f->temp[i].text);
    for (unsigned i = 0; i < f->n_perm; i++)
        free(f->perm[i].text);
    f->n_temp = f->n_perm = 0;
}

static bool prefix(const char *local, const char *word)
{
    return strncasecmp(local, word, strlen(word)) == 0;
}

bool sink_fault_cut_in_data(const char *local)
{
    return prefix(local, "disconnect-in-data");
}

/* format - the reply line with CRLF, the first "x.x.x.x" replaced by the peer's address */
static const char *format(const char *text, const char *peer, char *buf, size_t cap)
{
    const char *x = strstr(text, "x.x.x.x");

    if (x)
        snprintf(buf, cap, "%.*s%s%s\r\n", (int)(x - text), text, peer, x + 7);
    else
        snprintf(buf, cap, "%s\r\n", text);
    return buf;
}

const char *sink_fault_rcpt(struct sink_worker *w, const char *local, const char *peer, char *buf, size_t cap,
                            bool *close)
{
    const struct sink_opts *o = &w->s->o;
    const struct sink_faults *f = &w->s->faults;
    const struct sink_response *r;
    double draw;

    *close = false;
    if (prefix(local, "tempfail")) {
        w->st.tempfail++;
        return format(scripted_temp, peer, buf, cap);
    }
    if (prefix(local, "permfail")) {
        w->st.permfail++;
        return format(scripted_perm, peer, buf, cap);
    }
    if (prefix(local, "421")) {
        w->st.closed_421++;
        *close = true;
        return format(scripted_421, peer, buf, cap);
    }
    if (o->tempfail_pct <= 0 && o->permfail_pct <= 0)
        return NULL;
    /* 53 random bits: a uniform double in [0, 100) */
    draw = (double)(sink_fault_rand(&w->rng) >> 11) * (100.0 / 9007199254740992.0);
    if (draw < o->tempfail_pct) {
        r = &f->temp[sink_fault_rand(&w->rng) % f->n_temp];
        w->st.tempfail++;
        if (r->code == 421) {
            w->st.closed_421++;
            *close = true;
        }
        return format(r->text, peer, buf, cap);
    }
    if (draw < o->tempfail_pct + o->permfail_pct) {
        r = &f->perm[sink_fault_rand(&w->rng) % f->n_perm];
        w->st.permfail++;
        return format(r->text, peer, buf, cap);
    }
    return NULL;
}
