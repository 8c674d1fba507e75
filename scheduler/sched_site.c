/*
 * sched_site - domains and their sites, site names, resolution results (contract in sched_site.h)
 */
#include "scheduler/sched_site.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "scheduler/sched_msg.h"
#include "scheduler/sched_path.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sched_site_name(char *out, size_t size, const char *const *hosts, size_t count)
{
    if (count == 0 || size == 0)
        return -EINVAL;
    char **h = xcalloc(count, sizeof(*h));
    for (size_t i = 0; i < count; i++) {
        h[i] = sched_name_lower_dup(hosts[i]);
        size_t len = strlen(h[i]);
        while (len > 0 && h[i][len - 1] == '.')
            h[i][--len] = '\0';
    }
    qsort(h, count, sizeof(*h), cmp_str);
    size_t pos = 0;
    bool ok = true;
    out[0] = '\0';
    for (size_t i = 0; i < count && ok; i++) {
        if ((i > 0 && strcmp(h[i], h[i - 1]) == 0) || !h[i][0])
            continue;
        if (pos > 0)
            ok = sched_name_append(out, size, &pos, ",", false);
        ok = ok && sched_name_append(out, size, &pos, h[i], false);
    }
    for (size_t i = 0; i < count; i++)
        free(h[i]);
    free(h);
    if (!ok)
        return -ENAMETOOLONG;
    return pos ? 0 : -EINVAL;
}

struct sched_domain *sched_site_domain_get(struct sched_core *c, const char *name)
{
    uint64_t h = sched_name_hash(name);
    struct sched_domain *d = (struct sched_domain *)sched_name_find(&c->domains, name, h);
    if (d)
        return d;
    d = xcalloc(1, sizeof(*d));
    d->n.name = xstrdup(name);
    d->n.hash = h;
    sched_name_add(&c->domains, &d->n);
    return d;
}

void sched_site_domain_put(struct sched_core *c, struct sched_domain *d)
{
    if (--d->queues > 0)
        return;
    ASSERT(d->waiting.count == 0);
    if (d->site)
        d->site->domains--;
    sched_name_del(&c->domains, &d->n);
    free(d->n.name);
    free(d);
}

static struct sched_domain *domain_find(struct sched_core *c, const char *domain)
{
    char *dlc = sched_name_lower_dup(domain);
    struct sched_domain *d = (struct sched_domain *)sched_name_find(&c->domains, dlc, sched_name_hash(dlc));
    free(dlc);
    return d;
}

static struct sched_site *site_get(struct sched_core *c, const char *name)
{
    uint64_t h = sched_name_hash(name);
    struct sched_site *s = (struct sched_site *)sched_name_find(&c->sites, name, h);
    if (s)
        return s;
    s = xcalloc(1, sizeof(*s));
    s->n.name = xstrdup(name);
    s->n.hash = h;
    sched_name_add(&c->sites, &s->n);
    return s;
}

int sched_site_resolved(struct sched_core *c, const char *domain, const char *site_name, uint32_t ttl_s,
                        uint64_t now_ms)
{
    if (!sched_name_given(site_name))
        return -EINVAL;
    struct sched_domain *d = domain_find(c, domain);
    if (!d)
        return -ENOENT;
    if (now_ms > c->now)
        c->now = now_ms;
    struct sched_site *site = site_get(c, site_name);
    if (d->site != site) {
        if (d->site)
            d->site->domains--;
        site->domains++;
        d->site = site;
    }
    d->site_expires_ms = now_ms + (uint64_t)ttl_s * 1000u;
    d->resolving = false;
    /* the domain cannot vanish here: its waiting messages keep their queues alive, and
     * placing a message never frees one */
    struct sched_msg *m;
    while ((m = sched_mlist_pop(&d->waiting)))
        sched_path_place(c, m, d->site, now_ms);
    return 0;
}

int sched_site_failed(struct sched_core *c, const char *domain, bool permanent, const char *reason,
                      uint64_t now_ms)
{
    struct sched_domain *d = domain_find(c, domain);
    if (!d)
        return -ENOENT;
    if (now_ms > c->now)
        c->now = now_ms;
    d->resolving = false;
    /* bounce and drop can free the domain with its last message: move the list out first */
    struct sched_mlist waiting = d->waiting;
    d->waiting = (struct sched_mlist){ 0 };
    struct sched_msg *m;
    while ((m = sched_mlist_pop(&waiting))) {
        if (permanent) {
            c->st.bounced++;
            if (c->hooks.bounce)
                c->hooks.bounce(c->hooks.arg, m, reason ? reason : "site resolution failed");
            sched_msg_drop(c, m);
        } else {
            sched_msg_retry(c, m, now_ms);
        }
    }
    return 0;
}

