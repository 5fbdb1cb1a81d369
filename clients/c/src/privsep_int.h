/*
 * Internal state of libprivsep; not installed.
 */
#ifndef PRIVSEP_INT_H
#define PRIVSEP_INT_H

#include <stdarg.h>
#include <string.h>

#include "privsep.h"

/* A frame waiting to be written; fds go with its first byte. */
struct outframe {
	struct outframe	*next;
	unsigned char	*bytes;
	size_t		 len;
	size_t		 off;		/* bytes already written */
	int		 fds[PRIVSEP_FDS_MAX];	/* our duplicates, closed once sent */
	size_t		 nfds;
};

/*
 * The fds of one read. They belong to the last frame whose length prefix
 * starts inside that read (its sender put them on the sendmsg that starts
 * there); owner is that frame's stream offset, or -1 when no frame starts in
 * the read, so no frame can claim them.
 */
struct fdbatch {
	int		 fds[PRIVSEP_FDS_MAX];
	size_t		 n;
	int64_t		 owner;
	uint64_t	 read_start;	/* the read's stream offsets [start, end) */
	uint64_t	 read_end;
};

/*
 * A growing byte buffer with a hard limit. Writing past the limit keeps
 * counting len (to report the size) but stores nothing more.
 */
struct privsep_buf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
	size_t		 limit;
	int		 status;	/* 0 or one of: */
#define PRIVSEP_BUF_OVER	1	/* past limit */
#define PRIVSEP_BUF_NOMEM	2
#define PRIVSEP_BUF_BAD		3	/* a value JSON cannot carry: bad UTF-8, too deep */
#define PRIVSEP_BUF_FAILED(b)	((b)->status > PRIVSEP_BUF_OVER)
};

/* Deepest value the writer follows (jansson's own parser bound); deeper is a loop, or no JSON. */
#define PRIVSEP_WRITE_DEPTH_MAX	2048u

/* The top-level members of an envelope, found in one pass; NULL when absent. */
struct envelope_members {
	json_t		*type, *id, *re, *body, *error, *more, *fds, *from;
	const char	*unknown;	/* the first member of another name */
};

/* A frame the scanner accepted (envelope.c): pointers into the frame. */
struct envelope_scan {
	const char	*type, *from;	/* NULL when absent; not NUL-terminated */
	size_t		 typelen, fromlen;
	int64_t		 id, re, fds;	/* 0 when absent */
	int		 more;
	enum privsep_kind kind;
};

struct privsep_msg {
	struct privsep_msg *next;	/* in the pending list */
	json_t		*json;		/* the envelope; a scanned message builds it when wanted */
	unsigned char	*frame;		/* a scanned message's frame, after the struct; else NULL */
	size_t		 framelen;
	const char	*type, *from;	/* a scanned message's copies, after the frame */
	int64_t		 id;
	int		 more;
	enum privsep_kind kind;
	int64_t		 re;		/* as received, for matching replies */
	int		 fds[PRIVSEP_FDS_MAX];
	size_t		 nfds;
};

struct privsep {
	int		 fd;
	char		*helper;
	size_t		 max_frame;
	int		 timeout_ms;
	int		 nonblocking;
	int		 sock_nonblock;	/* O_NONBLOCK is set on fd (it follows nonblocking) */
	int64_t		 rcvtimeo_ms;	/* the SO_RCVTIMEO last set, 0 for none */
	int		 poll_wait;	/* one CPU allowed at open: blocking waits poll(2) (wait_input) */
	int		 epfd;		/* the one-CPU wait's epoll set (socket and timer), -1 until made */
	int		 timerfd;	/* its timer, set to a deadline ahead of no wait's; -1 until made */
	int64_t		 timer_at;	/* when the timer fires (ms, CLOCK_MONOTONIC), 0 when not set */
	int		 epoll_failed;	/* making the set failed: one-CPU waits poll(2) */
	int64_t		 next_id;

