/*
 * ringctl_capacity - `ringctl capacity`: what a park node needs for a given traffic, with the arithmetic
 *
 * ringctl_capacity_main() runs the command (argv[0] "capacity"); options in docs/operations.md.
 * The unit parsers are strict: a whole string or an error that says what was expected.
 *   ringctl_capacity_rate()     "8M/day", "1M/h", "250/s", "1.5K/min": messages per second
 *   ringctl_capacity_size()     "50KB", "50KiB", "2MB", "512B", "512": bytes (K, M, G are 1000s; Ki.. 1024s)
 *   ringctl_capacity_duration() "24h", "90min", "2d", "30s": seconds
 * ringctl_capacity_scan_segment() counts the records (lines) and Reception records of one zstd log
 * segment held in memory; a truncated or corrupt tail ends the count (what came before still counts).
 * Each returns 0 or -EINVAL with *err (heap) saying why.
 */
#ifndef RINGMAIL_TOOLS_RINGCTL_CAPACITY_H
#define RINGMAIL_TOOLS_RINGCTL_CAPACITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int ringctl_capacity_rate(const char *s, double *per_second, char **err);
int ringctl_capacity_size(const char *s, double *bytes, char **err);
int ringctl_capacity_duration(const char *s, double *seconds, char **err);
/* ringctl_capacity_days - a whole number of days ("30") */
int ringctl_capacity_days(const char *s, double *days, char **err);

struct ringctl_capacity_logs {
    uint64_t segments;
    uint64_t compressed_bytes; /* of the segments read */
    uint64_t records;
    uint64_t receptions; /* records of type Reception: one per accepted recipient */
};
void ringctl_capacity_scan_segment(const void *data, size_t len, struct ringctl_capacity_logs *st);

/* ringctl_capacity_spool_bytes - (size + 512) x the messages arriving during the outage (doctor uses it too) */
double ringctl_capacity_spool_bytes(double per_second, double size, double outage_seconds);

bool ringctl_capacity_command(const char *name);
int ringctl_capacity_main(int argc, char **argv, const char *data_dir, bool json);

#endif
