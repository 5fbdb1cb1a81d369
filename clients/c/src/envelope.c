/*
 * Envelope decoding and validation, and the message accessors.
 *
 * jansson does the I-JSON work (UTF-8, surrogates, duplicates with
 * JSON_REJECT_DUPLICATES, no NaN, nothing after the value); its own depth bound
 * is a compile-time 2048, so the protocol's 64 is checked on the tree. A frame
 * of the plain kind (ASCII strings without escapes, small integers) is read by
 * fast_load() instead, which gives every other frame to jansson; the common
 * message is only scanned (privsep_scan_envelope()) and built when wanted.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privsep_int.h"

int
privsep_seterr(struct privsep_error *err, const char *code, const char *reason,
    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	memset(err, 0, sizeof(*err));
	snprintf(err->code, sizeof(err->code), "%s", code);
	snprintf(err->reason, sizeof(err->reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* A fatal error: the stream cannot be trusted after it. */
static int
protocol_error(struct privsep_error *err, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
protocol_error(struct privsep_error *err, const char *reason, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	memset(err, 0, sizeof(*err));
	snprintf(err->code, sizeof(err->code), "%s", PRIVSEP_E_PROTOCOL);
	snprintf(err->reason, sizeof(err->reason), "%s", reason);
	err->fatal = 1;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

/* Returns the nesting depth of v, giving up as soon as it passes limit. */
static size_t
depth_of(json_t *v, size_t level, size_t limit)
{
	size_t i, d, max = level;
	const char *key;
	json_t *child;

	if (level > limit)
		return level;
	if (json_is_object(v)) {
		json_object_foreach(v, key, child) {
			if (json_is_object(child) || json_is_array(child)) {
				d = depth_of(child, level + 1, limit);
				if (d > max)
					max = d;
				if (max > limit)
					return max;
			}
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			if (json_is_object(child) || json_is_array(child)) {
				d = depth_of(child, level + 1, limit);
				if (d > max)
					max = d;
				if (max > limit)
					return max;
			}
		}
	}
	return max;
}

/* Keys are compared with their length: a key may hold "\u0000". */
static int
key_is(const char *key, size_t keylen, const char *name)
{
	return keylen == strlen(name) && memcmp(key, name, keylen) == 0;
}

/* The envelope's members, one bit each. */
enum {
	MEMBER_TYPE = 1, MEMBER_ID = 2, MEMBER_RE = 4, MEMBER_FDS = 8, MEMBER_MORE = 16,
	MEMBER_FROM = 32, MEMBER_BODY = 64, MEMBER_ERROR = 128
};

/* Which envelope member a key names: its bit, or 0 for any other key. */
static unsigned
envelope_member(const char *key, size_t keylen)
{
	switch (keylen) {
	case 2:
		return key_is(key, keylen, "id") ? MEMBER_ID : key_is(key, keylen, "re") ? MEMBER_RE : 0;
	case 3:
		return key_is(key, keylen, "fds") ? MEMBER_FDS : 0;
	case 4:
		return key_is(key, keylen, "type") ? MEMBER_TYPE : key_is(key, keylen, "body") ?
		    MEMBER_BODY : key_is(key, keylen, "more") ? MEMBER_MORE : key_is(key, keylen,
		    "from") ? MEMBER_FROM : 0;
	case 5:
		return key_is(key, keylen, "error") ? MEMBER_ERROR : 0;
	default:
		return 0;
	}
}

void
privsep_envelope_members(const json_t *env, struct envelope_members *m)
{
	const char *key;
	size_t keylen;
	json_t *v, **slot;

	memset(m, 0, sizeof(*m));
	json_object_keylen_foreach((json_t *)env, key, keylen, v) {
		switch (envelope_member(key, keylen)) {
		case MEMBER_TYPE: slot = &m->type; break;
		case MEMBER_ID: slot = &m->id; break;
		case MEMBER_RE: slot = &m->re; break;
		case MEMBER_FDS: slot = &m->fds; break;
		case MEMBER_MORE: slot = &m->more; break;
		case MEMBER_FROM: slot = &m->from; break;
		case MEMBER_BODY: slot = &m->body; break;
		case MEMBER_ERROR: slot = &m->error; break;
		default: slot = NULL; break;
		}
		if (slot != NULL)
			*slot = v;
		else if (m->unknown == NULL)
			m->unknown = key;
	}
}

/*
 * jansson stores integers in 64 bits and reads "1.0" as a real. The envelope's
 * integers (id, re, fds) are compared by value, so an integral real in range
 * becomes the integer it names.
 */
static void
normalize_integer(json_t *env, const char *key, json_t **member)
{
	json_t *n;
	double d;

	if (!json_is_real(*member))
		return;
	d = json_real_value(*member);
	if (d >= -(double)PRIVSEP_ID_MAX && d <= (double)PRIVSEP_ID_MAX && d == (double)(int64_t)d &&
	    (n = json_integer((json_int_t)d)) != NULL && json_object_set_new(env, key, n) == 0)
		*member = n;
}

/*
 * The common frame, read without jansson's lexer (which costs some 150
 * instructions a byte): objects, arrays, strings of printable ASCII without
 * escapes, integers of at most 18 digits (no "-0", no leading zero), true,
 * false, null, at most PRIVSEP_DEPTH_MAX deep, no duplicate key. Anything
 * else, valid or not, gives up (NULL) and json_loadb() reads the frame and
 * decides: this reader accepts only text jansson accepts, and builds the tree
 * jansson builds from it.
 */
struct fastreader {
	const unsigned char	*p;
	const unsigned char	*end;
	size_t			 depth;
};

static json_t	*fast_value(struct fastreader *);

static void
fast_space(struct fastreader *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t'))
		f->p++;
}

/* A string's bytes between its quotes (f->p at the opening one): 0, or -1 to give up. */
static int
fast_string(struct fastreader *f, const char **s, size_t *len)
{
	const unsigned char *q;

	if (f->p == f->end || *f->p != '"')
		return -1;
	for (q = f->p + 1; q < f->end && (privsep_plain[*q] & PRIVSEP_PLAIN_READ); q++)
		;
	if (q == f->end || *q != '"')
		return -1;	/* an escape, a control or non-ASCII byte, or no end */
	*s = (const char *)f->p + 1;
	*len = (size_t)(q - f->p - 1);
	f->p = q + 1;
	return 0;
}

/* The integer at f->p (not at the end) into *v: 0, or -1 to give up. */
static int
fast_int(struct fastreader *f, int64_t *v)
{
	const unsigned char *q = f->p;
	int64_t n = 0;
	size_t digits = 0;
	int neg = 0;

	if (*q == '-') {
		neg = 1;
		q++;
	}
	if (q == f->end || *q < '0' || *q > '9')
		return -1;
	if (*q == '0' && (neg || (q + 1 < f->end && q[1] >= '0' && q[1] <= '9')))
		return -1;
	for (; q < f->end && *q >= '0' && *q <= '9'; q++) {
		if (++digits > 18)
			return -1;	/* might not fit 64 bits */
		n = n * 10 + (*q - '0');
	}
	if (q < f->end && (*q == '.' || *q == 'e' || *q == 'E'))
		return -1;	/* a real */
	f->p = q;
	*v = neg ? -n : n;
	return 0;
}

static json_t *
fast_integer(struct fastreader *f)
{
	int64_t v;

	return fast_int(f, &v) == -1 ? NULL : json_integer(v);
}

/* The literal at f->p, stepped over: FAST_TRUE, FAST_FALSE, FAST_NULL, or -1 to give up. */
enum { FAST_FALSE, FAST_TRUE, FAST_NULL };

static int
fast_word(struct fastreader *f)
{
	size_t left = (size_t)(f->end - f->p), n;
	int word;

	if (left >= 4 && memcmp(f->p, "true", 4) == 0) {
		n = 4;
		word = FAST_TRUE;
	} else if (left >= 5 && memcmp(f->p, "false", 5) == 0) {
		n = 5;
		word = FAST_FALSE;
	} else if (left >= 4 && memcmp(f->p, "null", 4) == 0) {
		n = 4;
		word = FAST_NULL;
	} else
		return -1;
	/* jansson reads a word of letters as one token: "truex" is no "true" */
	if (n < left && ((f->p[n] | 0x20) >= 'a' && (f->p[n] | 0x20) <= 'z'))
		return -1;
	f->p += n;
	return word;
}

static json_t *
fast_literal(struct fastreader *f)
{
	switch (fast_word(f)) {
	case FAST_TRUE:
		return json_true();
	case FAST_FALSE:
		return json_false();
	case FAST_NULL:
		return json_null();
	default:
		return NULL;
	}
}

/* After a member or an element: 1 past the closing byte, 0 past a comma, -1 to give up. */
static int
fast_after(struct fastreader *f, unsigned char close)
{
	fast_space(f);
	if (f->p == f->end)
		return -1;
	if (*f->p == close) {
		f->p++;
		return 1;
	}
	return *f->p++ == ',' ? 0 : -1;
}

/* Steps past a container's opening byte: 1 also past `close` when it is empty, else 0. */
static int
fast_open(struct fastreader *f, unsigned char close)
{
	f->p++;
	fast_space(f);
	if (f->p < f->end && *f->p == close) {
		f->p++;
		return 1;
	}
	return 0;
}

static json_t *
fast_object(struct fastreader *f)
{
	const char *key;
	size_t keylen, size;
	json_t *o, *v;
	int next;

	if ((o = json_object()) == NULL)
		return NULL;
	if (fast_open(f, '}'))
		return o;
	for (;;) {
		fast_space(f);
		if (fast_string(f, &key, &keylen) == -1)
			break;
		fast_space(f);
		if (f->p == f->end || *f->p != ':')
			break;
		f->p++;
		fast_space(f);
		size = json_object_size(o);
		if ((v = fast_value(f)) == NULL ||
		    json_object_setn_new_nocheck(o, key, keylen, v) == -1)
			break;
		if (json_object_size(o) == size)
			break;	/* the key replaced a value: a duplicate, jansson's to report */
		if ((next = fast_after(f, '}')) == 1)
			return o;
		if (next == -1)
			break;
	}
	json_decref(o);
	return NULL;
}

static json_t *
fast_array(struct fastreader *f)
{
	json_t *a, *v;
	int next;

	if ((a = json_array()) == NULL)
		return NULL;
	if (fast_open(f, ']'))
		return a;
	for (;;) {
		fast_space(f);
		if ((v = fast_value(f)) == NULL || json_array_append_new(a, v) == -1)
			break;
		if ((next = fast_after(f, ']')) == 1)
			return a;
		if (next == -1)
			break;
	}
	json_decref(a);
	return NULL;
}

static json_t *
fast_value(struct fastreader *f)
{
	const char *s;
	size_t len;
	json_t *v;

	if (f->p == f->end)
		return NULL;
	switch (*f->p) {
	case '{':
	case '[':
		if (f->depth == PRIVSEP_DEPTH_MAX)
			return NULL;
		f->depth++;
		v = *f->p == '{' ? fast_object(f) : fast_array(f);
		f->depth--;
		return v;
	case '"':
		return fast_string(f, &s, &len) == -1 ? NULL : json_stringn_nocheck(s, len);
	case 't':
	case 'f':
	case 'n':
		return fast_literal(f);
	default:
		return fast_integer(f);
	}
}

/* The frame's object, or NULL for json_loadb() to read it. */
static json_t *
fast_load(const void *body, size_t len)
{
	struct fastreader f;
	json_t *v;

	f.p = body;
	f.end = f.p + len;
	f.depth = 0;
	fast_space(&f);
	if (f.p == f.end || *f.p != '{' || (v = fast_value(&f)) == NULL)
		return NULL;
	fast_space(&f);
	if (f.p != f.end) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/*
 * The common message checked without building it. The scanner accepts a frame
 * only if fast_load() would read it and the envelope checks would pass it, and
 * only with the members type, id, re, fds, more, from and body; the message keeps
 * the frame's bytes, and fast_load() builds the tree the first time the
 * application asks for it (privsep_msg_body(), privsep_msg_json()). A reply whose
 * body is never read (an acknowledgement, a descriptor) then costs one
 * allocation instead of two or three per value. Everything else gives up (-1)
 * and is read the tree's way, which reaches the same verdict on what the scanner
 * accepts and words every error.
 */

/* Members per object the scanner's duplicate check compares pairwise; more gives up. */
#define SCAN_MEMBERS_MAX	16

static int	scan_value(struct fastreader *);

static int
scan_object(struct fastreader *f)
{
	const char *keys[SCAN_MEMBERS_MAX], *key;
	size_t lens[SCAN_MEMBERS_MAX], n = 0, keylen, i;
	int next;

	if (fast_open(f, '}'))
		return 0;
	for (;;) {
		fast_space(f);
		if (n == SCAN_MEMBERS_MAX || fast_string(f, &key, &keylen) == -1)
			return -1;
		for (i = 0; i < n; i++)
			if (lens[i] == keylen && memcmp(keys[i], key, keylen) == 0)
				return -1;	/* a duplicate: jansson's to report */
		keys[n] = key;
		lens[n++] = keylen;
		fast_space(f);
		if (f->p == f->end || *f->p != ':')
			return -1;
		f->p++;
		fast_space(f);
		if (scan_value(f) == -1 || (next = fast_after(f, '}')) == -1)
			return -1;
		if (next == 1)
			return 0;
	}
}

static int
scan_array(struct fastreader *f)
{
	int next;

	if (fast_open(f, ']'))
		return 0;
	for (;;) {
		fast_space(f);
		if (scan_value(f) == -1 || (next = fast_after(f, ']')) == -1)
			return -1;
		if (next == 1)
			return 0;
	}
}

static int
scan_value(struct fastreader *f)
{
	const char *s;
	size_t len;
	int64_t n;
	int r;

	if (f->p == f->end)
		return -1;
	switch (*f->p) {
	case '{':
	case '[':
		if (f->depth == PRIVSEP_DEPTH_MAX)
			return -1;
		f->depth++;
		r = *f->p == '{' ? scan_object(f) : scan_array(f);
		f->depth--;
		return r;
	case '"':
		return fast_string(f, &s, &len);
	case 't':
	case 'f':
	case 'n':
		return fast_word(f) == -1 ? -1 : 0;
	default:
		return fast_int(f, &n);
	}
}

/* One member's value, of the shape its check wants: 0, or -1 to give up. */
static int
scan_member_value(struct fastreader *f, unsigned member, struct envelope_scan *e)
{
	if (f->p == f->end)
		return -1;
	switch (member) {
	case MEMBER_TYPE:
		return fast_string(f, &e->type, &e->typelen);
	case MEMBER_FROM:
		return fast_string(f, &e->from, &e->fromlen);
	case MEMBER_ID:
		return fast_int(f, &e->id);
	case MEMBER_RE:
		return fast_int(f, &e->re);
	case MEMBER_FDS:
		return fast_int(f, &e->fds);
	case MEMBER_MORE:
		return fast_word(f) == FAST_TRUE ? 0 : -1;
	case MEMBER_BODY:
		return *f->p == '{' ? scan_value(f) : -1;
	default:
		return -1;
	}
}

/* What privsep_envelope_preflight() and privsep_envelope_validate() require. */
static int
scan_passes(const struct envelope_scan *e, unsigned seen, int sender_is_helper)
{
	if ((seen & MEMBER_FROM) && (sender_is_helper || e->fromlen == 0))
		return 0;
	if ((seen & MEMBER_FDS) && (e->fds < 1 || e->fds > PRIVSEP_FDS_MAX))
		return 0;
	if ((seen & MEMBER_TYPE) && !privsep_type_valid(e->type, e->typelen))
		return 0;
	if ((seen & MEMBER_ID) && (e->id < 1 || e->id > PRIVSEP_ID_MAX))
		return 0;
	if ((seen & MEMBER_RE) && (e->re < 1 || e->re > PRIVSEP_ID_MAX))
		return 0;
	if (seen & MEMBER_RE)
		return !(seen & (MEMBER_TYPE | MEMBER_ID));
	return (seen & MEMBER_TYPE) && !(seen & MEMBER_MORE);
}

int
privsep_scan_envelope(const void *body, size_t len, int sender_is_helper,
    struct envelope_scan *e)
{
	struct fastreader f;
	const char *key;
	size_t keylen;
	unsigned seen = 0, member;
	int next;

	memset(e, 0, sizeof(*e));
	f.p = body;
	f.end = f.p + len;
	f.depth = 1;	/* the envelope */
	fast_space(&f);
	if (f.p == f.end || *f.p != '{' || fast_open(&f, '}'))
		return -1;
	for (;;) {
		fast_space(&f);
		if (fast_string(&f, &key, &keylen) == -1 ||
		    (member = envelope_member(key, keylen)) == 0 || (seen & member))
			return -1;
		seen |= member;
		fast_space(&f);
		if (f.p == f.end || *f.p != ':')
			return -1;
		f.p++;
		fast_space(&f);
		if (scan_member_value(&f, member, e) == -1 || (next = fast_after(&f, '}')) == -1)
			return -1;
		if (next == 1)
			break;
	}
	fast_space(&f);
	if (f.p != f.end || !scan_passes(e, seen, sender_is_helper))
		return -1;
	e->more = (seen & MEMBER_MORE) != 0;
	e->kind = (seen & MEMBER_RE) ? PRIVSEP_REPLY : (seen & MEMBER_ID) ? PRIVSEP_REQUEST :
	    PRIVSEP_EVENT;
	return 0;
}

/* The frame read by jansson, with the checks it does not make; NULL after an error. */
static json_t *
jansson_load(const void *body, size_t len, struct privsep_error *err)
{
	/* JSON_ALLOW_NUL: "\u0000" is valid I-JSON; lengths are used, never strlen. */
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY;
	json_error_t jerr;
	json_t *v;

	v = json_loadb(body, len, flags, &jerr);
	/*
	 * An integer beyond 64 bits is valid JSON that jansson cannot hold as an
	 * integer: read the frame again with every integer as a real.
	 */
	if (v == NULL && json_error_code(&jerr) == json_error_numeric_overflow)
		v = json_loadb(body, len, flags | JSON_DECODE_INT_AS_REAL, &jerr);
	if (v == NULL) {
		protocol_error(err, "invalid_json", "frame: invalid JSON at byte %d: %s",
		    jerr.position, jerr.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		protocol_error(err, "not_object", "frame: holds a JSON value, not an object");
		return NULL;
	}
	/*
	 * Each level of nesting takes an opening and a closing byte: a frame
	 * shorter than that for one level more than the bound cannot pass it.
	 */
	if (len >= 2 * ((size_t)PRIVSEP_DEPTH_MAX + 1) &&
	    depth_of(v, 1, PRIVSEP_DEPTH_MAX) > PRIVSEP_DEPTH_MAX) {
		json_decref(v);
		protocol_error(err, "invalid_json", "frame: nesting deeper than %u", PRIVSEP_DEPTH_MAX);
		return NULL;
	}
	return v;
}

int
privsep_decode_members(const void *body, size_t len, json_t **envelope,
    struct envelope_members *m, struct privsep_error *err)
{
	const unsigned char *nul;
	json_t *v;

	*envelope = NULL;
	if (len < PRIVSEP_FRAME_MIN)
		return protocol_error(err, "frame_too_short", "frame: length %zu below %u",
		    len, PRIVSEP_FRAME_MIN);
	/*
	 * A raw NUL byte is JSON nowhere (not whitespace, not allowed in a
	 * string); jansson's lexer drops one that follows a number or a literal.
	 */
	if ((nul = memchr(body, '\0', len)) != NULL)
		return protocol_error(err, "invalid_json", "frame: invalid JSON at byte %zu: NUL byte",
		    (size_t)(nul - (const unsigned char *)body));
	/* fast_load() builds only objects within the depth bound; all else goes to jansson */
	if ((v = fast_load(body, len)) == NULL && (v = jansson_load(body, len, err)) == NULL)
		return -1;
	privsep_envelope_members(v, m);
	normalize_integer(v, "id", &m->id);
	normalize_integer(v, "re", &m->re);
	normalize_integer(v, "fds", &m->fds);
	*envelope = v;
	return 0;
}

int
privsep_decode(const void *body, size_t len, json_t **envelope, struct privsep_error *err)
{
	struct envelope_members m;

	return privsep_decode_members(body, len, envelope, &m, err);
}

int
privsep_type_valid(const char *s, size_t len)
{
	size_t i = 0, segments = 0;

	for (;;) {
		if (i >= len || s[i] < 'a' || s[i] > 'z')
			return 0;
		for (i++; i < len; i++) {
			if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
			    s[i] == '_'))
				break;
		}
		segments++;
		if (i == len)
			return segments >= 2;
		if (s[i] != '.')
			return 0;
		i++;
	}
}

static int
is_id(const json_t *v)
{
	json_int_t n;

	if (!json_is_integer(v))
		return 0;
	n = json_integer_value(v);
	return n >= 1 && n <= PRIVSEP_ID_MAX;
}

static int
is_string_valid_type(const json_t *v)
{
	return json_is_string(v) && privsep_type_valid(json_string_value(v), json_string_length(v));
}

/* A per-message error: the message is refused, the stream stays in step. */
static int
refuse(const json_t *env, struct privsep_error *err, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
refuse(const json_t *env, struct privsep_error *err, const char *reason, const char *fmt, ...)
{
	va_list ap;
	json_t *id;

	if (err == NULL)
		return -1;
	memset(err, 0, sizeof(*err));
	snprintf(err->code, sizeof(err->code), "%s", PRIVSEP_E_INVALID);
	snprintf(err->reason, sizeof(err->reason), "%s", reason);
	/* a refused request is still answered, when its id can be trusted */
	id = json_object_get(env, "id");
	if (json_object_get(env, "re") == NULL && is_id(id))
		err->id = json_integer_value(id);
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

int
privsep_envelope_preflight(const struct envelope_members *m, int sender_is_helper,
    size_t *declared, struct privsep_error *err)
{
	json_t *v;

	*declared = 0;
	if (sender_is_helper && m->from != NULL)
		return protocol_error(err, "from_forbidden",
		    "envelope: member 'from' sent by a helper: identity comes from the socket");
	if ((v = m->fds) == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 1 ||
	    json_integer_value(v) > PRIVSEP_FDS_MAX)
		return protocol_error(err, "bad_fds",
		    "envelope: member 'fds' must be an integer in 1..%u", PRIVSEP_FDS_MAX);
	*declared = (size_t)json_integer_value(v);
	return 0;
}

static int
check_error_member(const json_t *env, const json_t *e, struct privsep_error *err)
{
	const char *key;
	size_t keylen;
	json_t *v;

	if (!json_is_object(e))
		return refuse(env, err, "bad_error", "envelope: member 'error' must be an object");
	json_object_keylen_foreach((json_t *)e, key, keylen, v) {
		if (!key_is(key, keylen, "code") && !key_is(key, keylen, "message") &&
		    !key_is(key, keylen, "data"))
			return refuse(env, err, "bad_error",
			    "envelope: member 'error' has unknown member '%.64s'", key);
	}
	if (!is_string_valid_type(json_object_get(e, "code")))
		return refuse(env, err, "bad_error",
		    "envelope: member 'error.code' must be a dotted lower-case name");
	if (!json_is_string(json_object_get(e, "message")))
		return refuse(env, err, "bad_error",
		    "envelope: member 'error.message' must be a string");
	return 0;
}

int
privsep_envelope_validate(const json_t *env, const struct envelope_members *m,
    struct privsep_error *err)
{
	json_t *v;

	if (m->unknown != NULL)
		return refuse(env, err, "unknown_member",
		    "envelope: unknown top-level member '%.64s'", m->unknown);
	if ((v = m->type) != NULL && !is_string_valid_type(v))
		return refuse(env, err, "bad_type", "envelope: member 'type' must match "
		    "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$");
	if ((v = m->id) != NULL && !is_id(v))
		return refuse(env, err, "bad_id",
		    "envelope: member 'id' must be an integer in 1..2^53-1");
	if ((v = m->re) != NULL && !is_id(v))
		return refuse(env, err, "bad_re",
		    "envelope: member 're' must be an integer in 1..2^53-1");
	if ((v = m->body) != NULL && !json_is_object(v))
		return refuse(env, err, "bad_body", "envelope: member 'body' must be an object");
	if ((v = m->error) != NULL && check_error_member(env, v, err) == -1)
		return -1;
	if ((v = m->more) != NULL && !json_is_true(v))
		return refuse(env, err, "bad_more", "envelope: member 'more' must be true when present");
	if ((v = m->from) != NULL && (!json_is_string(v) || json_string_length(v) == 0))
		return refuse(env, err, "bad_from",
		    "envelope: member 'from' must be a non-empty string");
	if (m->re != NULL) {
		if (m->type != NULL)
			return refuse(env, err, "bad_kind", "envelope: a reply ('re') has no 'type'");
		if (m->id != NULL)
			return refuse(env, err, "bad_kind", "envelope: a reply ('re') has no 'id'");
		if (m->error != NULL && m->body != NULL)
			return refuse(env, err, "bad_kind",
			    "envelope: a reply has 'body' or 'error', not both");
		if (m->error != NULL && m->more != NULL)
			return refuse(env, err, "bad_more",
			    "envelope: a failed reply is final: 'more' is not allowed");
		return 0;
	}
	if (m->type == NULL)
		return refuse(env, err, "bad_kind",
		    "envelope: neither 'type' (request, event) nor 're' (reply) is present");
	if (m->error != NULL)
		return refuse(env, err, "bad_kind", "envelope: 'error' is only allowed on a reply");
	if (m->more != NULL)
		return refuse(env, err, "bad_more", "envelope: 'more' is only allowed on a reply");
	return 0;
}

int
privsep_envelope_check(const json_t *env, int from_broker, struct privsep_error *err)
{
	struct envelope_members m;
	size_t declared;

	if (!json_is_object(env))
		return protocol_error(err, "not_object", "envelope: not an object");
	privsep_envelope_members(env, &m);
	if (privsep_envelope_preflight(&m, !from_broker, &declared, err) == -1)
		return -1;
	return privsep_envelope_validate(env, &m, err);
}

struct privsep_msg *
privsep_msg_new(json_t *env, const struct envelope_members *mb, struct privsep_error *err)
{
	struct privsep_msg *m;

	/* Every member is set here; the fds are filled in by the caller up to nfds. */
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		json_decref(env);
		privsep_seterr(err, PRIVSEP_E_INTERNAL, "system", "message: out of memory");
		return NULL;
	}
	m->json = env;
	m->kind = mb->re != NULL ? PRIVSEP_REPLY : mb->id != NULL ? PRIVSEP_REQUEST : PRIVSEP_EVENT;
	m->re = json_integer_value(mb->re);
	return m;
}

/* Copies a string of the frame after p, NUL-terminated; returns the byte after it. */
static char *
put_string(char *p, const char *s, size_t len, const char **copy)
{
	memcpy(p, s, len);
	p[len] = '\0';
	*copy = p;
	return p + len + 1;
}

struct privsep_msg *
privsep_msg_scanned(const void *frame, size_t len, const struct envelope_scan *e)
{
	struct privsep_msg *m;
	char *p;

	/* One allocation: the message, the frame's bytes, and type and from as C strings. */
	if ((m = malloc(sizeof(*m) + len + e->typelen + 1 + e->fromlen + 1)) == NULL)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->frame = (unsigned char *)(m + 1);
	memcpy(m->frame, frame, len);
	m->framelen = len;
	p = (char *)m->frame + len;
	if (e->type != NULL)
		p = put_string(p, e->type, e->typelen, &m->type);
	if (e->from != NULL)
		(void)put_string(p, e->from, e->fromlen, &m->from);
	m->kind = e->kind;
	m->id = e->id;
	m->re = e->re;
	m->more = e->more;
	return m;
}

/*
 * The envelope's tree. A scanned message builds it from its frame the first
 * time it is wanted: logically const (the same message), hence the cast. The
 * scanner accepted only what fast_load() reads, so only memory can fail here.
 */
static json_t *
msg_tree(const struct privsep_msg *cm)
{
	struct privsep_msg *m = (struct privsep_msg *)cm;

	if (m->json == NULL && m->frame != NULL)
		m->json = fast_load(m->frame, m->framelen);
	return m->json;
}

enum privsep_kind
privsep_msg_kind(const struct privsep_msg *m)
{
	return m->kind;
}

/*
 * Once a message has its tree, the tree answers (the application may have
 * changed it through privsep_msg_json()); before, the scanner's copies do.
 */
const char *
privsep_msg_type(const struct privsep_msg *m)
{
	return m->json == NULL ? m->type : json_string_value(json_object_get(m->json, "type"));
}

int64_t
privsep_msg_id(const struct privsep_msg *m)
{
	return m->json == NULL ? m->id : json_integer_value(json_object_get(m->json, "id"));
}

int64_t
privsep_msg_re(const struct privsep_msg *m)
{
	return m->json == NULL ? m->re : json_integer_value(json_object_get(m->json, "re"));
}

const char *
privsep_msg_from(const struct privsep_msg *m)
{
	return m->json == NULL ? m->from : json_string_value(json_object_get(m->json, "from"));
}

json_t *
privsep_msg_body(const struct privsep_msg *m)
{
	json_t *env, *body;

	if ((env = msg_tree(m)) == NULL)
		return NULL;
	if ((body = json_object_get(env, "body")) != NULL)
		return body;
	/* The default {} is stored so that the borrowed pointer stays valid. */
	if ((body = json_object()) == NULL || json_object_set_new(env, "body", body) == -1)
		return NULL;
	return body;
}

int
privsep_msg_more(const struct privsep_msg *m)
{
	return m->json == NULL ? m->more : json_is_true(json_object_get(m->json, "more"));
}

/*
 * A scanned message has no error member (the scanner leaves those to the
 * tree), and json_object_get() answers NULL for a NULL object: no tree needed.
 */
const char *
privsep_msg_error_code(const struct privsep_msg *m)
{
	return json_string_value(json_object_get(json_object_get(m->json, "error"), "code"));
}

const char *
privsep_msg_error_message(const struct privsep_msg *m)
{
	return json_string_value(json_object_get(json_object_get(m->json, "error"), "message"));
}

json_t *
privsep_msg_error_data(const struct privsep_msg *m)
{
	return json_object_get(json_object_get(m->json, "error"), "data");
}

json_t *
privsep_msg_json(const struct privsep_msg *m)
{
	return msg_tree(m);
}

size_t
privsep_msg_nfds(const struct privsep_msg *m)
{
	return m->nfds;
}

int
privsep_msg_take_fd(struct privsep_msg *m, size_t i)
{
	int fd;

	if (i >= m->nfds)
		return -1;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

void
privsep_msg_free(struct privsep_msg *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->nfds; i++)
		if (m->fds[i] != -1)
			close(m->fds[i]);
	json_decref(m->json);
	free(m);
}
