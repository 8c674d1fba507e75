/*
 * ringmail-dkim-bench - the cost of DKIM-signing one message (docs/benchmarks.md, "DKIM signing")
 *
 *   ringmail-dkim-bench [--count N] [--sizes BYTES,BYTES...]
 *
 * For RSA-2048 and Ed25519 keys (made in process), relaxed/relaxed, the default over-signed header list,
 * and each body size (default 10240 and 102400 octets of 76-column text lines), signs the same message N
 * times (default 2000) as the egress does for a message it has not signed yet: split the header, hash the
 * body, hash the signed fields, sign, fold (dkim_sign_msg_init + dkim_sign_add + fini). Prints one line
 * per case: algorithm, size, count, microseconds per message (mean of the run), messages per second on
 * one core. Single-threaded, no I/O inside the timed loop.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/mem.h"
#include "dkim/dkim_sign.h"

static const char *const headers[] = {"From", "From", "To", "Subject", "Date", "Message-ID", "Reply-To", "Cc",
                                      "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
                                      "List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID"};

static char *make_message(size_t body, size_t *len)
{
    struct buf b = {0};
    buf_puts(&b, "From: Bench <bench@example.test>\r\nTo: r@dest.test\r\nSubject: dkim bench\r\n"
                 "Date: Mon, 07 Dec 2026 05:00:00 +0000\r\nMessage-ID: <bench@example.test>\r\n"
                 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
    for (size_t n = 0; n < body;) {
        size_t k = body - n < 78 ? body - n : 78;
        for (size_t i = 0; i + 2 < k; i++)
            buf_putc(&b, (char)('a' + (n + i) % 26));
        buf_puts(&b, k >= 2 ? "\r\n" : "\n");
        n += k;
    }
    *len = b.len;
    return buf_take(&b);
}

int main(int argc, char **argv)
{
    long count = 2000;
    char *sizes = xstrdup("10240,102400");
    static const struct option opts[] = {{"count", required_argument, NULL, 'n'},
                                         {"sizes", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:s:", opts, NULL)) != -1) {
        if (c == 'n') {
            count = strtol(optarg, NULL, 10);
        } else if (c == 's') {
            free(sizes);
            sizes = xstrdup(optarg);
        } else {
            fprintf(stderr, "usage: ringmail-dkim-bench [--count N] [--sizes BYTES,BYTES...]\n");
            return 2;
        }
    }
    if (count < 1) {
        fprintf(stderr, "--count must be at least 1\n");
        return 2;
    }
    struct dkim_signer s[2] = {
        {.name = "rsa", .domain = "example.test", .selector = "bench", .alg = DKIM_ALG_RSA_SHA256},
        {.name = "ed25519", .domain = "example.test", .selector = "bench", .alg = DKIM_ALG_ED25519_SHA256},
    };
    s[0].key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    s[1].key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!s[0].key || !s[1].key) {
        fprintf(stderr, "key generation failed\n");
        return 1;
    }
    for (int i = 0; i < 2; i++) {
        s[i].hcanon = s[i].bcanon = DKIM_CANON_RELAXED;
        s[i].headers = (char **)headers;
        s[i].n_headers = sizeof(headers) / sizeof(headers[0]);
    }
    printf("%-15s %10s %8s %12s %12s\n", "algorithm", "body", "count", "us/message", "messages/s");
    char *save = NULL;
    for (char *tok = strtok_r(sizes, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t body = (size_t)strtoull(tok, NULL, 10), len = 0;
        char *msg = make_message(body, &len);
        for (int a = 0; a < 2; a++) {
            struct buf out = {0};
            uint64_t t0 = clock_mono_ns();
            for (long i = 0; i < count; i++) {
                struct dkim_msg m;
                buf_reset(&out);
                dkim_sign_msg_init(&m, msg, len);
                if (dkim_sign_add(&m, &s[a], 1796000000, &out) < 0) {
                    fprintf(stderr, "signing failed\n");
                    return 1;
                }
                dkim_sign_msg_fini(&m);
            }
            double us = (double)(clock_mono_ns() - t0) / 1e3 / (double)count;
            printf("%-15s %10zu %8ld %12.1f %12.0f\n", dkim_sign_alg_name(s[a].alg), body, count, us, 1e6 / us);
            buf_fini(&out);
        }
        free(msg);
    }
    EVP_PKEY_free(s[0].key);
    EVP_PKEY_free(s[1].key);
    free(sizes);
    return 0;
}
