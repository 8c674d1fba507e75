/*
 * bounce_class - rules of regular expressions that map SMTP responses to bounce classes
 *
 * API, rule order and file format in bounce_class.h. Every pattern is compiled once (caseless,
 * byte mode, JIT when the library has it) and matched under one shared match context whose match
 * and heap limits bound the work a single rule can do on any input.
 * Built-in rule order, and why (first match wins, files come before all of these):
 *   - sender problems before recipient and domain ones: "Sender address rejected: Domain not
 *     found" is about our sender, not the recipient's domain;
 *   - the recipient's domain before the recipient's mailbox, whose word rules would read
 *     "Recipient address rejected: Domain not found" as an unknown address;
 *   - recipient-specific answers (unknown user, disabled mailbox, full mailbox) before the block
 *     and policy rules, because receivers also put 5.7.x or 5.4.1 on "recipient not found" replies;
 *   - relay refusals, virus and attachment refusals before the spam rules, which would otherwise
 *     take them through words like "rejected" or "blocked";
 *   - sender-reputation blocks (block lists, IP reputation) before spam-content rules, then a
 *     generic "spam"/"blocked" catch for whatever mentions spam without saying which;
 *   - sender-authentication policy (SPF, DKIM, DMARC) and "TLS required" are PolicyRelated: the
 *     receiver's policy refused how we sent, not who we are; they come before the SMTP AUTH rules
 *     since "unauthenticated mail" is not an AUTH problem;
 *   - then domain, DNS, expiry, routing and connection problems by their enhanced codes and words;
 *   - content and protocol errors, then any other 5.7.x as PolicyRelated;
 *   - last, any 4xx not classified above is TransientFailure: a temporary refusal without a more
 *     specific reason (greylisting, "try again later", server busy). A 4xx with a specific reason
 *     keeps that reason's class (452 4.2.2 is QuotaIssues); the caller still retries it because of
 *     the code. A 5xx without a match stays Uncategorized, as in KumoMTA.
 */
#include "policy/bounce_class.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg/cfg_toml.h"
#include "base/file.h"
#include "base/log.h"
#include "base/mem.h"

/* a rules file larger than this is a mistake, not a rule set */
#define BOUNCE_CLASS_MAX_FILE (16u << 20)
#define BOUNCE_CLASS_MAX_PATTERN 8192u
/* interpreter only (JIT ignores both): backtracking memory per match in KiB, and nesting */
#define BOUNCE_CLASS_HEAP_LIMIT_KIB 4096u
#define BOUNCE_CLASS_DEPTH_LIMIT 10000u

struct bounce_rule {
    const char *class_name; /* built-ins: a literal; file rules: one of bounce_class.names */
    char *origin;           /* "FILE:LINE" or "built-in #N", for logs */
    pcre2_code *re;
};

struct bounce_rule_list {
    struct bounce_rule *v;
    size_t n;
    size_t cap;
};

struct bounce_class {
    struct bounce_rule_list files;
    struct bounce_rule_list builtin;
    char **names; /* class names from files, one copy each */
    size_t n_names;
    pcre2_compile_context *cctx;
    pcre2_match_context *mctx;        /* read-only while matching, so shared by threads */
    atomic_uint_fast64_t *limit_hits; /* separate so a const classifier can still count */
};

struct builtin_rule {
    const char *class_name;
    const char *pattern;
};

/*
 * The subject is "CODE ENHANCED text", so "^\d{3} [45]\.1\.1\b" reads "any code, enhanced 5.1.1
 * or 4.1.1". Gaps between words are bounded ({0,80}) instead of ".*" so no rule backtracks far.
 */
