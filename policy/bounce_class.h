/*
 * bounce_class - classify a remote SMTP response into a bounce class (KumoMTA's class names)
 *
 * bounce_class_new() returns a classifier holding only the built-in rules (policy/bounce_class.c,
 * written for ringmail; the order and the reasons for each choice are documented there).
 * bounce_class_load_file() adds the rules of one KumoMTA-format rules file:
 *     [rules]
 *     InvalidRecipient = [ "^5\\d\\d 5\\.1\\.1\\b", "no such user" ]
 *     MyOwnClass = [ "some text" ]
 * Keys are class names: KumoMTA's predefined names or any user-defined name ([A-Za-z][A-Za-z0-9_]*);
 * values are arrays of PCRE2 patterns (Rust-regex syntax is mostly the same; look-around and
 * backreferences are extra in PCRE2, Unicode classes differ: subjects are matched as bytes).
 * Any other top-level key is an error. A file is all or nothing: on error none of its rules are
 * added, every problem is reported as "FILE:LINE: message" (one per line in *err, heap, caller
 * frees) and -EINVAL is returned; -errno when the file cannot be read.
 *
 * bounce_class_classify() matches the line "CODE ENHANCED text" (the code left out when <= 0, the
 * enhanced code when NULL or "") against the rules in this order, first match wins:
 *   1. rules from files, in the order the files were loaded, then in file order within a file
 *      (class by class as written, pattern by pattern);
 *   2. the built-in rules.
 * So a file overrides a built-in by matching first. Nothing matched: "Uncategorized".
 * Matching is caseless; only the first BOUNCE_CLASS_MAX_SUBJECT bytes of the line are looked at.
 * Every match runs under a PCRE2 match limit (JIT when available), so a hostile response or a
 * catastrophic pattern costs a bounded number of steps per rule: a rule that hits the limit counts
 * as not matching, is counted (bounce_class_limit_hits) and logged.
 * The returned name lives as long as the classifier. Classify is safe from several threads at once;
 * load_file is not (load everything before sharing).
 */
#ifndef RINGMAIL_BOUNCE_CLASS_H
#define RINGMAIL_BOUNCE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#define BOUNCE_CLASS_UNCATEGORIZED "Uncategorized"
#define BOUNCE_CLASS_MAX_SUBJECT 4096
#define BOUNCE_CLASS_MATCH_LIMIT 200000u /* PCRE2 match() calls per rule and subject */

struct bounce_class;

struct bounce_class *bounce_class_new(void);
void bounce_class_free(struct bounce_class *bc);
int bounce_class_load_file(struct bounce_class *bc, const char *path, char **err);
const char *bounce_class_classify(const struct bounce_class *bc, int code, const char *enhanced,
                                  const char *text);

/* bounce_class_rule_count - file rules plus built-in rules */
size_t bounce_class_rule_count(const struct bounce_class *bc);
/* bounce_class_limit_hits - how many rule matches were cut short by the match limit */
uint64_t bounce_class_limit_hits(const struct bounce_class *bc);

#endif
