/*
 * supervisor - ringmaild's internal interfaces (one process; files cut by concern)
 *
 * supervisor_main.c    arguments, start-up, the main loop, signals, reload, stop
 * supervisor_spawn.c   fork/exec of role instances, reaping, restart backoff and crash-loop hold
 * supervisor_listen.c  the SMTP listening sockets the ingress workers inherit
 * supervisor_admin.c   the admin HTTP API (libmicrohttpd, own thread) that ringctl talks to
 * supervisor_auth.c    its access control: token, Host/Origin, trusted networks, Unix socket, audit log
 * supervisor_ops.c     its live-operations endpoints, answered by the scheduler (command channel)
 * supervisor_inspect.c inspect-message and spool-compact (the spool's command channel and the scheduler's)
 * supervisor_notify.c  systemd notifications (READY, RELOADING, STOPPING, STATUS) and the watchdog
 * supervisor_trace.c   its SMTP trace endpoints: events from the roles' trace socket, streamed
 *
 * Threads: the main thread owns everything; the admin thread only reads the shared-memory role
 * table (for display) and the immutable start-up facts (instance count, each instance's role and
 * index), and hands restart/reload requests to the main thread through supervisor_request() (a
 * mutex, a condition variable and an eventfd that wakes the loop).
 */
#ifndef RINGMAIL_SUPERVISOR_H
#define RINGMAIL_SUPERVISOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "cfg/cfg.h"
#include "common/proto_admin.h"
#include "shm/shm_segment.h"

struct MHD_Connection;
struct MHD_Daemon;
struct shaping;
struct sup_auth_conn;

#define SUP_AUTH_TOKEN_HEX 64 /* 256 bits */

/* the admin API's access control (supervisor_auth.c); fixed at start except the connection list */
struct sup_auth {
    char token[SUP_AUTH_TOKEN_HEX + 1];
    char token_id[9];   /* first 8 hex digits of SHA-256(token): what logs name */
    char *token_path;   /* heap */
    char *socket_path;  /* heap; NULL: no Unix socket */
    int unix_fd;        /* the bound Unix socket until its daemon owns it; -1 */
    gid_t gid;          /* group of the token file and socket */
    uint16_t port;      /* of [admin] listen */
    uint8_t listen_addr[16];
    int listen_family;  /* AF_INET, AF_INET6 */
    bool listen_any;    /* a wildcard listener: any IP literal names it */
    /* connections that have not finished sending their request (slow-client sweep) */
    pthread_mutex_t conn_lock;
    struct sup_auth_conn *conns;
    uint64_t next_sweep_ns;
};

enum sup_req_kind {
    SUP_REQ_NONE = 0,
    SUP_REQ_RESTART = 1, /* arg: role; index -1 = every worker of the role */
    SUP_REQ_RELOAD = 2,
    SUP_REQ_SHAPING_RESOLVE = 3, /* args: domain, source, site; the answer document in detail */
    SUP_REQ_SHAPING_SET = 4,     /* args: domain, source, options; writes the override file and reloads */
};

struct sup_request {
    enum sup_req_kind kind;
    enum proto_node_role role;
    int index;
    const char *domain, *source, *site; /* shaping requests (borrowed from the admin thread) */
    const char *const *opt_names;       /* SUP_REQ_SHAPING_SET: option = value pairs as the client sent them */
    const char *const *opt_values;
    size_t n_opts;
    /* filled by the main thread */
    bool done;
    int status;   /* 0 ok, -errno */
    char *detail; /* heap; message for the client */
};

/*
 * supervisor's private view of one instance. The role table in shared memory is writable by every
 * role, so everything the supervisor acts on is here: the role and index (copied before any role
 * ran), the pid it forked (the only pid it ever signals), the generation, the state it decided and
 * when it started the instance. The shared slot is written from these and read back only for what
 * the role itself reports (ready, heartbeat), bounded.
 */
