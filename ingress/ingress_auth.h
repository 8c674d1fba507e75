/*
 * ingress_auth - SMTP AUTH for submission (RFC 4954): SASL PLAIN (RFC 4616) and LOGIN decoding, the
 * passwords file, and the per-address failure limiter
 *
 * Pure functions and self-contained tables: no sockets, no session, no global state, so the unit tests
 * and the fuzz target (tests/fuzz/fuzz_sasl.c) drive them directly. The SMTP side (the AUTH command, the
 * 334 exchange, 235/535, relay rights) is ingress_auth_cmd.c.
 *
 * Everything decoded here comes from a peer or from an operator's file and is treated as hostile: the
 * decoders never read past `len`, never write past their output buffers, and refuse NUL where RFC 4616
 * forbids it.
 *
 * ingress_auth_b64_decode() is strict RFC 4648 base64: the standard alphabet, padding required to a
 * multiple of 4, no whitespace, no data after padding, zero trailing bits. "=" alone (RFC 4954's empty
 * response) decodes to 0 bytes.
 *
 * Passwords file: one `user:HASH` per line, HASH a crypt(3) string as in /etc/shadow, yescrypt ($y$) or
 * SHA-512 ($6$) only: anything else (plaintext, DES, MD5, a locked "!" or "*") is refused at load with
 * "FILE:LINE: message", so a file that loads holds no password in the clear. Blank lines and lines
 * starting with '#' are skipped; user names are 1..INGRESS_AUTH_USER_MAX bytes of printable ASCII without
 * ':' and unique. Checks run crypt_rn (libxcrypt's crypt_r); an unknown user costs one hash against a
 * dummy setting of the same kind, so the time of a failure does not tell whether the user exists.
 *
 * Limiter: failures counted per client address (IPv4 /32, IPv6 /64) in a window; at `max` failures the
 * address is locked out for `lockout`. Entries are dropped lazily once both have passed.
 */
#ifndef RINGMAIL_INGRESS_AUTH_H
#define RINGMAIL_INGRESS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INGRESS_AUTH_USER_MAX 255 /* bytes of an authentication or authorization identity */
#define INGRESS_AUTH_PASS_MAX 255 /* bytes of a password */
#define INGRESS_AUTH_LIMIT_BUCKETS 1024

/* ingress_auth_b64_decode - strict base64 into out (room for outcap bytes); decoded length or -EINVAL */
int ingress_auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap);

struct ingress_auth_cred {
    char authz[INGRESS_AUTH_USER_MAX + 1]; /* "" when the client sent none */
    char authc[INGRESS_AUTH_USER_MAX + 1];
    char pass[INGRESS_AUTH_PASS_MAX + 1];
};

/*
 * ingress_auth_plain - a PLAIN response (base64 of authzid NUL authcid NUL passwd); 0, or -EINVAL when
 * it is not base64, not three fields, has an empty authcid or password, or a field too long
 */
int ingress_auth_plain(const char *b64, size_t len, struct ingress_auth_cred *cred);

/* ingress_auth_login_field - one LOGIN response (base64 of the user name or the password) into out */
int ingress_auth_login_field(const char *b64, size_t len, char *out, size_t outcap);

/* ingress_auth_printable - user for a log line: printable ASCII kept, every other byte '?', at most 64 */
void ingress_auth_printable(const char *user, char *out, size_t outcap);

struct ingress_auth_user {
    char *name;
    char *hash;
};

struct ingress_auth_passwd {
    size_t n;
    struct ingress_auth_user *users; /* sorted by name */
    void *crypt_data;                /* struct crypt_data for crypt_rn, allocated once */
};

/*
 * ingress_auth_passwd_parse - a passwords file's text; 0, or -EINVAL with every error in *err as
 * "NAME:LINE: message\n" lines (heap, caller frees). On success *pw holds the users (free with _free).
 */
int ingress_auth_passwd_parse(const char *text, size_t len, const char *name, struct ingress_auth_passwd *pw,
                              char **err);
/* ingress_auth_passwd_load - read and parse a file; -errno when it cannot be read (message in *err) */
int ingress_auth_passwd_load(const char *path, struct ingress_auth_passwd *pw, char **err);
void ingress_auth_passwd_free(struct ingress_auth_passwd *pw);
/* ingress_auth_passwd_check - true when user exists and password matches its hash */
bool ingress_auth_passwd_check(struct ingress_auth_passwd *pw, const char *user, const char *pass);

struct ingress_auth_fail {
    int family;
    uint8_t addr[16]; /* IPv6: the /64, the rest zero */
    uint32_t count;
    uint64_t window_start_ns;
    uint64_t locked_until_ns; /* 0: not locked */
    struct ingress_auth_fail *next;
};

struct ingress_auth_limit {
    uint32_t max;         /* failures in the window that lock the address out; 0: no limit */
    uint64_t window_ns;
    uint64_t lockout_ns;
    size_t n;             /* entries */
    struct ingress_auth_fail *buckets[INGRESS_AUTH_LIMIT_BUCKETS];
};

/* ingress_auth_limit_locked - true while the address is locked out */
bool ingress_auth_limit_locked(struct ingress_auth_limit *lim, int family, const uint8_t *addr, uint64_t now);
/* ingress_auth_limit_fail - count one failure; true when it locked the address out */
bool ingress_auth_limit_fail(struct ingress_auth_limit *lim, int family, const uint8_t *addr, uint64_t now);
/* ingress_auth_limit_success - a success forgets the address's failures */
void ingress_auth_limit_success(struct ingress_auth_limit *lim, int family, const uint8_t *addr);
void ingress_auth_limit_free(struct ingress_auth_limit *lim);

#endif
