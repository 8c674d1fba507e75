/*
 * buf_test - the growable buffer: appends across growth, printf that outgrows the room, take/reset
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "tests/lib/check.h"

int main(void)
{
    struct buf b = {0};
    CHECK(b.len == 0 && b.data == NULL, "zeroed buffer is empty");
    for (int i = 0; i < 1000; i++)
        buf_putc(&b, (char)('a' + i % 26));
    CHECK(b.len == 1000 && b.cap >= 1000, "len %zu cap %zu", b.len, b.cap);
    CHECK(b.data[999] == 'a' + 999 % 26, "last byte");
    buf_reset(&b);
    CHECK(b.len == 0 && b.cap >= 1000, "reset keeps memory");
    buf_printf(&b, "%s-%d", "x", 42);
    CHECK(strcmp(buf_cstr(&b), "x-42") == 0 && b.len == 4, "printf: %s", buf_cstr(&b));
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    buf_printf(&b, "[%s]", big); /* outgrows the room: formatted again after the reserve */
    CHECK(b.len == 4 + 2 + 4999, "len after big printf %zu", b.len);
    CHECK(b.data[4] == '[' && b.data[b.len - 1] == ']' && b.data[5] == 'z', "big printf content");
    buf_append(&b, "", 0);
    buf_puts(&b, "end");
    CHECK(memcmp(b.data + b.len - 3, "end", 3) == 0, "puts");
    size_t len = b.len;
    char *s = buf_take(&b);
    CHECK(strlen(s) == len && b.data == NULL && b.len == 0 && b.cap == 0, "take leaves it empty");
    free(s);
    s = buf_take(&b);
    CHECK(s != NULL && s[0] == 0, "take of an empty buffer is an empty string");
    free(s);
    buf_append(&b, "\0\1\2", 3);
    CHECK(b.len == 3 && b.data[1] == 1, "binary append");
    buf_fini(&b);
    buf_fini(&b);
    CHECK(b.data == NULL && b.len == 0, "fini twice");
    CHECK_EXIT();
}
