/*
 * file_test - reading whole files: empty, exact cap, over the cap, growth past the first block,
 * errors as -errno, a file without a size (/proc), file_read_long
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file.h"
#include "tests/lib/check.h"

static char dir[] = "/tmp/file_test.XXXXXX";

static char *write_file(const char *name, const char *data, size_t n)
{
    char *path;
    if (asprintf(&path, "%s/%s", dir, name) < 0)
        abort();
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        abort();
    return path;
}

static void test_read_all(void)
{
    char *text;
    size_t len;

    char *empty = write_file("empty", "", 0);
    CHECK(file_read_all(empty, 10, &text, &len) == 0 && len == 0 && text[0] == '\0', "empty file");
    free(text);

    char *small = write_file("small", "ab\0cd", 5);
    CHECK(file_read_all(small, 5, &text, &len) == 0 && len == 5 && memcmp(text, "ab\0cd", 6) == 0,
          "exactly the cap, NUL inside and after");
    free(text);
    text = NULL;
    CHECK(file_read_all(small, 4, &text, &len) == -EFBIG && text == NULL, "one byte over the cap");

    size_t big_n = 3 * 4096 + 17;
    char *big_data = malloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big_data[i] = (char)('a' + i % 26);
    char *big = write_file("big", big_data, big_n);
    CHECK(file_read_all(big, 1 << 20, &text, &len) == 0 && len == big_n && memcmp(text, big_data, big_n) == 0 &&
              text[big_n] == '\0',
          "growth past the first block: len %zu", len);
    free(text);
    CHECK(file_read_all(big, 4096, &text, &len) == -EFBIG, "big file over a small cap");

    char *missing;
    if (asprintf(&missing, "%s/missing", dir) < 0)
        abort();
    CHECK(file_read_all(missing, 10, &text, &len) == -ENOENT, "missing file");
    CHECK(file_read_all(dir, 10, &text, &len) == -EISDIR, "directory");

    /* /proc files report size 0: only reading to the end gets them */
    CHECK(file_read_all("/proc/self/status", 1 << 20, &text, &len) == 0 && len > 0 && strstr(text, "Pid:"),
          "/proc/self/status");
    free(text);

    unlink(empty), unlink(small), unlink(big);
    free(empty), free(small), free(big), free(big_data), free(missing);
}

static void test_read_long(void)
{
    long v = -1;
    char *one = write_file("one", "1024\t65535\n", 11);
    CHECK(file_read_long(one, &v) == 0 && v == 1024, "first number: %ld", v);
    char *neg = write_file("neg", "-3\n", 3);
    CHECK(file_read_long(neg, &v) == -EINVAL, "negative");
    char *word = write_file("word", "never\n", 6);
    CHECK(file_read_long(word, &v) == -EINVAL, "not a number");
    CHECK(file_read_long("/proc/sys/kernel/pid_max", &v) == 0 && v > 0, "pid_max");
    unlink(one), unlink(neg), unlink(word);
    free(one), free(neg), free(word);
}

int main(void)
{
    if (!mkdtemp(dir))
        SKIP("mkdtemp: %s", strerror(errno));
    test_read_all();
    test_read_long();
    rmdir(dir);
    CHECK_EXIT();
}
