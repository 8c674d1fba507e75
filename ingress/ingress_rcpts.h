/*
 * ingress_rcpts - the recipients a relay domain has ([ingress] relay_recipients), so that a client outside
 * relay_networks cannot make the node accept mail for a local part that does not exist and bounce it
 * later to a forged sender (backscatter)
 *
 * The file has one entry per line: `local@domain` (that mailbox) or `@domain` (any local part of the
 * domain); blank lines and lines starting with '#' are skipped, leading and trailing blanks ignored.
 * Letters compare without case (ASCII). A line that is not an entry is an error naming its line; the
 * file is refused whole. A domain of relay_domains that the file does not mention takes no mail from
 * outside relay_networks once the file is set.
 */
#ifndef RINGMAIL_INGRESS_RCPTS_H
#define RINGMAIL_INGRESS_RCPTS_H

#include <stdbool.h>
#include <stddef.h>

#define INGRESS_RCPTS_FILE_MAX (256u << 20) /* bytes of a relay_recipients file */
#define INGRESS_RCPTS_ERRORS_MAX 20          /* error lines reported, then a count */

struct ingress_rcpts {
    char **entries; /* sorted, unique, lower case: "local@domain" or "@domain" */
    size_t n;
};

/* ingress_rcpts_parse - text (not NUL-terminated) into *out; 0, or -EINVAL with *err (heap, lines ending
 * in '\n') and *out empty */
int ingress_rcpts_parse(const char *text, size_t len, struct ingress_rcpts *out, char **err);
/* ingress_rcpts_load - the file at path; as parse, and -errno with *err when it cannot be read */
int ingress_rcpts_load(const char *path, struct ingress_rcpts *out, char **err);
/* ingress_rcpts_has - the mailbox local@domain (any case) is an entry, or its domain has "@domain" */
bool ingress_rcpts_has(const struct ingress_rcpts *r, const char *mailbox);
void ingress_rcpts_free(struct ingress_rcpts *r);

#endif
