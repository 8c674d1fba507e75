/*
 * supervisor_shaping - the node's shaping as the admin API sees it: validate, resolve, set-shaping
 *
 * supervisor_shaping_load() validates a configuration's shaping (its [shaping] files, or the built-in
 * file, plus the override file) at start and before every reload: a bad file refuses the reload with
 * every FILE:LINE error, and nothing changes.
 * supervisor_shaping_resolve() answers GET /api/v1/shaping/resolve from the shaping last validated.
 * supervisor_shaping_set() answers POST /api/v1/shaping/set: the options go into the override file
 * (<data_dir>/shaping-override.json, KumoMTA's JSON shaping format, merged after every other file),
 * the candidate is validated with the rest of the shaping, written atomically (temporary file, fsync,
 * rename) and the node reloads. A refused candidate leaves the file as it was.
 * Main thread only: the admin thread hands these over with supervisor_request().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/file.h"
#include "base/log.h"
#include "base/mem.h"
#include "common/proto_status.h"
#include "policy/shaping_node.h"
#include "supervisor/supervisor.h"

#define OVERRIDE_MAX (16u << 20)

int supervisor_shaping_load(const struct cfg *c, struct shaping **out, char **err)
{
    struct shaping_diags d = {0};
    struct shaping *sh = shaping_node_load(c, &d);
    if (!sh) {
        *err = shaping_diags_text(&d);
        shaping_diags_fini(&d);
        return -EINVAL;
    }
    for (size_t i = 0; i < d.n; i++)
        log_warn("shaping: %s:%u: %s", d.v[i].file, d.v[i].line, d.v[i].msg);
    shaping_diags_fini(&d);
    *out = sh;
    return 0;
}

/* applies - an automation effect in force for this path: site effects (Suspend, SetConfig) by site and,
 * when they name one, source; domain effects (SetDomainConfig, SuspendTenant/Campaign, Bounce) by domain */
static bool applies(const struct proto_status_tsa_entry *e, const char *domain, const char *source, const char *site)
{
    bool by_site = e->site[0] && strcmp(e->site, site) == 0 && (!e->source[0] || strcmp(e->source, source) == 0);
    bool by_domain = e->domain[0] && strcmp(e->domain, domain) == 0 && !e->site[0];
    return by_site || by_domain;
}

/*
 * automation_overlay - the automation effects in force for the path, from the scheduler's TSA page:
 * each SetConfig / SetDomainConfig replaces its option in "config" (set_by says which rule and how long),
 * and every effect that applies is listed in "automation". A page that is missing or breaks its schema
 * adds nothing (logged): the files' answer still stands.
 */
static void automation_overlay(struct supervisor *s, json_t *doc, const char *domain, const char *source,
                               const char *site)
{
    size_t n = 0;
    uint64_t at = 0;
    char *page = shm_segment_page_read(&s->seg, PROTO_NODE_STATUS_TSA, &n, &at);
    json_t *list = json_array();
    json_object_set_new(doc, "automation", list);
    if (!page)
        return;
    struct proto_status_tsa t;
    char *why = NULL;
    int rc = proto_status_tsa_decode(page, n, false, &t, &why);
    free(page);
    if (rc < 0) {
        log_warn("the scheduler's TSA page breaks its schema: %s", why);
        free(why);
        return;
    }
    json_t *config = json_object_get(doc, "config"), *set_by = json_object_get(doc, "set_by");
    for (size_t i = 0; i < t.n_active; i++) {
        const struct proto_status_tsa_entry *e = &t.active[i];
        if (!applies(e, domain, source, site))
            continue;
        json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s}", "action", e->action, "rule_file",
                                              e->rule_file, "response", e->response, "rule_line",
                                              (json_int_t)e->rule_line, "remaining_ms",
                                              (json_int_t)(e->remaining_ms > 0 ? e->remaining_ms : 0), "key",
                                              e->site[0] ? e->site : e->domain));
        if (!e->option || !e->value || !json_is_object(config))
            continue;
        json_t *v = json_loads(e->value, JSON_DECODE_ANY, NULL);
        if (!v)
            continue;
        json_object_set_new(config, e->option, v);
        char *by = xasprintf("automation %s %s:%llu, %llds left", e->action, e->rule_file,
                             (unsigned long long)e->rule_line, (long long)(e->remaining_ms / 1000));
        json_object_set_new(set_by, e->option, json_string(by));
        free(by);
    }
    proto_status_tsa_fini(&t);
}

