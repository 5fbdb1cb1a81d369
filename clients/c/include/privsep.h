/*
 * libprivsep: the C client of the privsep wire protocol v1.
 *
 * A helper talks to the broker over one AF_UNIX stream socket (fd 3 by default).
 * Every frame is a 4-byte big-endian length followed by one JSON object, the
 * envelope; file descriptors travel as SCM_RIGHTS with the frame that declares
 * them in its "fds" member. See privsep(3) and docs/protocol.md.
 *
 * Conventions:
 *  - Functions return 0 (or a positive count) on success and -1 on failure; a
 *    failure fills the caller's struct privsep_error (which may be NULL) with a
 *    protocol error code ("privsep.protocol", ...) and a message.
 *  - json_t arguments are borrowed: the library takes its own references.
 *  - File descriptors passed to send functions stay owned by the caller;
 *    descriptors in a received message belong to the message until taken with
 *    privsep_msg_take_fd(), and are closed by privsep_msg_free() otherwise.
 */
#ifndef PRIVSEP_H
#define PRIVSEP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PRIVSEP_PROTOCOL	1
#define PRIVSEP_LIB_VERSION	"0.1.0"

/* Limits of the protocol. */
#define PRIVSEP_FRAME_MIN	2u
#define PRIVSEP_FRAME_DEFAULT	(1u << 20)	/* until the hello reply says otherwise */
#define PRIVSEP_FRAME_LIMIT	(16u << 20)	/* no broker may announce more */
#define PRIVSEP_FDS_MAX		8u		/* per frame */
#define PRIVSEP_DEPTH_MAX	64u		/* JSON nesting, the envelope object is 1 */
#define PRIVSEP_ID_MAX		9007199254740991LL	/* 2^53 - 1 */

/* Limits of this library (local resources, not protocol). */
#define PRIVSEP_PENDING_MAX	256u	/* messages held while a request waits */
#define PRIVSEP_BATCHES_MAX	16u	/* reads whose fds wait for their frame to complete */
#define PRIVSEP_OUTQ_MAX	(64u << 20)	/* bytes queued for sending */
#define PRIVSEP_TIMEOUT_DEFAULT	30000	/* ms, for waits given a negative timeout */

/* Error codes used by the library itself. */
#define PRIVSEP_E_PROTOCOL	"privsep.protocol"	/* the stream broke a rule */
#define PRIVSEP_E_INVALID	"privsep.invalid"	/* a bad argument or envelope */
#define PRIVSEP_E_TIMEOUT	"privsep.timeout"	/* a wait ran out */
#define PRIVSEP_E_TOO_LARGE	"privsep.too_large"	/* an outgoing frame over max_frame */
#define PRIVSEP_E_UNAVAILABLE	"privsep.unavailable"	/* the broker closed the connection */
#define PRIVSEP_E_INTERNAL	"privsep.internal"	/* a system call or allocation failed */

/*
 * An error as a value: the protocol code, a stable reason (the names the
 * conformance vectors use: "frame_too_large", "fds_missing", "bad_type", ...),
 * whether the connection is finished, and a human-readable cause.
 */
struct privsep_error {
	char	code[48];	/* "" when no error was recorded */
	char	reason[24];
	int	fatal;		/* the connection cannot be used after this */
	int64_t	id;		/* a refused request's id (to answer it), else 0 */
	char	message[176];
};

/* The three kinds of envelope. */
enum privsep_kind {
	PRIVSEP_REQUEST = 1,	/* type + id: expects exactly one final reply */
	PRIVSEP_EVENT,		/* type, no id: one-way */
	PRIVSEP_REPLY		/* re + (body | error) */
};

struct privsep;		/* one connection to the broker */
struct privsep_msg;	/* one received, validated message */

/* --- Connections ------------------------------------------------------- */

/* Opens the connection the broker set up: PRIVSEP_FD, PRIVSEP_HELPER, PRIVSEP_PROTOCOL. */
int	privsep_open_env(struct privsep **, struct privsep_error *);
/* Opens a connection on a connected AF_UNIX stream socket; takes ownership of fd. */
int	privsep_open_fd(struct privsep **, int fd, const char *helper, struct privsep_error *);
/* Flushes queued output (bounded by the default timeout), closes the socket and every held fd. */
void	privsep_close(struct privsep *);
/* Decodes as the broker does (the peer is a helper: "from" is a protocol error). */
void	privsep_set_peer_helper(struct privsep *, int on);
/* Bounds the waits of send functions in blocking mode (ms, > 0). */
void	privsep_set_timeout(struct privsep *, int timeout_ms);
/*
 * In non-blocking mode send functions never wait (the event loop calls
 * privsep_flush()) and the socket is O_NONBLOCK; in blocking mode, the default,
 * it is not, and waits for input block in recvmsg bounded by SO_RCVTIMEO.
 */
void	privsep_set_nonblocking(struct privsep *, int on);

/* Sends privsep.hello and waits for its reply; a NULL client names this library. */
int	privsep_hello(struct privsep *, const char *client, json_t **reply_body, struct privsep_error *);
const char *privsep_helper(const struct privsep *);
size_t	privsep_max_frame(const struct privsep *);

/* --- Sending ----------------------------------------------------------- */

/* Sends an envelope as is; its "fds" member must equal nfds (absent when 0). */
int	privsep_send(struct privsep *, json_t *envelope, const int *fds, size_t nfds,
	    struct privsep_error *);
/* Sends a request with a fresh id (stored in *id unless NULL); a NULL body is {}. */
int	privsep_send_request(struct privsep *, const char *type, json_t *body,
	    const int *fds, size_t nfds, int64_t *id, struct privsep_error *);
