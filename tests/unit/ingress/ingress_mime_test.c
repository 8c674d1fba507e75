/*
 * ingress_mime_test - the HTTP injection request decoder and MIME builder (ingress/ingress_mime.c):
 * request refusals, per-recipient address errors, grouping by substitutions, templates, raw content
 * normalisation, and the builder's structure and encodings (the e2e test parses the result with
 * Python's email package at a real sink)
 *
 * Exit 0 pass, 1 fail.
 */
#include "ingress/ingress_mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/lib/check.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NOW ((time_t)1700000000)

struct refuse_case {
    const char *json;
    const char *needle; /* in the error */
};

static void test_refusals(void)
{
    static const struct refuse_case cases[] = {
        {"{\"envelope_sender\": \"a@b.test\",\n \"recipients\": [}", "line 2, column"},
        {"[]", "JSON object"},
        {"{\"recipients\": [{\"email\": \"x@b.test\"}], \"content\": \"A: b\"}", "envelope_sender"},
        {"{\"envelope_sender\": \"bad address\", \"recipients\": [{\"email\": \"x@b.test\"}], \"content\": \"A: b\"}",
         "envelope_sender: invalid address"},
        {"{\"envelope_sender\": \"\", \"recipients\": [], \"content\": \"A: b\"}", "non-empty array"},
        {"{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"x@b.test\"}], \"content\": 1}", "content"},
        {"{\"envelope_sender\": \"\", \"recipients\": [{\"email\": 5}], \"content\": \"A: b\"}",
         "recipients[0].email"},
        {"{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"x@b.test\", \"cc\": 1}], \"content\": \"A: b\"}",
         "unknown field \"cc\""},
        {"{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"a@b.test\"}, {\"email\": \"b@b.test\"},"
         " {\"email\": \"c@b.test\"}], \"content\": \"A: b\"}",
         "at most 2"},
        {"{\"envelope_sender\": \"\", \"substitutions\": [1], \"recipients\": [{\"email\": \"a@b.test\"}],"
         " \"content\": \"A: b\"}",
         "substitutions: expected an object"},
        {"{\"envelope_sender\": \"\", \"envelope_sender\": \"\", \"recipients\": [{\"email\": \"a@b.test\"}],"
         " \"content\": \"A: b\"}",
         "duplicate"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct ingress_mime_req req;
        char *err = NULL;
        int rc = ingress_mime_decode(cases[i].json, strlen(cases[i].json), 2, &req, &err);
        CHECK(rc < 0, "case %zu accepted", i);
        CHECK(err && strstr(err, cases[i].needle), "case %zu: error %s lacks %s", i, err ? err : "(none)",
              cases[i].needle);
        free(err);
        ingress_mime_req_fini(&req);
    }
}

/* build_one - decode json and build group `gi`; the message (heap, NUL-terminated) or NULL with *err */
static char *build_one(const char *json, size_t gi, char **err, struct ingress_mime_msg *msg_out, size_t *n_groups)
{
    struct ingress_mime_req req;
    struct ingress_mime_group *g = NULL;
    size_t ng = 0;
    char *out = NULL;

    *err = NULL;
    if (ingress_mime_decode(json, strlen(json), 100, &req, err) < 0) {
        ingress_mime_req_fini(&req);
        return NULL;
    }
    ingress_mime_groups(&req, &g, &ng);
    if (n_groups)
        *n_groups = ng;
    struct ingress_mime_msg m;
    if (gi < ng && ingress_mime_build(&req, &g[gi], "host.test", NOW, &m, err) == 0) {
        out = buf_take(&m.data);
        if (msg_out)
            *msg_out = m;
    }
    ingress_mime_groups_free(g, ng);
    ingress_mime_req_fini(&req);
    return out;
}

/* crlf_only - every line ends in CRLF and has at most 998 octets */
static bool crlf_only(const char *m)
{
    size_t col = 0;
    for (const char *p = m; *p; p++) {
        if (*p == '\n' && (p == m || p[-1] != '\r'))
            return false;
        if (*p == '\r' && p[1] != '\n')
            return false;
        col = *p == '\n' ? 0 : col + 1;
        if (col > 999)
            return false;
    }
    return true;
}

static void test_recipients_and_groups(void)
{
    const char *json = "{\"envelope_sender\": \"s@b.test\", \"content\": \"Subject: {{x}}\\n\\nhi\\n\","
                       " \"substitutions\": {\"x\": \"top\"}, \"recipients\": ["
                       "{\"email\": \"a@b.test\"}, {\"email\": \"not-an-address\"}, {\"email\": \"c@b.test\","
                       " \"substitutions\": {\"x\": \"mine\"}}, {\"email\": \"d@b.test\", \"substitutions\": {}},"
                       " {\"email\": \"e@b.test\", \"name\": \"E\\r\\nBcc: x@evil.test\"}]}";
    struct ingress_mime_req req;
    char *err = NULL;
    CHECK(ingress_mime_decode(json, strlen(json), 10, &req, &err) == 0, "decode: %s", err ? err : "");
    CHECK(req.n_rcpts == 5, "5 recipients");
    CHECK(req.rcpts[0].ok && !req.rcpts[1].ok && req.rcpts[2].ok && req.rcpts[3].ok && !req.rcpts[4].ok, "oks");
    CHECK(strstr(req.rcpts[1].error, "invalid address"), "error %s", req.rcpts[1].error);
    CHECK(strstr(req.rcpts[4].error, "CR, LF"), "error %s", req.rcpts[4].error);
    struct ingress_mime_group *g;
    size_t ng;
    ingress_mime_groups(&req, &g, &ng);
    CHECK(ng == 2, "a shared message (a, d) and c's own: %zu", ng);
    CHECK(ng == 2 && g[0].n == 2 && g[0].idx[0] == 0 && g[0].idx[1] == 3 && g[1].n == 1 && g[1].idx[0] == 2,
          "groups");
    for (size_t i = 0; i < ng; i++) {
        struct ingress_mime_msg m;
        CHECK(ingress_mime_build(&req, &g[i], "h.test", NOW, &m, &err) == 0, "build %zu", i);
        const char *want = i == 0 ? "Subject: top\r\n\r\nhi\r\n" : "Subject: mine\r\n\r\nhi\r\n";
        CHECK(m.data.len == strlen(want) && memcmp(m.data.data, want, m.data.len) == 0, "message %zu: %s", i,
              buf_cstr(&m.data));
        buf_fini(&m.data);
    }
    ingress_mime_groups_free(g, ng);
    ingress_mime_req_fini(&req);
}

struct raw_case {
    const char *content; /* JSON string text */
    const char *want;    /* the message, or NULL: refused */
    const char *needle;  /* in the error when refused */
};

static void test_raw(void)
{
    static const struct raw_case cases[] = {
        {"A: b\\n\\nbody", "A: b\r\n\r\nbody\r\n", NULL},
        {"A: b\\r\\n\\r\\nbody\\r\\n", "A: b\r\n\r\nbody\r\n", NULL},
        {"A: b\\n\\nbare \\r here", NULL, "bare CR"},
        {"no header", NULL, "header field"},
        {": empty name\\n", NULL, "header field"},
        {"A: {{ unknown }}", "A: {{ unknown }}\r\n", NULL}, /* no substitutions: no templating */
    };
    char json[512], *err;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        snprintf(json, sizeof(json),
                 "{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"a@b.test\"}], \"content\": \"%s\"}",
                 cases[i].content);
        char *m = build_one(json, 0, &err, NULL, NULL);
        if (cases[i].want)
            CHECK(m && strcmp(m, cases[i].want) == 0, "case %zu: %s (%s)", i, m ? m : "(null)", err ? err : "");
        else
            CHECK(!m && err && strstr(err, cases[i].needle), "case %zu: %s", i, err ? err : "(accepted)");
        free(m);
        free(err);
    }
    /* a 999-octet line is refused, a 998-octet one accepted; 8-bit is flagged */
    char *big = malloc(1200);
    for (int len = 998; len <= 999; len++) {
        int n = snprintf(big, 1200, "{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"a@b.test\"}], "
                                    "\"content\": \"A: ");
        memset(big + n, 'x', (size_t)len - 3);
        snprintf(big + n + len - 3, 1200 - (size_t)(n + len - 3), "\"}");
        char *m = build_one(big, 0, &err, NULL, NULL);
        CHECK((m != NULL) == (len == 998), "line of %d octets", len);
        free(m);
        free(err);
    }
    free(big);
    struct ingress_mime_msg mm = {0};
    char *m = build_one("{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"a@b.test\"}], \"content\": "
                        "\"A: \\u00fc\"}",
                        0, &err, &mm, NULL);
    CHECK(m && mm.eightbit, "8-bit flagged");
    free(m);
}