struct sup_instance {
    enum proto_node_role role;
    unsigned index;
    uint32_t generation;
    uint32_t state;          /* enum proto_node_inst_state, as the supervisor set it */
    uint64_t started_ns;
    pid_t pid;
    uint64_t restart_at_ns;  /* 0: none scheduled */
    uint64_t backoff_ns;
    uint64_t deaths[16];     /* ring of recent quick-death times for the crash-loop window */
    unsigned n_deaths;
    bool restart_requested;  /* operator restart: the exit is not a crash */
    uint64_t term_sent_ns;   /* SIGTERM sent at; SIGKILL after the drain timeout */
};

/* systemd notification state (supervisor_notify.c); main thread only */
struct supervisor_notify {
    bool enabled;                /* $NOTIFY_SOCKET was set */
    bool ready_sent;             /* the start-up READY=1 went out */
    bool reloading;              /* RELOADING=1 sent; READY=1 once every role applied it */
    bool withheld;               /* watchdog pings withheld (logged once) */
    uint64_t reloading_since_ns;
    uint64_t watchdog_ns;        /* $WATCHDOG_USEC in ns; 0: no watchdog */
    uint64_t watchdog_at_ns;     /* last WATCHDOG=1 */
    uint64_t status_at_ns;
    char status[160];            /* last STATUS= sent */
};

struct supervisor {
    struct cfg cfg;
    const char *config_path;   /* NULL: embedded default */
    const char *data_dir_arg;  /* --data-dir, or NULL */
    char *bin_dir;
    char *exe_path;
    uid_t run_uid;
    gid_t run_gid;
    uid_t role_uid[PROTO_NODE_ROLE__MAX]; /* [node] ROLE_user, else run_uid; all roles keep run_gid */
    bool drop_privileges;
    uint64_t started_ns;

    struct shaping *shaping; /* the node's shaping as last validated (start, reload); main thread only */

    struct shm_segment seg;
    struct sup_instance inst[PROTO_NODE_MAX_INSTANCES];
    /* each instance's doorbell eventfd (inherited by every role, handed to them as --bell-fds): the
     * segment publishes the numbers too, but any role can rewrite them there */
    int bell_fd[PROTO_NODE_MAX_INSTANCES];
    char bell_fds_arg[PROTO_NODE_MAX_INSTANCES * 12];
    /* SMTP listeners. Steered: one SO_REUSEPORT socket per ingress worker and listener, chosen by the
     * BPF program (worker_fds). Not steered: one socket per listener shared by every worker. */
    int listen_fds[CFG_MAX_LISTENERS];
    unsigned n_listen_fds;
    bool steering;
    char *steering_note; /* why there is no BPF steering, for status */
    int worker_fds[CFG_MAX_LISTENERS][PROTO_NODE_MAX_WORKERS];
    struct supervisor_bpf *bpf[CFG_MAX_LISTENERS];
    /* [[http_listener]] sockets (HTTP injection), shared by every ingress worker */
    int http_fds[CFG_MAX_HTTP_LISTENERS];
    unsigned n_http_fds;

    bool stopping;
    uint64_t stop_deadline_ns;
    /* stop in two steps: ingress and egress first (no new mail, in-flight deliveries finish and report),
     * then the spool and scheduler, once those are gone or at half the drain time */
    bool stop_core_sent;
    uint64_t stop_core_at_ns;

    /* reload bookkeeping, read by the admin thread under req_lock */
    uint32_t reload_gen;
    int last_reload_status;
    char *last_reload_detail;

    /* admin thread <-> main thread */
    struct MHD_Daemon *admin, *admin_unix; /* TCP [admin] listen; the Unix socket */
    struct sup_auth auth;
    pthread_mutex_t req_lock;
    pthread_cond_t req_cond;
    struct sup_request *pending; /* at most one at a time */
    bool requests_closed;        /* the main loop has ended: answer new requests at once */
    int req_efd;

    struct supervisor_notify notify;
};

