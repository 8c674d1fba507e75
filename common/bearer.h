/*
 * bearer - the node's bearer tokens: 256 bits as 64 lower-case hex digits, presented as
 * "Authorization: Bearer TOKEN" (the admin API, the HTTP injection API)
 *
 * bearer_token_parse() takes a token file's text: 64 hex digits and an optional newline.
 * bearer_matches() compares the header's token with `token` in constant time (the length is public).
 * bearer_token_load() reads and parses a token file; -errno with *err on failure.
 * Thread-safe; no state.
 */
#ifndef RINGMAIL_BEARER_H
#define RINGMAIL_BEARER_H

#include <stdbool.h>
#include <stddef.h>

#define BEARER_TOKEN_HEX 64

int bearer_token_parse(const char *text, size_t n, char token[BEARER_TOKEN_HEX + 1]);
bool bearer_matches(const char *token, const char *authorization);
int bearer_token_load(const char *path, char token[BEARER_TOKEN_HEX + 1], char **err);

#endif