void supervisor_shaping_resolve(struct supervisor *s, struct sup_request *req)
{
    if (!s->shaping) {
        req->status = -ENOENT;
        req->detail = xstrdup("no shaping is loaded");
        return;
    }
    const char *site = req->site && req->site[0] ? req->site : req->domain;
    json_t *doc = shaping_explain(s->shaping, req->domain, req->source ? req->source : "", site);
    automation_overlay(s, doc, req->domain, req->source ? req->source : "", site);
    req->detail = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    req->status = req->detail ? 0 : -ENOMEM;
}

/* option_value - the JSON value of a client's text: an integer, true/false, else the string as given
 * (rates, durations, enable_tls names); the shaping loader decides whether it fits the option */
static json_t *option_value(const char *v)
{
    char *end;
    if (v[0] >= '0' && v[0] <= '9') {
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (!*end && !errno)
            return json_integer(n);
    }
    if (strcmp(v, "true") == 0)
        return json_true();
    if (strcmp(v, "false") == 0)
        return json_false();
    return json_string(v);
}

/* write_atomic - path replaced by text, durable before the rename */
static int write_atomic(const char *path, const char *text)
{
    char *tmp = xasprintf("%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;
    if (fd < 0) {
        rc = -errno;
    } else {
        size_t n = strlen(text), off = 0;
        while (off < n && rc == 0) {
            ssize_t w = write(fd, text + off, n - off);
            if (w < 0)
                rc = errno == EINTR ? 0 : -errno;
            else
                off += (size_t)w;
        }
        if (rc == 0 && fsync(fd) < 0)
            rc = -errno;
        close(fd);
        if (rc == 0 && rename(tmp, path) < 0)
            rc = -errno;
        if (rc < 0)
            unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* candidate - the override document with the request's options set on its block */
static json_t *candidate(const char *path, const struct sup_request *req, char **why)
{
    char *text = NULL;
    size_t len = 0;
    json_t *doc = NULL;
    int rc = file_read_all(path, OVERRIDE_MAX, &text, &len);
    if (rc == -ENOENT) {
        doc = json_object();
    } else if (rc < 0) {
        *why = xasprintf("%s: %s", path, strerror(-rc));
        return NULL;
    } else {
        json_error_t je;
        doc = json_loadb(text, len, 0, &je);
        free(text);
        if (!json_is_object(doc)) {
            *why = xasprintf("%s:%d: not a JSON object (%s): fix or remove it", path, je.line, je.text);
            json_decref(doc);
            return NULL;
        }
    }
    json_t *block = json_object_get(doc, req->domain);
    if (!json_is_object(block)) {
        block = json_object();
        json_object_set_new(doc, req->domain, block);
    }
    if (req->source && req->source[0]) {
        json_t *sources = json_object_get(block, "sources");
        if (!json_is_object(sources)) {
            sources = json_object();
            json_object_set_new(block, "sources", sources);
        }
        json_t *sb = json_object_get(sources, req->source);
        if (!json_is_object(sb)) {
            sb = json_object();
            json_object_set_new(sources, req->source, sb);
        }
        block = sb;
    }
    for (size_t i = 0; i < req->n_opts; i++)
        json_object_set_new(block, req->opt_names[i], option_value(req->opt_values[i]));
    return doc;
}

void supervisor_shaping_set(struct supervisor *s, struct sup_request *req)
{
    char *path = shaping_node_override_path(&s->cfg), *why = NULL;
    json_t *doc = candidate(path, req, &why);
    if (!doc) {
        req->status = -EINVAL;
        req->detail = why;
        free(path);
        return;
    }
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(doc);

    /* validate the candidate with every other file before it replaces the override */
    char *old = NULL;
    size_t old_len = 0;
    bool had = file_read_all(path, OVERRIDE_MAX, &old, &old_len) == 0;
    int rc = write_atomic(path, text);
    if (rc == 0) {
        struct shaping *sh = NULL;
        char *err = NULL;
        if (supervisor_shaping_load(&s->cfg, &sh, &err) < 0) {
            /* put the previous override back: a refused set-shaping changes nothing */
            int back = had ? write_atomic(path, old) : (unlink(path) < 0 ? -errno : 0);
            if (back < 0)
                log_error("set-shaping: cannot restore %s: %s", path, strerror(-back));
            req->status = -EINVAL;
            req->detail = xasprintf("set-shaping refused, nothing changed:\n%s", err ? err : "");
            free(err);
        } else {
            shaping_free(sh);
            log_info("set-shaping: %s updated for %s%s%s", path, req->domain, req->source ? " source " : "",
                     req->source ? req->source : "");
            req->status = supervisor_reload(s, &req->detail);
        }
    } else {
        req->status = rc;
        req->detail = xasprintf("cannot write %s: %s", path, strerror(-rc));
    }
    free(old);
    free(text);
    free(path);
}
