/*
 * Internal state of libprivsep; not installed.
 */
#ifndef PRIVSEP_INT_H
#define PRIVSEP_INT_H

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

struct privsep_msg {
	struct privsep_msg *next;	/* in the pending list */
	json_t		*json;
	enum privsep_kind kind;
	int		 fds[PRIVSEP_FDS_MAX];
	size_t		 nfds;
};

struct privsep {
	int		 fd;
	char		*helper;
	size_t		 max_frame;
	int		 timeout_ms;
	int		 nonblocking;
	int64_t		 next_id;

	/* input: bytes received and not yet framed */
	unsigned char	*in;
	size_t		 in_len;
	size_t		 in_cap;
	int		 eof;

	/* received fds in arrival order, not yet claimed by a frame */
	int		 fifo[PRIVSEP_FD_FIFO_MAX];
	size_t		 fifo_len;

	/* messages taken while a request waited for its reply */
	struct privsep_msg *pending;
	struct privsep_msg **pending_tail;
	size_t		 npending;

	/* output */
	struct outframe	*out;
	struct outframe	**out_tail;
	size_t		 out_bytes;

	/* a protocol or I/O failure is final: the stream cannot be trusted after it */
	int		 failed;
	struct privsep_error failure;
};

/* Records an error; returns -1 so callers can `return seterr(...)`. */
int	 privsep_seterr(struct privsep_error *, const char *code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* Builds a message from a decoded envelope; takes the json reference. */
struct privsep_msg *privsep_msg_new(json_t *, struct privsep_error *);
/* Classifies an envelope that passed privsep_envelope_check(). */
enum privsep_kind privsep_kind_of(const json_t *);
int	 privsep_type_valid(const char *, size_t);

#endif /* PRIVSEP_INT_H */