static const struct builtin_rule builtin_rules[] = {
    /* sender */
    {"InvalidSender", "^\\d{3} [45]\\.1\\.[78]\\b"},
    {"InvalidSender", "\\bsender (address )?(rejected|invalid|refused|unknown)"},
    {"InvalidSender", "\\b(invalid|unknown|bad|unverified) sender\\b"},
    {"InvalidSender", "\\bsender (domain|address) (does not exist|not found|unknown|must resolve)"},

    /* recipient domain, before the recipient words: "address rejected: Domain not found" */
    {"BadDomain", "^\\d{3} [45]\\.1\\.2\\b"},
    {"BadDomain", "\\b(domain|host)( name)? (not found|does not exist|unknown|is invalid)\\b"},
    {"BadDomain", "\\bunknown (domain|host)\\b"},
    {"BadDomain", "\\bnull mx\\b"},

    /* recipient does not exist */
    {"InvalidRecipient", "^\\d{3} 5\\.1\\.(1|10|3|6)\\b"},
    {"InvalidRecipient", "\\bRecipientNotFound\\b"},
    {"InvalidRecipient", "\\bno such (user|recipient|mailbox|account|address)\\b"},
    {"InvalidRecipient",
     "\\b(unknown|invalid|non-?existent) (user|recipient|mailbox|account|local part|address)\\b"},
    {"InvalidRecipient",
     "\\b(user|recipient|mailbox|account|e-?mail address)\\b[^.;]{0,80}?\\b(unknown|not found|"
     "does ?n[o']t exist|not exist|no longer exists?|is not valid)\\b"},
    {"InvalidRecipient", "\\bdoes ?n[o']t have an? [\\w.-]{1,64} account\\b"},
    {"InvalidRecipient", "^\\d{3} 5\\.4\\.1 Recipient address rejected: Access denied"},

    /* recipient exists but takes no mail */
    {"InactiveMailbox", "^5\\d\\d 5\\.2\\.1\\b"},
    {"InactiveMailbox",
     "\\b(account|mailbox|user)\\b[^.;]{0,60}?\\b(is )?(disabled|inactive|suspended|deactivated|"
     "expired|locked)\\b"},

    /* full */
    {"QuotaIssues", "^\\d{3} [45]\\.2\\.2\\b"},
    {"QuotaIssues", "\\b(mailbox|inbox|mail ?box|mail folder|account) (is )?(full|out of storage)"},
    {"QuotaIssues", "\\bover (the |their |his |her )?(storage )?quota\\b"},
    {"QuotaIssues", "\\bquota (exceeded|exceed|full|reached)\\b"},
    {"QuotaIssues", "\\bexceeded (the |their |his |her )?(storage |mailbox )?(quota|allocation)\\b"},
    {"QuotaIssues", "\\bout of storage space\\b"},

    /* relaying */
    {"RelayDenied", "\\brelay(ing)? (access )?(denied|not (permitted|allowed))\\b"},
    {"RelayDenied", "\\b(unable|not allowed|cannot) to relay\\b"},
    {"RelayDenied", "\\bwe do not relay\\b"},

    /* virus and attachments */
    {"VirusRelated", "\\b(virus|malware|trojan|worm) (found|detected|infected)\\b"},
    {"VirusRelated", "\\b(infected|contains a virus|virus-infected)\\b"},
    {"ProhibitedAttachment",
     "\\battachment\\b[^.;]{0,60}?\\b(not allowed|not permitted|prohibited|blocked|forbidden|"
     "rejected|unsafe)\\b"},
    {"ProhibitedAttachment",
     "\\b(prohibited|blocked|forbidden|dangerous|executable|banned) (file )?(attachment|file type)s?\\b"},

    /* sender reputation and block lists */
    {"SpamBlock", "\\b(spamhaus|spamcop|barracuda|sorbs|senderscore|uceprotect|cloudmark|dnsbl|rbl)\\b"},
    {"SpamBlock", "\\b(block|black|deny|ban)[ -]?list(ed)?\\b"},
    {"SpamBlock", "\\bbanned sending ip\\b|\\baccess denied, banned sender\\b"},
    {"SpamBlock", "\\b(originating from|sent from|mail from) your (ip|ip address|domain|network)\\b"},
    {"SpamBlock", "\\breputation\\b"},
    /* Yahoo's reputation deferrals and refusals: [TS01]..[TS04], [TSS04], [IPTS04] */
    {"SpamBlock", "\\[(IP)?TSS?0\\d\\]"},
    /* Gmail's 4.7.28: a rate limit on unsolicited mail from the sending IP or DKIM domain, never about the
     * recipient (the suppression list must not take it for one) */
    {"SpamBlock", "^\\d{3} [45]\\.7\\.28\\b"},
    {"SpamBlock",
     "\\b(client host|your ip|sending ip|ip address|your host|your server)\\b[^;]{0,80}?\\b(blocked|"
     "rejected|banned|refused)\\b"},

    /* message content judged as spam */
    {"SpamContent",
     "\\b(message|mail|content|e-?mail)\\b[^.;]{0,40}?\\b(is |was |has been |looks like |appears to be )?"
     "(likely |considered |detected as |classified as |identified as |marked as )?(spam|unsolicited)\\b"},
    {"SpamContent", "\\bspam (content|detected|score|message)\\b"},
    {"SpamContent", "^\\d{3} 5\\.7\\.350\\b"},

    /* spam without saying which; 5.7.1 with block words */
    {"SpamBlock", "\\bspam\\b"},
    {"SpamBlock", "^\\d{3} 5\\.7\\.1\\b[^\\r\\n]{0,200}?\\b(blocked|block listed|black listed)\\b"},

    /* receiver policy about how we send; Yahoo's 5.7.9 "policy reasons" before the AUTH codes take 5.7.9 */
    {"PolicyRelated", "\\b(for|due to) (local |its )?policy reasons\\b"},
    {"PolicyRelated", "\\b(dmarc|spf|dkim)\\b"},
    {"PolicyRelated", "\\bunauthenticated (e-?mail|mail|message)"},
    {"PolicyRelated", "^\\d{3} 5\\.7\\.2[3-7]\\b"},
    {"PolicyRelated",
     "\\b(must issue a starttls|starttls (is )?required|tls (is )?required|encryption (is )?required|"
     "requires? (tls|encryption))"},

    /* SMTP AUTH */
    {"AuthenticationFailed", "^535\\b"},
    {"AuthenticationFailed", "^\\d{3} 5\\.7\\.(8|9|11|13)\\b"},
    {"AuthenticationFailed", "\\bauthentication (failed|required|unsuccessful|credentials invalid)\\b"},

    {"TooManyRecipients", "^\\d{3} [45]\\.5\\.3\\b"},
    {"TooManyRecipients", "\\btoo many recipients\\b"},

    {"DNSFailure", "^\\d{3} [45]\\.4\\.3\\b"},
    {"DNSFailure", "\\bdns (lookup |resolution |query )?(fail(ed|ure)?|error|timeout|servfail)\\b"},
    {"DNSFailure", "\\bservfail\\b"},

    {"MessageExpired", "^\\d{3} [45]\\.4\\.7\\b"},
    {"MessageExpired", "\\b(delivery time|message|queue lifetime) expired\\b|\\bmessage (is )?too old\\b"},

    {"RoutingErrors", "^\\d{3} [45]\\.4\\.[046]\\b"},
    {"RoutingErrors", "\\b(routing|mail) loop\\b|\\btoo many hops\\b|\\bunable to route\\b"},

    {"NoAnswerFromHost", "^\\d{3} [45]\\.4\\.1\\b"},
    {"NoAnswerFromHost", "\\bconnection (timed out|timeout|refused)\\b|\\bno answer from host\\b"},
    {"BadConnection", "^\\d{3} [45]\\.4\\.2\\b"},
    {"BadConnection", "\\bconnection (reset|dropped|closed|lost|broken)\\b|\\bbad connection\\b"},

    /* content and size */
    {"ContentRelated", "^\\d{3} [45]\\.6\\.\\d{1,3}\\b"},
    {"ContentRelated", "^\\d{3} [45]\\.(2\\.3|3\\.4)\\b"},
    {"ContentRelated", "\\bmessage (size )?(exceeds|too (big|large))\\b|\\bmessage size limit\\b"},
    {"ContentRelated", "\\b(invalid|malformed|bad|illegal) (header|mime|message format)\\b"},
    {"ContentRelated", "\\bbare (lf|linefeed|line feed)s?\\b"},

    {"ProtocolErrors", "^\\d{3} [45]\\.5\\.\\d{1,3}\\b"},
    {"ProtocolErrors", "^50[0-4]\\b"},
    {"ProtocolErrors",
     "\\b(syntax error|command (not recognized|unrecognized)|bad sequence of commands|line too long)\\b"},

    {"PolicyRelated", "^\\d{3} 5\\.7\\.\\d{1,3}\\b"},
    {"PolicyRelated", "\\b(policy|not authorized|not permitted|administratively prohibited)\\b"},

    {"TransientFailure", "\\b(grey|gray)list(ed|ing)?\\b"},
    {"TransientFailure", "^4\\d\\d\\b"},
    {"TransientFailure", "^4\\.\\d{1,3}\\.\\d{1,3}\\b"},
};

