/*
 * spool_log - delivery/event log writer: JSON Lines in zstd-compressed segment files
 *
 * spool_log_open() takes a directory and options, finishes segments a crashed writer left
 * behind, and returns a writer. spool_log_reception(), spool_log_delivery(), ... build one
 * record per event with KumoMTA's field names (docs/logs.md lists them per type) and buffer
 * it; spool_log_write() buffers any JSON object the caller built. Records are compressed and
 * written when the caller drives spool_log_tick() past the flush interval, when the buffer
 * passes flush_bytes, or on spool_log_flush(). spool_log_sync() also fdatasyncs, for a caller
 * that must know records survive a power loss (the spool, before it forgets a message).
 * spool_log_close() flushes, finishes the active segment and frees the writer.
 *
 * Segments: the active one is DIR/YYYYMMDD-HHMMSS.ffffff.jsonl.zst.active (UTC start time,
 * microseconds), created at the first flush that has records. Each flush appends one complete
 * zstd frame, so `zstdcat` reads every flushed record of the active segment, also after a kill
 * -9. A segment is finished when its compressed size reaches max_segment_bytes (checked after
 * each flush) or its age reaches max_segment_age_ns (checked by spool_log_tick()): fsync,
 * rename to DIR/NAME.jsonl.zst, fsync of the directory. Names sort in write order: a name that
 * would not sort after the previous one (clock step, two segments in one microsecond) is moved
 * forward by whole microseconds. spool_log_open() turns every leftover *.active file into a
 * finished segment, cut back to its last complete frame (an empty one is removed).
 *
 * Strings: every string field is emitted as valid UTF-8 JSON (jansson does the escaping of
 * quotes, backslashes and control bytes). A byte that is not part of a well-formed UTF-8
 * sequence (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) is replaced by
 * U+FFFD, one per byte; the original bytes are not logged.
 *
 * Time: the writer has no clock of its own. `now_ns` given to spool_log_open() and
 * spool_log_tick() is wall-clock time in nanoseconds since the Unix epoch (clock_real_ns());
 * it names segments, ages them and fills `timestamp` when an event leaves it 0.
 *
 * Errors: functions return 0 or -errno, never abort on I/O errors. A failed flush (ENOSPC,
 * EIO, EFBIG) keeps its records in memory, cuts the partial frame off the file and is retried
 * by the next tick/flush, so the writer continues once the error clears. While the disk keeps
 * failing the buffer grows up to max_pending_bytes; past that, new records are refused with
 * -ENOBUFS (counted in stats.dropped). One directory has one writer (flock; -EBUSY otherwise).
 * Not thread-safe: one writer is used by one thread.
 */
#ifndef RINGMAIL_SPOOL_LOG_H
#define RINGMAIL_SPOOL_LOG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define SPOOL_LOG_SUFFIX ".jsonl.zst"
#define SPOOL_LOG_ACTIVE_SUFFIX ".jsonl.zst.active"

#define SPOOL_LOG_DEFAULT_SEGMENT_BYTES (256u * 1024 * 1024)
#define SPOOL_LOG_DEFAULT_SEGMENT_AGE_NS (3600ull * 1000000000ull)
#define SPOOL_LOG_DEFAULT_FLUSH_NS (1000000000ull)
#define SPOOL_LOG_DEFAULT_FLUSH_BYTES (256u * 1024)
#define SPOOL_LOG_DEFAULT_PENDING_MAX (64u * 1024 * 1024)
#define SPOOL_LOG_DEFAULT_ZSTD_LEVEL 3

/* A zero field takes the default above. */
struct spool_log_opts {
    const char *dir;             /* created (one level, 0750) when missing */
    uint64_t max_segment_bytes;  /* compressed bytes before the segment is finished */
    uint64_t max_segment_age_ns; /* age before the segment is finished */
    uint64_t flush_interval_ns;  /* longest time a record waits in memory (driven by tick) */
    size_t flush_bytes;          /* buffered JSON bytes that flush at once (<= half the cap) */
    size_t max_pending_bytes;    /* buffered bytes past which records are refused */
    int zstd_level;              /* 1..ZSTD_maxCLevel(), or negative fast levels */
    const char *node_id;         /* `nodeid` of every record; NULL = null; copied */
};

enum spool_log_type {
    SPOOL_LOG_RECEPTION = 0,
    SPOOL_LOG_DELIVERY = 1,
    SPOOL_LOG_TRANSIENT_FAILURE = 2,
    SPOOL_LOG_BOUNCE = 3,
    SPOOL_LOG_EXPIRATION = 4,
    SPOOL_LOG_ADMIN_BOUNCE = 5,
    SPOOL_LOG_REJECTION = 6,
    SPOOL_LOG_SUPPRESSED = 7, /* a recipient not sent: on the suppression list (spool_supp.c) */
    SPOOL_LOG__MAX = 8,
};

struct spool_log_kv {
    const char *key;
    const char *value; /* NULL = null */
};

