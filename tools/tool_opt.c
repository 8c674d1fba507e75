/*
 * tool_opt - option values of ringmail-gen and ringmail-sink (see tool_opt.h)
 */
#include "tools/tool_opt.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "cfg/cfg_value.h"

int tool_opt_seconds(const char *text, double max, double *out)
{
    char *end;
    double v;
    uint64_t ms;

    errno = 0;
    v = strtod(text, &end);
    if (end == text || *end) {
        if (!cfg_value_parse_duration(text, &ms))
            return -EINVAL;
        v = (double)ms / 1000.0;
    } else if (errno) {
        return -EINVAL;
    }
    if (!(v > 0) || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}
