/*
 * file - the one read-whole-file
 *
 * file_read_all() reads path to its end with read(2) (so /proc files, pipes and files that grow
 * while read work too) into one heap block, NUL-terminated (the NUL not counted in *len), and refuses
 * more than max bytes with -EFBIG: a file that large is a mistake, not something to load.
 * file_read_long() is the number on the first line of a small file such as /proc/sys/vm/nr_hugepages.
 * Both return 0 or -errno (-EISDIR for a directory, -ENOENT, ...); on error nothing is allocated and
 * *out is left as it was (a caller may preset it to its "unknown" value).
 */
#ifndef RINGMAIL_FILE_H
#define RINGMAIL_FILE_H

#include <stddef.h>

int file_read_all(const char *path, size_t max, char **out, size_t *len);
/* file_read_long - a non-negative decimal number at the start of the file; -EINVAL when there is none */
int file_read_long(const char *path, long *out);

#endif
