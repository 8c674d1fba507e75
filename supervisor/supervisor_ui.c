/*
 * supervisor_ui - the web status console: GET /ui/ and /ui/<file>, static files compiled into ringmaild
 *
 *   GET /ui            301 to /ui/
 *   GET /ui/           index.html
 *   GET /ui/app.js, /ui/style.css, /ui/index.html
 *
 * The files are those of supervisor/ui/, turned into C arrays at build time by policy/embed.py (meson custom
 * targets), so the node serves them with nothing installed. Only those names are served: the URL is
 * compared whole with the table, so no path (../, %2e%2e, //) reaches anything else. Each answer carries
 * its Content-Type, a Content-Security-Policy that allows only this origin (no inline script or style,
 * no other host: the page is plain files that read the admin API), nosniff, no referrer, and an ETag
 * (the first 16 hex digits of the file's SHA-256, computed once at start) with Cache-Control: no-cache,
 * so a browser revalidates and gets 304 while the build did not change.
 *
 * The page reads the API with the browser's credentials only: none on the trusted networks, the
 * operator's token (typed into the page, kept in sessionStorage) otherwise and for every POST. Access
 * control is supervisor_admin.c's as for any request; the static files themselves hold no node data, so
 * they are served without the token (a browser cannot send one on navigation).
 */
#include "supervisor/supervisor.h"

#include <microhttpd.h>
#include <openssl/evp.h>
#include <string.h>

#include "base/log.h"

extern const char ui_index_html_text[], ui_app_js_text[], ui_style_css_text[];
extern const size_t ui_index_html_len, ui_app_js_len, ui_style_css_len;

#define UI_CSP                                                                                                      \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "          \
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static struct ui_file {
    const char *url;
    const char *type;
    const char *data;
    const size_t *len;
    char etag[20]; /* "16 hex digits" */
} ui_files[] = {
    {"/ui/", "text/html; charset=utf-8", ui_index_html_text, &ui_index_html_len, ""},
    {"/ui/index.html", "text/html; charset=utf-8", ui_index_html_text, &ui_index_html_len, ""},
    {"/ui/app.js", "text/javascript; charset=utf-8", ui_app_js_text, &ui_app_js_len, ""},
    {"/ui/style.css", "text/css; charset=utf-8", ui_style_css_text, &ui_style_css_len, ""},
};

#define UI_N_FILES (sizeof(ui_files) / sizeof(ui_files[0]))

void supervisor_ui_init(void)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < UI_N_FILES; i++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (!EVP_Digest(ui_files[i].data, *ui_files[i].len, md, &n, EVP_sha256(), NULL) || n < 8)
            panic("SHA-256 of an embedded console file failed");
        char *e = ui_files[i].etag;
        *e++ = '"';
        for (unsigned k = 0; k < 8; k++) {
            *e++ = hex[md[k] >> 4];
            *e++ = hex[md[k] & 15];
        }
        *e++ = '"';
        *e = '\0';
    }
}

static const struct ui_file *ui_lookup(const char *url)
{
    for (size_t i = 0; i < UI_N_FILES; i++)
        if (strcmp(url, ui_files[i].url) == 0)
            return &ui_files[i];
    return NULL;
}

bool supervisor_ui_find(const char *url, const char **type, const char **data, size_t *len)
{
    const struct ui_file *f = ui_lookup(url);
    if (!f)
        return false;
    *type = f->type;
    *data = f->data;
    *len = *f->len;
    return true;
}

static enum MHD_Result ui_answer(struct MHD_Connection *c, unsigned code, const char *type, const char *data,
                                 size_t len, const char *etag, const char *location)
{
    /* the embedded arrays live as long as the program: libmicrohttpd sends them without a copy */
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Cache-Control", etag ? "no-cache" : "no-store");
    if (etag)
        MHD_add_response_header(r, "ETag", etag);
    if (location)
        MHD_add_response_header(r, "Location", location);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

bool supervisor_ui_is_ui(const char *url)
{
    return strcmp(url, "/ui") == 0 || strncmp(url, "/ui/", 4) == 0;
}

bool supervisor_ui_request(struct MHD_Connection *c, const char *url, bool get, enum MHD_Result *ret)
{
    static const char not_found[] = "no such file in the console (index.html, app.js, style.css)\n";
    static const char not_allowed[] = "the console's files are read with GET\n";

    if (!supervisor_ui_is_ui(url))
        return false;
    if (!get) {
        *ret = ui_answer(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", not_allowed,
                         sizeof(not_allowed) - 1, NULL, NULL);
        return true;
    }
    if (strcmp(url, "/ui") == 0) {
        *ret = ui_answer(c, MHD_HTTP_MOVED_PERMANENTLY, "text/plain; charset=utf-8", "", 0, NULL, "/ui/");
        return true;
    }
    const struct ui_file *f = ui_lookup(url);
    if (f) {
        const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match");
        bool same = inm && strcmp(inm, f->etag) == 0;
        *ret = ui_answer(c, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, f->type, same ? "" : f->data,
                         same ? 0 : *f->len, f->etag, NULL);
        return true;
    }
    *ret = ui_answer(c, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", not_found, sizeof(not_found) - 1, NULL,
                     NULL);
    return true;
}
