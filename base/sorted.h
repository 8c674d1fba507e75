/*
 * sorted - searching an ascending array of uint64_t
 */
#ifndef RINGMAIL_BASE_SORTED_H
#define RINGMAIL_BASE_SORTED_H

#include <stddef.h>
#include <stdint.h>

/* u64_lower_bound - the first index whose value is >= key (n when none): v ascending */
static inline size_t u64_lower_bound(const uint64_t *v, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#endif