/* The SMTP reply the record is about: ours (Reception, Rejection) or the peer's. */
struct spool_log_response {
    int code;            /* 0 = no reply: `response` is null */
    uint8_t enh_class;   /* 0 = no enhanced status code: `enhanced_code` is null */
    uint16_t enh_subject;
    uint16_t enh_detail;
    const char *content; /* reply text after the codes; NULL = "" */
    const char *command; /* "MAIL FROM", "RCPT TO", "." ...; NULL = null */
};

/*
 * One event. Strings are borrowed for the call. NULL strings become "" for id, sender,
 * recipient, queue and site, and null for the rest. Reception records always have site ""
 * and null egress_pool/egress_source (KumoMTA's convention).
 */
struct spool_log_event {
    const char *id;
    const char *sender;
    const char *recipient;
    const char *queue;
    const char *site;
    uint64_t size;
    struct spool_log_response response;
    const char *peer_name; /* MX host name, or the client's EHLO name */
    const char *peer_addr; /* both peer_* NULL = `peer_address` null */
    int64_t timestamp;     /* unix seconds; 0 = the writer's now */
    int64_t created;       /* unix seconds the message was received; 0 = null */
    uint32_t num_attempts;
    const char *bounce_classification; /* NULL = "Uncategorized" */
    const char *egress_pool;
    const char *egress_source;
    /* outbound TLS (KumoMTA's fields): written only when non-empty; the subject is TAB-separated
     * "K=V" entries, written as an array of them */
    const char *tls_cipher;
    const char *tls_protocol_version;
    const char *tls_peer_subject_name;
    const struct spool_log_kv *meta;
    size_t meta_count;
    const struct spool_log_kv *headers;
    size_t header_count;
};

struct spool_log_stats {
    uint64_t records;        /* accepted into the buffer */
    uint64_t dropped;        /* refused with -ENOBUFS */
    uint64_t flushes;        /* frames written */
    uint64_t flush_errors;   /* failed flush attempts */
    uint64_t segments_done;  /* finished by this writer */
    uint64_t segment_bytes;  /* compressed bytes in the active segment */
    size_t pending_bytes;    /* JSON bytes waiting for the next flush */
};

struct spool_log;

int spool_log_open(const struct spool_log_opts *opts, uint64_t now_ns, struct spool_log **out);
/* spool_log_close - flush, finish the active segment, free; returns the first error (NULL ok) */
int spool_log_close(struct spool_log *lg);

/* spool_log_type_name - "Reception", "Delivery", ...; NULL for an unknown type */
const char *spool_log_type_name(enum spool_log_type type);

/*
 * spool_log_build - the JSON object for one event (owned by the caller: json_decref);
 * lg may be NULL (then nodeid is null and a 0 timestamp stays 0). -EINVAL for an unknown type.
 */
int spool_log_build(const struct spool_log *lg, enum spool_log_type type,
                    const struct spool_log_event *ev, json_t **out);

/* spool_log_event - build and buffer one record; 0, -EINVAL, -ENOMEM or -ENOBUFS (refused) */
int spool_log_event(struct spool_log *lg, enum spool_log_type type,
                    const struct spool_log_event *ev);
int spool_log_reception(struct spool_log *lg, const struct spool_log_event *ev);
int spool_log_delivery(struct spool_log *lg, const struct spool_log_event *ev);
int spool_log_transient_failure(struct spool_log *lg, const struct spool_log_event *ev);
int spool_log_bounce(struct spool_log *lg, const struct spool_log_event *ev);
int spool_log_expiration(struct spool_log *lg, const struct spool_log_event *ev);
int spool_log_admin_bounce(struct spool_log *lg, const struct spool_log_event *ev);
int spool_log_rejection(struct spool_log *lg, const struct spool_log_event *ev);

/*
 * spool_log_write - buffer one record the caller built (a JSON object, borrowed). A flush
 * this triggers that fails does not fail the write: the record stays buffered and the error
 * is returned by the next tick/flush. 0, -EINVAL (not an object), -ENOMEM, -ENOBUFS.
 */
int spool_log_write(struct spool_log *lg, const json_t *rec);
/*
 * spool_log_write_line - buffer one record already serialized (one compact JSON object, no
 * '\n'; the spool's write-ahead copy). Only the shape is checked, not the JSON.
 * 0, -EINVAL, -ENOBUFS.
 */
int spool_log_write_line(struct spool_log *lg, const char *line, size_t len);

/* spool_log_tick - flush when the interval passed, finish the segment when it is too old */
/* spool_log_set_flush_interval - the longest time a record waits from now on (0: the opened value) */
void spool_log_set_flush_interval(struct spool_log *lg, uint64_t ns);
int spool_log_tick(struct spool_log *lg, uint64_t now_ns);
/* spool_log_flush - write everything buffered as one frame now */
int spool_log_flush(struct spool_log *lg);
/* spool_log_sync - flush, then fdatasync the active segment */
int spool_log_sync(struct spool_log *lg);
/* spool_log_rotate - finish the active segment now (no-op without one) */
int spool_log_rotate(struct spool_log *lg);

void spool_log_stats_get(const struct spool_log *lg, struct spool_log_stats *out);
/* spool_log_active_path - path of the active segment, or NULL; valid until the next call */
const char *spool_log_active_path(const struct spool_log *lg);

#endif
