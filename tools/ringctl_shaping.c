/*
 * ringctl_shaping - `ringctl validate-shaping FILE...` and `ringctl resolve-shaping ...`
 *
 *   validate-shaping FILE...     offline: every error and warning as FILE:LINE: ..., then OK when
 *                                there was no error; exit 0, or 1 on any error
 *   resolve-shaping --domain D [--source S] [--site SITE | --mx HOST ...] [--shaping FILE ...] [--json]
 *                                the effective path configuration: with --shaping offline on those
 *                                files, else from the node (GET /api/v1/shaping/resolve), which also
 *                                knows the MX site and active automation overrides
 * --mx hosts become the site as the node names it (lower case, no trailing dot, sorted, unique,
 * joined with ','). --json prints the document of docs/admin-api.md as it is.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/buf.h"
#include "base/mem.h"
#include "policy/shaping.h"
#include "tools/ringctl_shaping.h"

bool ringctl_shaping_command(const char *name)
{
    return strcmp(name, "validate-shaping") == 0 || strcmp(name, "resolve-shaping") == 0 ||
           strcmp(name, "set-shaping") == 0;
}

static void print_diags(const struct shaping_diags *d)
{
    char *text = shaping_diags_text(d);
    fputs(text, stdout);
    free(text);
}

static int validate(int argc, char **argv)
{
    struct shaping_diags d = {0};
    if (argc < 2) {
        fprintf(stderr, "usage: ringctl validate-shaping FILE...\n");
        return 2;
    }
    struct shaping *sh = shaping_load((const char *const *)argv + 1, (size_t)argc - 1, &d);
    print_diags(&d);
    if (sh)
        printf("OK\n");
    shaping_diags_fini(&d);
    shaping_free(sh);
    return sh ? 0 : 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* the site name of an MX host set, as dns_site_name() makes it */
static char *site_of(char **mx, size_t n)
{
    char **v = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        v[i] = xstrdup(mx[i]);
        for (char *p = v[i]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        size_t len = strlen(v[i]);
        if (len && v[i][len - 1] == '.')
            v[i][len - 1] = '\0';
    }
    qsort(v, n, sizeof(char *), cmp_str);
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
            continue;
        if (b.len)
            buf_putc(&b, ',');
        buf_puts(&b, v[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
    return buf_take(&b);
}

/* url_add - "SEP KEY=VALUE", the value percent-encoded */
static void url_add(struct buf *b, char sep, const char *key, const char *v)
{
    buf_printf(b, "%c%s=", sep, key);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (isalnum(*p) || strchr("-._~", *p))
            buf_putc(b, (char)*p);
        else
            buf_printf(b, "%%%02X", *p);
    }
}

static void print_value(const json_t *v)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    printf("%s", s ? s : "?");
    free(s);
}

/* member_or - a non-empty string member of the answer, else dflt (a missing member never crashes ringctl) */
static const char *member_or(const json_t *doc, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(doc, key));
    return v && *v ? v : dflt;
}