/* supervisor_spawn.c */
/* supervisor_spawn_init - take the private copy of the role table's fixed part; before any role runs */
void supervisor_spawn_init(struct supervisor *s);
/* supervisor_spawn_set_state - the instance's state, in the private copy and in the role table */
void supervisor_spawn_set_state(struct supervisor *s, unsigned i, enum proto_node_inst_state state);
void supervisor_spawn_all(struct supervisor *s);
void supervisor_spawn_reap(struct supervisor *s);
void supervisor_spawn_tick(struct supervisor *s, uint64_t now);
int supervisor_spawn_restart(struct supervisor *s, enum proto_node_role role, int index, char **detail);
void supervisor_spawn_signal_all(struct supervisor *s, int sig);
/* supervisor_spawn_signal_roles - signal the running instances of the roles in `mask` (1 << role) */
void supervisor_spawn_signal_roles(struct supervisor *s, unsigned mask, int sig);
/* supervisor_spawn_alive_roles - running instances of the roles in `mask` */
unsigned supervisor_spawn_alive_roles(struct supervisor *s, unsigned mask);
unsigned supervisor_spawn_alive(struct supervisor *s);

/* supervisor_listen.c */
int supervisor_listen_open(struct supervisor *s, char **err);
/* supervisor_listen_worker_fds - the listener fds ingress worker `index` inherits, SMTP first (*n_smtp of
 * them), then HTTP; the count. They are close-on-exec: spawn_one uncovers them in that worker alone. */
size_t supervisor_listen_worker_fds(const struct supervisor *s, unsigned index, int *out, size_t cap,
                                    size_t *n_smtp);
/* supervisor_listen_fds - the same as --listen-fds text: "SMTP,SMTP/HTTP,HTTP" */
void supervisor_listen_fds(const struct supervisor *s, unsigned index, char *buf, size_t len);
/* supervisor_listen_balance - feed the ingress workers' loads to the steering program */
void supervisor_listen_balance(struct supervisor *s);
void supervisor_listen_close(struct supervisor *s);

/* supervisor_admin.c */
int supervisor_admin_start(struct supervisor *s, char **err);
void supervisor_admin_stop(struct supervisor *s);
/* supervisor_admin_arg_ok - a name a query may carry: UTF-8, no space or control character, at most 4096 bytes */
bool supervisor_admin_arg_ok(const char *v);
/* supervisor_admin_tick - main loop: close admin connections that are too slow to send their request */
void supervisor_admin_tick(struct supervisor *s, uint64_t now);
/* supervisor_request - called by the admin thread; blocks until the main thread answered */
void supervisor_request(struct supervisor *s, struct sup_request *req);

/* supervisor_auth.c: supervisor/supervisor_auth.h */
/* supervisor_ops.c */
struct MHD_Connection;
/* supervisor_ops_request - an endpoint answered by the scheduler through the command channel (queue-summary,
 * suspend, bounce, inspect...): the HTTP code and *body (heap JSON); 0 when url is none of them */
unsigned supervisor_ops_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool post,
                                char **body);
/* supervisor_ops_ask - req through the command channel of `role` (PROTO_NODE_ROLE_SCHEDULER or _SPOOL; id and
 * deadline are set here): the HTTP code, and the role's decoded result (*result, a json_t reference) on 200,
 * else an error document in *body (heap) */
unsigned supervisor_ops_ask(struct supervisor *s, enum proto_node_role role, struct proto_admin_req *req,
                            json_t **result, char **body);
/* supervisor_ops_who - the client as the records name it (address or socket credentials; the token id when post) */
void supervisor_ops_who(struct supervisor *s, struct MHD_Connection *c, bool post, char *buf, size_t len);
/* supervisor_ops_error - an error document {"ok": false, "error": msg} into *body; returns code */
unsigned supervisor_ops_error(unsigned code, const char *msg, char **body);

/* supervisor_inspect.c */
/* supervisor_inspect_request - inspect-message and spool-compact: the HTTP code and *body; 0 when url is none
 * of them. who: the client as the records name it */
unsigned supervisor_inspect_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool post,
                                    const char *who, char **body);
/* supervisor_inspect_merge - the inspect-message answer from the spool's decoded result (NULL: not in the
 * spool) and the scheduler's entries (NULL: it did not answer; sched_error says why); any content of
 * either is taken (they are role-written): members of another type are left out, indexes are checked */
