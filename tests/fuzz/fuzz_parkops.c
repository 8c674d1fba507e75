/*
 * fuzz_parkops - the parsers of the park-node commands on any input: capacity's rate, size and duration
 * (tools/ringctl_capacity.c), its log segment scan (zstd frames of JSON lines, from the node's disk),
 * and doctor's sysctl.d file parser (tools/ringctl_doctor.c)
 *
 * Input: 1 selector octet, then the data (copied to an exact-size heap block so that any read past `len`
 * is an ASan report). Checks: an accepted rate is finite and above 0, a size at least 1 byte, a duration
 * finite and not negative; a rejected value always has a message. The segment scan counts one segment,
 * all its bytes, and never more Receptions than records. Every entry the conf parser gives has a non-empty
 * key without '=' or blanks and a value without a newline, with increasing line numbers; writing the
 * entries back as "key = value" lines and parsing again gives the same entries (the --apply round trip).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "tools/ringctl_capacity.h"
#include "tools/ringctl_doctor.h"

struct collected {
    char buf[1 << 16];
    size_t len, n;
    unsigned last_line;
    bool overflow;
};

static void on_entry(void *ctx, unsigned line, const char *key, const char *value)
{
    struct collected *c = ctx;
    CHECK(line > c->last_line || line == 0);
    c->last_line = line;
    if (!key)
        return;
    CHECK(key[0] && !strpbrk(key, "= \t\r\n"));
    CHECK(!strpbrk(value, "\r\n"));
    size_t kl = strlen(key), vl = strlen(value);
    if (c->len + kl + vl + 4 >= sizeof(c->buf)) {
        c->overflow = true;
        return;
    }
    memcpy(c->buf + c->len, key, kl);
    memcpy(c->buf + c->len + kl, " = ", 3);
    memcpy(c->buf + c->len + kl + 3, value, vl);
    c->len += kl + 3 + vl;
    c->buf[c->len++] = '\n';
    c->n++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0] % 3;
    size_t len = size - 1;
    char *in = malloc(len + 1);
    memcpy(in, data + 1, len);
    in[len] = '\0';

    if (sel == 0) {
        double v = 0;
        char *err = NULL;
        if (ringctl_capacity_rate(in, &v, &err) == 0)
            CHECK(isfinite(v) && v > 0 && !err);
        else
            CHECK(err != NULL);
        free(err);
        err = NULL;
        if (ringctl_capacity_size(in, &v, &err) == 0)
            CHECK(isfinite(v) && v >= 1 && !err);
        else
            CHECK(err != NULL);
        free(err);
        err = NULL;
        if (ringctl_capacity_duration(in, &v, &err) == 0)
            CHECK(isfinite(v) && v >= 0 && !err);
        else
            CHECK(err != NULL);
        free(err);
    } else if (sel == 1) {
        char *seg = malloc(len ? len : 1); /* exact size, no terminator: the scan must keep to len */
        memcpy(seg, data + 1, len);
        struct ringctl_capacity_logs st = {0};
        ringctl_capacity_scan_segment(seg, len, &st);
        CHECK(st.segments == 1 && st.compressed_bytes == len && st.receptions <= st.records);
        free(seg);
    } else {
        static struct collected a, b;
        memset(&a, 0, sizeof(a));
        memset(&b, 0, sizeof(b));
        ringctl_doctor_conf_parse(in, len, on_entry, &a);
        if (!a.overflow) {
            ringctl_doctor_conf_parse(a.buf, a.len, on_entry, &b);
            CHECK(b.n == a.n && b.len == a.len && memcmp(a.buf, b.buf, a.len) == 0);
        }
    }
    free(in);
    return 0;
}
