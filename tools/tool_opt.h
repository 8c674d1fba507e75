/*
 * tool_opt - the load tools' option values that ringmail.toml has no syntax for
 *
 * Sizes and counts are cfg_value's (cfg_value_parse_size, cfg_value_parse_uint): "64m" means the
 * same on a tool's command line and in ringmail.toml. Seconds are the one exception: a tool takes a
 * bare, possibly fractional number of seconds ("1.5"), which the configuration refuses as ambiguous.
 */
#ifndef RINGMAIL_TOOL_OPT_H
#define RINGMAIL_TOOL_OPT_H

/* tool_opt_seconds - "1.5" (seconds) or a cfg duration ("90s", "2m", "500ms"), above 0 and at most max; 0 or -EINVAL */
int tool_opt_seconds(const char *text, double max, double *out);

#endif