static void list_push(struct bounce_rule_list *l, struct bounce_rule r)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = r;
}

static void list_fini(struct bounce_rule_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        pcre2_code_free(l->v[i].re);
        free(l->v[i].origin);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* compile - NULL with a message in msg[] when the pattern is refused */
static pcre2_code *compile(const struct bounce_class *bc, const char *pattern, char *msg, size_t msg_size)
{
    int ec = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &ec, &off, bc->cctx);
    if (!re) {
        PCRE2_UCHAR buf[256];
        if (pcre2_get_error_message(ec, buf, sizeof(buf)) < 0)
            snprintf((char *)buf, sizeof(buf), "error %d", ec);
        snprintf(msg, msg_size, "%s at offset %zu", (const char *)buf, (size_t)off);
        return NULL;
    }
    /* no JIT (not built in, or no executable memory) only costs speed: the interpreter runs */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

struct bounce_class *bounce_class_new(void)
{
    struct bounce_class *bc = xcalloc(1, sizeof(*bc));
    bc->limit_hits = xcalloc(1, sizeof(*bc->limit_hits));
    atomic_init(bc->limit_hits, 0);
    bc->cctx = pcre2_compile_context_create(NULL);
    bc->mctx = pcre2_match_context_create(NULL);
    if (!bc->cctx || !bc->mctx)
        fatal("bounce_class: out of memory creating PCRE2 contexts");
    pcre2_set_max_pattern_length(bc->cctx, BOUNCE_CLASS_MAX_PATTERN);
    pcre2_set_match_limit(bc->mctx, BOUNCE_CLASS_MATCH_LIMIT);
    pcre2_set_depth_limit(bc->mctx, BOUNCE_CLASS_DEPTH_LIMIT);
    pcre2_set_heap_limit(bc->mctx, BOUNCE_CLASS_HEAP_LIMIT_KIB);

    size_t n = sizeof(builtin_rules) / sizeof(builtin_rules[0]);
    for (size_t i = 0; i < n; i++) {
        char msg[320];
        pcre2_code *re = compile(bc, builtin_rules[i].pattern, msg, sizeof(msg));
        if (!re)
            panic("bounce_class: built-in rule %zu (%s) does not compile: %s", i, builtin_rules[i].class_name,
                  msg);
        list_push(&bc->builtin,
                  (struct bounce_rule){builtin_rules[i].class_name, xasprintf("built-in #%zu", i), re});
    }
    return bc;
}

void bounce_class_free(struct bounce_class *bc)
{
    if (!bc)
        return;
    list_fini(&bc->files);
    list_fini(&bc->builtin);
    for (size_t i = 0; i < bc->n_names; i++)
        free(bc->names[i]);
    free(bc->names);
    pcre2_compile_context_free(bc->cctx);
    pcre2_match_context_free(bc->mctx);
    free(bc->limit_hits);
    free(bc);
}

/* ---- rules files ---- */

struct errs {
    char *text;
    size_t len;
    size_t count;
};

static void errs_add(struct errs *e, const char *path, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void errs_add(struct errs *e, const char *path, unsigned line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char *one = line ? xasprintf("%s:%u: %s\n", path, line, msg) : xasprintf("%s: %s\n", path, msg);
    size_t n = strlen(one);
    e->text = xrealloc(e->text, e->len + n + 1);
    memcpy(e->text + e->len, one, n + 1);
    e->len += n;
    e->count++;
    free(one);
}

static void errs_take(struct errs *e, char **err)
{
    if (e->len && e->text[e->len - 1] == '\n')
        e->text[--e->len] = '\0';
    if (err)
        *err = e->text;
    else
        free(e->text);
    e->text = NULL;
}

static bool is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool class_name_ok(const char *s)
{
    if (!is_alpha(*s))
        return false;
    size_t n = 0;
    for (; *s; s++, n++)
        if (n >= 64 || !(is_alpha(*s) || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* check_rules - compile every pattern of [rules] into out; class names still point into the tree */
static void check_rules(struct bounce_class *bc, const char *path, const struct cfg_toml_node *rules,
                        struct bounce_rule_list *out, struct errs *e)
{
    for (size_t i = 0; i < rules->n_children; i++) {
        const struct cfg_toml_node *cls = rules->children[i];
        if (!class_name_ok(cls->key)) {
            errs_add(e, path, cls->line, "class name \"%.64s\" is not [A-Za-z][A-Za-z0-9_]* (64 at most)",
                     cls->key);
            continue;
        }
        if (cls->type != CFG_TOML_ARRAY) {
            errs_add(e, path, cls->line, "rules.%s must be an array of strings, not a %s", cls->key,
                     cfg_toml_type_name(cls->type));
            continue;
        }
        for (size_t j = 0; j < cls->n_children; j++) {
            const struct cfg_toml_node *p = cls->children[j];
            unsigned line = p->line ? p->line : cls->line;
            if (p->type != CFG_TOML_STRING) {
                errs_add(e, path, line, "rules.%s[%zu] must be a string, not a %s", cls->key, j,
                         cfg_toml_type_name(p->type));
                continue;
            }
            char msg[320];
            pcre2_code *re = compile(bc, p->str, msg, sizeof(msg));
            if (!re) {
                errs_add(e, path, line, "rules.%s: pattern \"%.200s\": %s", cls->key, p->str, msg);
                continue;
            }
            list_push(out, (struct bounce_rule){cls->key, xasprintf("%s:%u", path, line), re});
        }
    }
}

int bounce_class_load_file(struct bounce_class *bc, const char *path, char **err)
{
    char *text = NULL;
    size_t len = 0;
    if (err)
        *err = NULL;
    int rc = file_read_all(path, BOUNCE_CLASS_MAX_FILE, &text, &len);
    if (rc != 0) {
        if (err)
            *err = xasprintf("%s: cannot read: %s", path, strerror(-rc));
        return rc;
    }
    char *perr = NULL;
    struct cfg_toml_node *root = cfg_toml_parse(text, len, path, &perr);
    free(text);
    if (!root) {
        if (err)
            *err = perr ? perr : xasprintf("%s: TOML parse error", path);
        else
            free(perr);
        return -EINVAL;
    }

    struct errs e = {0};
    struct bounce_rule_list add = {0};
    const struct cfg_toml_node *rules = NULL;
    for (size_t i = 0; i < root->n_children; i++) {
        const struct cfg_toml_node *n = root->children[i];
        if (strcmp(n->key, "rules") == 0)
            rules = n;
        else
            errs_add(&e, path, n->line, "unknown key \"%.64s\" (a rules file has only [rules])", n->key);
    }
    if (!rules)
        errs_add(&e, path, 0, "no [rules] table");
    else if (rules->type != CFG_TOML_TABLE)
        errs_add(&e, path, rules->line, "rules must be a table, not a %s", cfg_toml_type_name(rules->type));
    else
        check_rules(bc, path, rules, &add, &e);

    if (e.count) {
        list_fini(&add);
        cfg_toml_free(root);
        errs_take(&e, err);
        return -EINVAL;
    }
    /* class names outlive the TOML tree: each distinct name gets one owned copy */
    for (size_t i = 0; i < add.n; i++) {
        const char *name = NULL;
        for (size_t k = 0; k < bc->n_names && !name; k++)
            if (strcmp(bc->names[k], add.v[i].class_name) == 0)
                name = bc->names[k];
        if (!name) {
            bc->names = xrealloc(bc->names, (bc->n_names + 1) * sizeof(*bc->names));
            name = bc->names[bc->n_names++] = xstrdup(add.v[i].class_name);
        }
        add.v[i].class_name = name;
        list_push(&bc->files, add.v[i]);
    }
    log_info("bounce_class: %s: %zu rules loaded", path, add.n);
    free(add.v);
    cfg_toml_free(root);
    return 0;
}

/* ---- classification ---- */

/* match - true on a match; the match limit or any other match error counts as no match */
static bool match(const struct bounce_class *bc, const struct bounce_rule *r, const char *s, size_t len,
                  pcre2_match_data *md)
{
    int rc = pcre2_match(r->re, (PCRE2_SPTR)s, len, 0, 0, md, bc->mctx);
    if (rc >= 0)
        return true; /* 0: matched, the ovector is too small for groups we never read */
    if (rc == PCRE2_ERROR_NOMATCH)
        return false;
    uint_fast64_t before = atomic_fetch_add(bc->limit_hits, 1);
    if (before == 0) {
        PCRE2_UCHAR buf[128];
        if (pcre2_get_error_message(rc, buf, sizeof(buf)) < 0)
            snprintf((char *)buf, sizeof(buf), "error %d", rc);
        log_warn("bounce_class: rule %s gave up on a %zu-byte response: %s (counted as no match; later "
                 "occurrences are only counted)",
                 r->origin, len, (const char *)buf);
    }
    return false;
}

const char *bounce_class_classify(const struct bounce_class *bc, int code, const char *enhanced,
                                  const char *text)
{
    char subject[BOUNCE_CLASS_MAX_SUBJECT + 1];
    const char *enh = enhanced && *enhanced ? enhanced : NULL;
    char codebuf[16] = "";
    if (code > 0)
        snprintf(codebuf, sizeof(codebuf), "%d ", code);
    /* a longer line is cut: its first 4 KiB say what happened, and the cut bounds the work */
    int n = snprintf(subject, sizeof(subject), "%s%s%s%s", codebuf, enh ? enh : "", enh ? " " : "",
                     text ? text : "");
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof(subject) ? sizeof(subject) - 1 : (size_t)n;

    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        fatal("bounce_class: out of memory creating match data");
    const char *found = NULL;
    for (size_t i = 0; i < bc->files.n && !found; i++)
        if (match(bc, &bc->files.v[i], subject, len, md))
            found = bc->files.v[i].class_name;
    for (size_t i = 0; i < bc->builtin.n && !found; i++)
        if (match(bc, &bc->builtin.v[i], subject, len, md))
            found = bc->builtin.v[i].class_name;
    pcre2_match_data_free(md);
    return found ? found : BOUNCE_CLASS_UNCATEGORIZED;
}

size_t bounce_class_rule_count(const struct bounce_class *bc)
{
    return bc->files.n + bc->builtin.n;
}

uint64_t bounce_class_limit_hits(const struct bounce_class *bc)
{
    return (uint64_t)atomic_load(bc->limit_hits);
}