json_t *supervisor_inspect_merge(const char *id, const json_t *spool, const json_t *entries, const char *sched_error);

/* supervisor_supp.c */
/* supervisor_supp_request - the suppression list's endpoints: the HTTP code, *body (heap) and *type (NULL: an
 * admin JSON document); 0 when url is none of them. json_body: the request's JSON object or NULL */
unsigned supervisor_supp_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool get, bool post,
                                 const void *json_body, char **body, const char **type);
enum MHD_Result;
/* supervisor_supp_export - GET /api/v1/suppression/export: true with *ret once answered (a stream), false when
 * url is another */
bool supervisor_supp_export(struct supervisor *s, struct MHD_Connection *c, const char *url, bool get,
                            enum MHD_Result *ret);

/* supervisor_trace.c */
struct buf;
enum MHD_Result;
/* supervisor_trace_start - the roles' trace socket (DATA_DIR/trace.sock) and its thread; 0 or -errno */
int supervisor_trace_start(struct supervisor *s, char **err);
/* supervisor_trace_stop - end every trace (their streams end), the thread and the socket */
void supervisor_trace_stop(struct supervisor *s);
/* supervisor_trace_note_pid - instance i now runs as pid (0: not running): whose events are whose */
void supervisor_trace_note_pid(unsigned instance, pid_t pid);
/* supervisor_trace_request - GET /api/v1/trace/smtp-server|smtp-client: 1 with *ret once answered (the
 * stream queued, or an error), 0 when url is neither */
unsigned supervisor_trace_request(struct supervisor *s, struct MHD_Connection *c, const char *url, bool get,
                                  enum MHD_Result *ret);
/* supervisor_trace_metrics - its counters, into the metrics collection (supervisor_metrics.h) */
struct sup_metrics;
void supervisor_trace_metrics(struct sup_metrics *m);

/* supervisor_ui.c: the web console's static files */
/* supervisor_ui_init - their ETags (SHA-256); once, before the admin daemons start */
void supervisor_ui_init(void);
/* supervisor_ui_is_ui - url is /ui or under /ui/ (the console's; served without the token: no node data) */
bool supervisor_ui_is_ui(const char *url);
/* supervisor_ui_find - the embedded file whose URL path is exactly url (/ui/ is index.html): type and bytes */
bool supervisor_ui_find(const char *url, const char **type, const char **data, size_t *len);
/* supervisor_ui_request - GET /ui, /ui/<file>: true with *ret once answered (404 for a name not embedded,
 * 405 not GET), false when url is not the console's */
bool supervisor_ui_request(struct MHD_Connection *c, const char *url, bool get, enum MHD_Result *ret);

/* supervisor_shaping.c */
/* supervisor_shaping_load - the shaping of configuration c: 0 and *out, or -EINVAL with every error in
 * *err (heap); warnings are logged */
int supervisor_shaping_load(const struct cfg *c, struct shaping **out, char **err);
/* supervisor_shaping_resolve - the resolve document (shaping_explain) for the request, into req->detail */
void supervisor_shaping_resolve(struct supervisor *s, struct sup_request *req);
/* supervisor_shaping_set - merge the request's options into the override file, validate, reload */
void supervisor_shaping_set(struct supervisor *s, struct sup_request *req);

/* supervisor_notify.c */
void supervisor_notify_init(struct supervisor *s);
/* supervisor_notify_tick - main loop: READY=1 once every role is ready, STATUS=, WATCHDOG=1 when healthy */
void supervisor_notify_tick(struct supervisor *s, uint64_t now);
/* supervisor_notify_healthy - every ready instance's heartbeat is younger than fresh_ns */
bool supervisor_notify_healthy(const struct supervisor *s, uint64_t now, uint64_t fresh_ns);
void supervisor_notify_reloading(struct supervisor *s);
/* supervisor_notify_reloaded - status: supervisor_reload()'s result */
void supervisor_notify_reloaded(struct supervisor *s, int status);
void supervisor_notify_stopping(struct supervisor *s);

/* supervisor_main.c */
int supervisor_reload(struct supervisor *s, char **detail);

#endif