struct tpl_case {
    const char *subject;
    const char *want; /* Subject: value, or NULL when refused */
    const char *needle;
};

static void test_templates(void)
{
    static const struct tpl_case cases[] = {
        {"{{name}}", "Ann", NULL},
        {"{{  name\\t}} and {{n}} {{t}} {{f}} [{{z}}]", "Ann and 42 true false []", NULL},
        {"{{ pi }}", "3.5", NULL},
        {"no var {{", "no var {{", NULL},
        {"{{ missing }}", NULL, "unknown template variable missing"},
        {"{{ name | upper }}", NULL, "unsupported template expression"},
        {"{{ o }}", NULL, "not a string"},
    };
    char json[1024], *err;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        snprintf(json, sizeof(json),
                 "{\"envelope_sender\": \"\", \"substitutions\": {\"n\": 42, \"t\": true, \"f\": false, \"z\": null,"
                 " \"pi\": 3.5, \"o\": {}}, \"recipients\": [{\"email\": \"a@b.test\", \"substitutions\":"
                 " {\"name\": \"Ann\"}}], \"content\": {\"from\": {\"email\": \"f@b.test\"}, \"subject\": \"%s\"}}",
                 cases[i].subject);
        char *m = build_one(json, 0, &err, NULL, NULL);
        if (cases[i].want) {
            char line[256];
            snprintf(line, sizeof(line), "\r\nSubject: %s\r\n", cases[i].want);
            CHECK(m && strstr(m, line), "case %zu: %s (%s)", i, m ? m : "(null)", err ? err : "");
        } else {
            CHECK(!m && err && strstr(err, cases[i].needle), "case %zu: %s", i, err ? err : "(accepted)");
        }
        free(m);
        free(err);
    }
}

