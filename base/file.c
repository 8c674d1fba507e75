/*
 * file - reading whole files (see file.h)
 */
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/buf.h"

int file_read_all(const char *path, size_t max, char **out, size_t *len)
{
    struct buf b = {0};
    size_t limit = max < SIZE_MAX ? max + 1 : max; /* one byte past max tells "exactly max" from "more" */
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    for (;;) {
        buf_reserve(&b, b.len < 4096 ? 4096 : b.len);
        size_t room = b.cap - b.len;
        if (room > limit - b.len)
            room = limit - b.len;
        ssize_t r = read(fd, b.data + b.len, room);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int rc = -errno;
            close(fd);
            buf_fini(&b);
            return rc;
        }
        if (r == 0)
            break;
        b.len += (size_t)r;
        if (b.len > max) {
            close(fd);
            buf_fini(&b);
            return -EFBIG;
        }
    }
    close(fd);
    *len = b.len;
    *out = buf_take(&b);
    return 0;
}

int file_read_long(const char *path, long *out)
{
    char *text, *end;
    size_t len;
    int rc = file_read_all(path, 4096, &text, &len);

    if (rc < 0)
        return rc;
    errno = 0;
    long v = strtol(text, &end, 10);
    rc = end == text || errno || v < 0 ? -EINVAL : 0;
    free(text);
    if (rc == 0)
        *out = v;
    return rc;
}