/*
 * privsep_send_request() with the body written straight into the frame from a
 * json_pack(3) format and its arguments, no json_t built: the fast way to send
 * a small request. The format must describe one object; it may use { } [ ] and
 * s, s# (int length), s% (size_t length), i, I (json_int_t), b, n, f and O (a
 * borrowed json_t). A key given twice in one object, a NULL string, invalid
 * UTF-8 or a real that is not finite is refused (privsep.invalid) and nothing
 * is sent.
 */
int	privsep_send_request_pack(struct privsep *, const char *type, const int *fds,
	    size_t nfds, int64_t *id, struct privsep_error *, const char *fmt, ...);
int	privsep_event(struct privsep *, const char *type, json_t *body,
	    const int *fds, size_t nfds, struct privsep_error *);
/* Replies to a received request; more != 0 announces further replies to it. */
int	privsep_reply(struct privsep *, const struct privsep_msg *request, json_t *body,
	    const int *fds, size_t nfds, int more, struct privsep_error *);
int	privsep_reply_error(struct privsep *, const struct privsep_msg *request,
	    const char *code, const char *message, json_t *data, struct privsep_error *);
/* Sends a privsep.log event; level: trace, debug, info, notice, warning, error, critical. */
int	privsep_log(struct privsep *, const char *level, const char *message,
	    struct privsep_error *);

/* --- Blocking use ------------------------------------------------------ */

/*
 * Sends a request and waits for its reply; messages that arrive meanwhile are
 * kept (up to PRIVSEP_PENDING_MAX) for privsep_recv(). A negative timeout means
 * PRIVSEP_TIMEOUT_DEFAULT. An error reply is a successful return: check
 * privsep_msg_error_code().
 */
int	privsep_request(struct privsep *, const char *type, json_t *body,
	    const int *fds, size_t nfds, struct privsep_msg **reply, int timeout_ms,
	    struct privsep_error *);
/* privsep_request() with a packed body, as privsep_send_request_pack() sends it. */
int	privsep_request_pack(struct privsep *, const char *type, const int *fds, size_t nfds,
	    struct privsep_msg **reply, int timeout_ms, struct privsep_error *,
	    const char *fmt, ...);
/* Waits for the next reply to id (for streamed replies that carry "more"). */
int	privsep_wait_reply(struct privsep *, int64_t id, struct privsep_msg **reply,
	    int timeout_ms, struct privsep_error *);
/* Waits for the next message: kept ones first, then the socket. */
int	privsep_recv(struct privsep *, struct privsep_msg **, int timeout_ms,
	    struct privsep_error *);

/* --- Non-blocking use, for the helper's own event loop ------------------ */

/* The socket to poll: POLLIN always, POLLOUT while privsep_want_write(). */
int	privsep_fd(const struct privsep *);
int	privsep_want_write(const struct privsep *);
/* One recvmsg: 1 read bytes, 0 nothing to read now (or a frame waits: take first), -1 error or EOF. */
int	privsep_read(struct privsep *, struct privsep_error *);
/*
 * Adds one read's bytes obtained elsewhere, with the fds that came with them
 * (ownership passes, even on error). data NULL, len 0, no fds: end of stream.
 */
int	privsep_feed(struct privsep *, const void *data, size_t len, const int *fds, size_t nfds,
	    struct privsep_error *);
/*
 * 1 and a message, 0 when no complete frame is buffered, -1 on an error: a
 * fatal one (err->fatal) ends the connection; a refused message (code
 * privsep.invalid, not fatal) is dropped, its fds closed, and the stream goes on.
 */
int	privsep_take(struct privsep *, struct privsep_msg **, struct privsep_error *);
/* Writes queued frames: 1 all written, 0 some remain (poll POLLOUT), -1 error. */
int	privsep_flush(struct privsep *, struct privsep_error *);

/* --- Messages ---------------------------------------------------------- */

enum privsep_kind privsep_msg_kind(const struct privsep_msg *);
const char *privsep_msg_type(const struct privsep_msg *);	/* NULL on replies */
int64_t	privsep_msg_id(const struct privsep_msg *);		/* 0 when absent */
int64_t	privsep_msg_re(const struct privsep_msg *);		/* 0 when absent */
const char *privsep_msg_from(const struct privsep_msg *);	/* NULL when absent */
json_t	*privsep_msg_body(const struct privsep_msg *);		/* borrowed; {} if absent */
int	privsep_msg_more(const struct privsep_msg *);
const char *privsep_msg_error_code(const struct privsep_msg *);	/* NULL unless an error reply */
const char *privsep_msg_error_message(const struct privsep_msg *);
json_t	*privsep_msg_error_data(const struct privsep_msg *);	/* borrowed; may be NULL */
json_t	*privsep_msg_json(const struct privsep_msg *);		/* the whole envelope, borrowed */
size_t	privsep_msg_nfds(const struct privsep_msg *);
/* Hands fd i to the caller (who must close it); -1 if out of range or taken. */
int	privsep_msg_take_fd(struct privsep_msg *, size_t i);
void	privsep_msg_free(struct privsep_msg *);

/* --- Decoding without a connection ------------------------------------- */

/* Parses one frame body (the N bytes after the prefix) as a depth-checked I-JSON object. */
int	privsep_decode(const void *body, size_t len, json_t **envelope, struct privsep_error *);
/*
 * Checks the envelope rules. from_broker != 0 checks what a helper receives
 * ("from" allowed); 0 checks what a helper sends ("from" forbidden).
 */
int	privsep_envelope_check(const json_t *envelope, int from_broker, struct privsep_error *);

#ifdef __cplusplus
}
#endif

#endif /* PRIVSEP_H */