/* the people's form of the document shaping_explain() makes */
static int print_explain(const json_t *doc)
{
    const json_t *config = json_object_get(doc, "config"), *set_by = json_object_get(doc, "set_by");
    const json_t *rules = json_object_get(doc, "rules");
    if (!json_is_object(config) || !json_is_object(set_by) || !json_is_array(rules)) {
        fprintf(stderr, "ringctl: the answer lacks config, set_by or rules (docs/admin-api.md)\n");
        return 1;
    }
    const char *prov = json_string_value(json_object_get(doc, "provider_name"));
    printf("domain %s, source %s, site %s\n", member_or(doc, "domain", "?"), member_or(doc, "source", "-"),
           member_or(doc, "site", "-"));
    printf("provider_name %s\n\n", prov && *prov ? prov : "-");
    size_t n = json_object_size(config), k = 0;
    const char **keys = xcalloc(n + 1, sizeof(char *));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v) keys[k++] = key;
    qsort(keys, k, sizeof(char *), cmp_str);
    printf("%-46s %-24s %s\n", "OPTION", "VALUE", "SET BY");
    for (size_t i = 0; i < k; i++) {
        printf("%-46s ", keys[i]);
        const json_t *val = json_object_get(config, keys[i]);
        char *s = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%-24s %s\n", s ? s : "?", json_string_value(json_object_get(set_by, keys[i])) ?: "-");
        free(s);
    }
    free(keys);
    static const char *const named[][2] = {{"additional_connection_limits", "named connection limits"},
                                           {"additional_message_rate_throttles", "named message rate throttles"},
                                           {"additional_source_selection_rates", "named source selection rates"}};
    for (size_t i = 0; i < 3; i++) {
        const json_t *m = json_object_get(config, named[i][0]);
        if (!json_is_object(m) || !json_object_size(m))
            continue;
        printf("\n%s:\n", named[i][1]);
        json_object_foreach((json_t *)m, key, v) {
            printf("  %-50s ", key);
            print_value(v);
            printf("\n");
        }
    }
    printf("\nautomation rules in scope: %zu\n", json_array_size(rules));
    size_t i;
    json_array_foreach(rules, i, v) {
        printf("  #%lld %s:%lld (%s)\n", (long long)json_integer_value(json_object_get(v, "id")),
               member_or(v, "file", "?"), (long long)json_integer_value(json_object_get(v, "line")),
               member_or(v, "scope", "?"));
        printf("    regex: ");
        print_value(json_object_get(v, "regex"));
        printf("\n    action: ");
        print_value(json_object_get(v, "action"));
        printf("\n    trigger: ");
        print_value(json_object_get(v, "trigger"));
        printf("\n    duration: %s%s\n", member_or(v, "duration", "?"),
               json_is_true(json_object_get(v, "match_internal")) ? ", match_internal" : "");
    }
    return 0;
}

static void resolve_usage(FILE *f)
{
    fprintf(f, "usage: ringctl resolve-shaping --domain D [--source S] [--site SITE | --mx HOST ...] "
               "[--shaping FILE ...] [--json]\n");
}

static int resolve(int argc, char **argv, const char *endpoint, ringctl_http_fn http)
{
    static const struct option opts[] = {
        {"domain", required_argument, NULL, 'd'}, {"source", required_argument, NULL, 's'},
        {"site", required_argument, NULL, 'S'},   {"mx", required_argument, NULL, 'm'},
        {"shaping", required_argument, NULL, 'f'}, {"json", no_argument, NULL, 'j'},
        {"endpoint", required_argument, NULL, 'e'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *domain = NULL, *source = "", *site_opt = NULL;
    char **mx = xcalloc((size_t)argc + 1, sizeof(char *)), **files = xcalloc((size_t)argc + 1, sizeof(char *));
    size_t n_mx = 0, n_files = 0;
    bool json = false;
    int c, rc = 2;

    optind = 0; /* GNU getopt: start over on this argv */
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            domain = optarg;
            break;
        case 's':
            source = optarg;
            break;
        case 'S':
            site_opt = optarg;
            break;
        case 'm':
            mx[n_mx++] = optarg;
            break;
        case 'f':
            files[n_files++] = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'e':
            endpoint = optarg;
            break;
        case 'h':
            resolve_usage(stdout);
            rc = 0;
            goto out;
        default:
            resolve_usage(stderr);
            goto out;
        }
    }
    if (!domain || optind != argc || (site_opt && n_mx)) {
        resolve_usage(stderr);
        goto out;
    }
    char *site = site_opt ? xstrdup(site_opt) : site_of(mx, n_mx);
    json_t *doc = NULL;
    if (n_files) {
        struct shaping_diags d = {0};
        struct shaping *sh = shaping_load((const char *const *)files, n_files, &d);
        if (!sh) {
            char *text = shaping_diags_text(&d);
            fputs(text, stderr);
            free(text);
            shaping_diags_fini(&d);
            free(site);
            rc = 1;
            goto out;
        }
        shaping_diags_fini(&d);
        /* the rollup block of the queried domain has the queried site (the node learns it from DNS) */
        if (site[0] && !shaping_domain_no_rollup(sh, domain)) {
            char *err = NULL;
            const char **rolled;
            size_t n = shaping_rollup_domains(sh, &rolled);
            for (size_t i = 0; i < n; i++)
                if (strcmp(rolled[i], domain) == 0 && shaping_site_set(sh, domain, site, &err) < 0) {
                    fprintf(stderr, "ringctl: %s\n", err);
                    free(err);
                }
        }
        doc = shaping_explain(sh, domain, source, site);
        shaping_free(sh);
    } else {
        struct buf path;
        buf_init(&path);
        buf_puts(&path, "/api/v1/shaping/resolve");
        url_add(&path, '?', "domain", domain);
        url_add(&path, '&', "source", source);
        url_add(&path, '&', "site", site);
        int status = 0;
        char *body = NULL;
        size_t len = 0;
        int g = http(endpoint, "GET", buf_cstr(&path), &status, &body, &len);
        buf_fini(&path);
        if (g < 0) {
            free(site);
            rc = 3;
            goto out;
        }
        json_error_t je;
        doc = json_loadb(body, len, 0, &je);
        if (status != 200 || !json_is_object(doc)) {
            const char *e = json_string_value(json_object_get(doc, "error"));
            fprintf(stderr, "ringctl: the node answered HTTP %d: %s\n", status, e ? e : body);
            free(body);
            json_decref(doc);
            free(site);
            rc = 1;
            goto out;
        }
        free(body);
    }
    free(site);
    if (json) {
        char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", s);
        free(s);
        rc = 0;
    } else {
        rc = print_explain(doc);
    }
    json_decref(doc);
out:
    free(mx);
    free(files);
    return rc;
}