	int		 peer_helper;	/* decode as the broker: "from" is forbidden */

	/* input: bytes received and not yet framed */
	unsigned char	*in;
	size_t		 in_len;
	size_t		 in_cap;
	uint64_t	 in_off;	/* stream offset of in[0] */
	uint64_t	 scan;		/* stream offset of the latest frame start seen */
	int		 eof;

	/* fds received, each batch waiting for the frame that owns it */
	struct fdbatch	 batches[PRIVSEP_BATCHES_MAX];
	size_t		 nbatches;

	/* messages taken while a request waited for its reply */
	struct privsep_msg *pending;
	struct privsep_msg **pending_tail;
	size_t		 npending;

	/* output */
	struct privsep_buf obuf;	/* the frame being written */
	struct outframe	*out;
	struct outframe	**out_tail;
	size_t		 out_bytes;

	/* a protocol or I/O failure is final: the stream cannot be trusted after it */
	int		 failed;
	struct privsep_error failure;
};

/* Records an error; returns -1 so callers can `return seterr(...)`. */
int	 privsep_seterr(struct privsep_error *, const char *code, const char *reason,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* privsep_decode(), also returning the envelope's members. */
int	 privsep_decode_members(const void *, size_t, json_t **, struct envelope_members *,
	    struct privsep_error *);
void	 privsep_envelope_members(const json_t *, struct envelope_members *);
/* The fatal checks (from by a helper, fds shape) and the number of fds declared. */
int	 privsep_envelope_preflight(const struct envelope_members *, int sender_is_helper,
	    size_t *declared, struct privsep_error *);
/* The per-message checks; failures are privsep.invalid with err->id set for requests. */
int	 privsep_envelope_validate(const json_t *, const struct envelope_members *,
	    struct privsep_error *);
/* Builds a message from a checked envelope; takes the json reference. */
struct privsep_msg *privsep_msg_new(json_t *, const struct envelope_members *,
	    struct privsep_error *);
int	 privsep_type_valid(const char *, size_t);
/* The common message checked without a tree: 0 when it passes, -1 for the tree's way. */
int	 privsep_scan_envelope(const void *, size_t, int sender_is_helper, struct envelope_scan *);
/* A message holding a copy of a scanned frame; NULL when out of memory. */
struct privsep_msg *privsep_msg_scanned(const void *, size_t, const struct envelope_scan *);

/* The compact JSON writer (json.c): bytes identical to json_dumpb(JSON_COMPACT). */
/* Bytes a JSON string carries unescaped, for the reader and for the writer. */
extern const unsigned char privsep_plain[256];
#define PRIVSEP_PLAIN_READ	1	/* 0x20..0x7e but '"' and '\\' */
#define PRIVSEP_PLAIN_WRITE	2	/* the same and 0x7f */
void	 privsep_buf_put_slow(struct privsep_buf *, const void *, size_t);

/*
 * Appends n bytes. Inline for the common case, the room there within the
 * limit (a buffer reused under a lower limit may hold more than it allows).
 */
static inline void
privsep_buf_put(struct privsep_buf *b, const void *data, size_t n)
{
	if (b->status == 0 && n <= b->cap - b->len && b->len + n <= b->limit) {
		memcpy(b->p + b->len, data, n);
		b->len += n;
	} else
		privsep_buf_put_slow(b, data, n);
}
void	 privsep_buf_int(struct privsep_buf *, int64_t);
void	 privsep_buf_string(struct privsep_buf *, const char *, size_t);
void	 privsep_buf_json(struct privsep_buf *, const json_t *, size_t depth);
/*
 * Writes the object a json_pack(3) format describes (json.c): 0, or -1 with
 * the cause and the format offset where it was found.
 */
int	 privsep_buf_vpack(struct privsep_buf *, size_t depth, const char *fmt, va_list *,
	    const char **why, size_t *where);

#endif /* PRIVSEP_INT_H */