static void test_builder(void)
{
    char *err;
    /* text only, ASCII: 7bit; Date, Message-ID, From, To added */
    char *m = build_one("{\"envelope_sender\": \"s@b.test\", \"recipients\": [{\"email\": \"a@b.test\", \"name\":"
                        " \"Ann \\\"A\\\" Lee\"}], \"content\": {\"from\": {\"email\": \"f@b.test\", \"name\": \"Fred\"},"
                        " \"subject\": \"Hi\", \"text_body\": \"line1\\nline2\"}}",
                        0, &err, NULL, NULL);
    CHECK(m && strstr(m, "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"), "Date: %s", m ? m : err);
    CHECK(m && strstr(m, "\r\nMessage-ID: <") && strstr(m, "@host.test>\r\n"), "Message-ID");
    CHECK(m && strstr(m, "\r\nFrom: Fred <f@b.test>\r\n"), "From");
    CHECK(m && strstr(m, "\r\nTo: \"Ann \\\"A\\\" Lee\" <a@b.test>\r\n"), "To quoted: %s", m ? m : "");
    CHECK(m && strstr(m, "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
                         "line1\r\nline2\r\n"),
          "7bit text");
    CHECK(m && strstr(m, "MIME-Version: 1.0\r\n") && crlf_only(m), "CRLF only");
    free(m);

    /* non-ASCII: quoted-printable body, encoded-word subject and names */
    m = build_one("{\"envelope_sender\": \"s@b.test\", \"recipients\": [{\"email\": \"a@b.test\", \"name\": \"J\\u00fcrgen\"}],"
                  " \"content\": {\"from\": {\"email\": \"f@b.test\"}, \"subject\": \"Gr\\u00fc\\u00dfe\","
                  " \"text_body\": \"\\u00fcber = 1 \\n\", \"html_body\": \"<p>x</p>\"}}",
                  0, &err, NULL, NULL);
    CHECK(m && strstr(m, "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"), "encoded subject: %s", m ? m : err);
    CHECK(m && strstr(m, "To: =?UTF-8?B?SsO8cmdlbg==?= <a@b.test>\r\n"), "encoded name");
    CHECK(m && strstr(m, "Content-Type: multipart/alternative;"), "alternative");
    CHECK(m && strstr(m, "quoted-printable\r\n\r\n=C3=BCber =3D 1=20\r\n"), "QP body: %s", m ? m : "");
    CHECK(m && strstr(m, "Content-Type: text/html; charset=\"utf-8\""), "html part");
    CHECK(m && crlf_only(m), "CRLF only");
    free(m);

    /* attachments: mixed, base64 decoded and re-encoded, RFC 2231 file name */
    m = build_one("{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"a@b.test\"}], \"content\": {\"from\":"
                  " \"f@b.test\", \"text_body\": \"t\", \"attachments\": [{\"data\": \"aGVs\\nbG8=\", \"base64\": true,"
                  " \"content_type\": \"application/pdf\", \"file_name\": \"r\\u00e9sum\\u00e9.pdf\"},"
                  " {\"data\": \"raw\", \"content_type\": \"image/png\", \"content_id\": \"logo1\"}]}}",
                  0, &err, NULL, NULL);
    CHECK(m && strstr(m, "Content-Type: multipart/mixed;"), "mixed: %s", m ? m : err);
    CHECK(m && strstr(m, "Content-Type: application/pdf;\r\n name*0*=UTF-8''r%C3%A9sum%C3%A9.pdf"), "2231 name");
    CHECK(m && strstr(m, "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n"), "base64 data");
    CHECK(m && strstr(m, "Content-Disposition: inline\r\n") && strstr(m, "Content-ID: <logo1>\r\n"), "inline cid");
    CHECK(m && strstr(m, "\r\n\r\ncmF3\r\n"), "raw data encoded");
    free(m);

    struct {
        const char *content;
        const char *needle;
    } bad[] = {
        {"{\"from\": \"f@b.test\", \"attachments\": [{\"data\": \"@@@\", \"base64\": true, \"file_name\": \"x.bin\"}]}",
         "x.bin"},
        {"{\"from\": \"f@b.test\", \"attachments\": [{\"data\": \"aGVsbG8\", \"base64\": true, \"file_name\": \"y\"}]}",
         "not valid base64"},
        {"{\"from\": \"f@b.test\", \"headers\": {\"X-A\": \"v\\r\\nBcc: e@evil.test\"}}", "CR, LF or NUL"},
        {"{\"from\": \"f@b.test\", \"headers\": {\"X-A\\nBcc\": \"v\"}}", "not a valid header name"},
        {"{\"from\": \"f@b.test\", \"headers\": {\"Content-Type\": \"text/html\"}}", "set by the builder"},
        {"{\"from\": \"f@b.test\", \"subject\": \"a\\nb\"}", "CR, LF"},
        {"{\"from\": {\"email\": \"f@b.test\", \"name\": \"a\\rb\"}}", "CR, LF"},
        {"{\"from\": \"not an address\"}", "invalid address"},
        {"{\"subject\": \"no from\"}", "content.from"},
        {"{\"from\": \"f@b.test\", \"bogus\": 1}", "unknown field"},
        {"{\"from\": \"f@b.test\", \"attachments\": [{\"data\": \"x\", \"content_type\": \"text/plain\\r\\nX: y\"}]}",
         "content_type"},
        {"{\"from\": \"f@b.test\", \"attachments\": [{\"data\": \"x\", \"content_id\": \"a>b\"}]}", "content_id"},
    };
    char json[1024];
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        snprintf(json, sizeof(json),
                 "{\"envelope_sender\": \"\", \"recipients\": [{\"email\": \"a@b.test\"}], \"content\": %s}",
                 bad[i].content);
        m = build_one(json, 0, &err, NULL, NULL);
        CHECK(!m && err && strstr(err, bad[i].needle), "bad %zu: %s", i, err ? err : "(accepted)");
        free(m);
        free(err);
    }
}

int main(void)
{
    test_refusals();
    test_recipients_and_groups();
    test_raw();
    test_templates();
    test_builder();
    CHECK_EXIT();
}