/*
 * set_shaping - `set-shaping --domain D [--source S] --OPTION VALUE ...`: each --OPTION is a KumoMTA
 * option name with '-' for '_' (--connection-limit 2, --max-message-rate 10/s); the node writes them
 * into its override file, validates and reloads (POST /api/v1/shaping/set), or refuses and says why.
 */
static int set_shaping(int argc, char **argv, const char *endpoint, ringctl_http_fn http)
{
    const char *domain = NULL, *source = NULL;
    struct buf opts = {0}, path = {0};
    size_t n = 0;
    int rc = 2;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2] || i + 1 >= argc) {
            fprintf(stderr, "ringctl set-shaping: expected --OPTION VALUE, got %s\n", a);
            goto out;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--domain") == 0) {
            domain = v;
        } else if (strcmp(a, "--source") == 0) {
            source = v;
        } else if (strcmp(a, "--endpoint") == 0) {
            endpoint = v;
        } else {
            char key[128];
            size_t k = strlen(a + 2);
            if (k >= sizeof(key)) {
                fprintf(stderr, "ringctl set-shaping: option name too long: %s\n", a);
                goto out;
            }
            for (size_t j = 0; j <= k; j++)
                key[j] = a[2 + j] == '-' ? '_' : a[2 + j];
            url_add(&opts, '&', key, v);
            n++;
        }
    }
    if (!domain || n == 0) {
        fprintf(stderr, "usage: ringctl set-shaping --domain D [--source S] --OPTION VALUE ...\n");
        goto out;
    }
    buf_printf(&path, "/api/v1/shaping/set");
    url_add(&path, '?', "domain", domain);
    if (source)
        url_add(&path, '&', "source", source);
    buf_append(&path, buf_cstr(&opts), strlen(buf_cstr(&opts)));
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    if (http(endpoint, "POST", buf_cstr(&path), &status, &body, &len) < 0) {
        rc = 1;
        goto out;
    }
    json_error_t je;
    json_t *doc = json_loadb(body ? body : "", len, 0, &je);
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    const char *error = json_string_value(json_object_get(doc, "error"));
    if (status == 200) {
        printf("%s\n", detail ? detail : "ok");
        rc = 0;
    } else {
        fprintf(stderr, "ringctl set-shaping: HTTP %d: %s\n", status, error ? error : detail ? detail : "");
        rc = 1;
    }
    json_decref(doc);
    free(body);
out:
    buf_fini(&opts);
    buf_fini(&path);
    return rc;
}

int ringctl_shaping_main(int argc, char **argv, const char *endpoint, ringctl_http_fn http)
{
    if (strcmp(argv[0], "validate-shaping") == 0)
        return validate(argc, argv);
    if (strcmp(argv[0], "set-shaping") == 0)
        return set_shaping(argc, argv, endpoint, http);
    return resolve(argc, argv, endpoint, http);
}
