/*
 * The compact JSON writer for outgoing frames (incoming ones are read in
 * envelope.c).
 *
 * jansson's json_dumpb() spends most of a small frame's cost on its loop
 * detection (a hash table of every container, keyed by its printed address);
 * frames are written here instead, straight into the connection's buffer, with
 * a depth bound in place of the loop check. The bytes are exactly those of
 * json_dumpb(JSON_COMPACT): members in insertion order, strings in UTF-8 with
 * '"', '\\' and control characters escaped, reals as "%.17g" with ".0" added
 * when the text would read back as an integer.
 */
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privsep_int.h"

/* The C locale, made once: the application may have set another decimal point. */
static locale_t
c_locale(void)
{
	static locale_t made;
	locale_t l = __atomic_load_n(&made, __ATOMIC_ACQUIRE), mine;

	if (l != (locale_t)0 || (mine = newlocale(LC_ALL_MASK, "C", (locale_t)0)) == (locale_t)0)
		return l;
	if (__atomic_compare_exchange_n(&made, &l, mine, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return mine;
	freelocale(mine);	/* another thread was first: l holds its locale */
	return l;
}

/* Makes room for n more bytes; past the limit only the length is counted. */
static unsigned char *
room(struct privsep_buf *b, size_t n)
{
	unsigned char *p;
	size_t want = b->len + n, cap;

	if (b->status != 0)
		return NULL;	/* over the limit: only the length is counted */
	if (want > b->limit) {
		b->status = PRIVSEP_BUF_OVER;
		return NULL;
	}
	if (want <= b->cap)
		return b->p + b->len;
	cap = b->cap < 256 ? 256 : b->cap;
	while (cap < want)
		cap *= 2;
	if (cap > b->limit)
		cap = b->limit;
	if ((p = realloc(b->p, cap)) == NULL) {
		b->status = PRIVSEP_BUF_NOMEM;
		return NULL;
	}
	b->p = p;
	b->cap = cap;
	return b->p + b->len;
}

/* privsep_buf_put() without the room: growth, the limit and the failures. */
void
privsep_buf_put_slow(struct privsep_buf *b, const void *data, size_t n)
{
	unsigned char *p;

	if ((p = room(b, n)) != NULL)
		memcpy(p, data, n);
	b->len += n;
}

static inline void
put_byte(struct privsep_buf *b, unsigned char c)
{
	privsep_buf_put(b, &c, 1);
}

void
privsep_buf_int(struct privsep_buf *b, int64_t v)
{
	char digits[24], *d = digits + sizeof(digits);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		*--d = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--d = '-';
	privsep_buf_put(b, d, (size_t)(digits + sizeof(digits) - d));
}

/* As jansson prints a real: it must read back as a real, exponents without '+' or leading 0s. */
static void
put_real(struct privsep_buf *b, double v)
{
	char text[40], *e, *digits, *end;
	locale_t c = c_locale(), saved = (locale_t)0;
	int n;

	if (c != (locale_t)0)
		saved = uselocale(c);
	n = snprintf(text, sizeof(text) - 3, "%.17g", v);
	if (c != (locale_t)0)
		uselocale(saved);
	if (n < 0 || (size_t)n >= sizeof(text) - 3) {
		b->status = PRIVSEP_BUF_BAD;
		return;
	}
	if (strchr(text, '.') == NULL && strchr(text, 'e') == NULL) {
		memcpy(text + n, ".0", 3);
		n += 2;
	}
	if ((e = strchr(text, 'e')) != NULL) {
		digits = e + 1;
		if (*digits == '-')
			digits++;
		for (end = e + 1 + (e[1] == '+' || e[1] == '-'); *end == '0' && end[1] != '\0'; end++)
			;
		if (end != digits) {
			memmove(digits, end, (size_t)(text + n - end) + 1);
			n -= (int)(end - digits);
		}
	}
	privsep_buf_put(b, text, (size_t)n);
}

/*
 * The bytes a string may hold as they are: PLAIN_READ for the frame reader
 * (printable ASCII, no escape needed), PLAIN_WRITE for the writer (which, as
 * jansson, also copies DEL). One load a byte instead of a chain of compares.
 */
const unsigned char privsep_plain[256] = {
	[0x20 ... '"' - 1] = PRIVSEP_PLAIN_READ | PRIVSEP_PLAIN_WRITE,
	['"' + 1 ... '\\' - 1] = PRIVSEP_PLAIN_READ | PRIVSEP_PLAIN_WRITE,
	['\\' + 1 ... 0x7e] = PRIVSEP_PLAIN_READ | PRIVSEP_PLAIN_WRITE,
	[0x7f] = PRIVSEP_PLAIN_WRITE,
};

/* The length of the valid UTF-8 sequence at s (at most left bytes), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t left)
{
	uint32_t cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	n = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (n > left)
		return 0;
	cp = s[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (cp >= 0xd800 && cp <= 0xdfff) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void
privsep_buf_string(struct privsep_buf *b, const char *str, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run, k;
	unsigned char esc[6];

	put_byte(b, '"');
	while (i < len) {
		/* the common case: a run of printable ASCII */
		for (run = i; run < len && (privsep_plain[s[run]] & PRIVSEP_PLAIN_WRITE); run++)
			;
		privsep_buf_put(b, s + i, run - i);
		if ((i = run) == len)
			break;
		if (s[i] >= 0x80) {
			if ((k = utf8_len(s + i, len - i)) == 0) {
				b->status = PRIVSEP_BUF_BAD;
				return;
			}
			privsep_buf_put(b, s + i, k);
			i += k;
			continue;
		}
		esc[0] = '\\';
		switch (s[i]) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = (unsigned char)hex[s[i] >> 4];
			esc[5] = (unsigned char)hex[s[i] & 15];
			privsep_buf_put(b, esc, 6);
			i++;
			continue;
		}
		privsep_buf_put(b, esc, 2);
		i++;
	}
	put_byte(b, '"');
}

void
privsep_buf_json(struct privsep_buf *b, const json_t *v, size_t depth)
{
	const char *key;
	size_t keylen, i;
	json_t *child;
	void *iter;
	int first = 1;

	if (depth > PRIVSEP_WRITE_DEPTH_MAX) {
		b->status = PRIVSEP_BUF_BAD;	/* too deep to be sent, or a loop */
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		put_byte(b, '{');
		for (iter = json_object_iter((json_t *)v); iter != NULL && !PRIVSEP_BUF_FAILED(b);
		    iter = json_object_iter_next((json_t *)v, iter)) {
			key = json_object_iter_key(iter);
			keylen = json_object_iter_key_len(iter);
			child = json_object_iter_value(iter);
			if (!first)
				put_byte(b, ',');
			first = 0;
			privsep_buf_string(b, key, keylen);
			put_byte(b, ':');
			privsep_buf_json(b, child, depth + 1);
		}
		put_byte(b, '}');
		break;
	case JSON_ARRAY:
		put_byte(b, '[');
		for (i = 0; i < json_array_size(v) && !PRIVSEP_BUF_FAILED(b); i++) {
			if (i > 0)
				put_byte(b, ',');
			privsep_buf_json(b, json_array_get(v, i), depth + 1);
		}
		put_byte(b, ']');
		break;
	case JSON_STRING:
		privsep_buf_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		privsep_buf_int(b, json_integer_value(v));
		break;
	case JSON_REAL:
		put_real(b, json_real_value(v));
		break;
	case JSON_TRUE:
		privsep_buf_put(b, "true", 4);
		break;
	case JSON_FALSE:
		privsep_buf_put(b, "false", 5);
		break;
	case JSON_NULL:
		privsep_buf_put(b, "null", 4);
		break;
	}
}

/*
 * A body from a json_pack(3) format, written straight into the frame: a
 * request built this way costs no json_t tree, which is most of what a small
 * request costs the client (docs/performance.md, twelfth round). The bytes are
 * those json_dumpb(JSON_COMPACT) writes for json_pack() of the same format and
 * arguments, with two differences: a key given twice in one object is refused
 * (json_pack keeps the last; a strict reader refuses the frame), and 'O' is the
 * only way to embed a json_t, borrowed as every json_t argument of the library.
 */
struct pack_key {
	const char	*s;
	size_t		 len;
};

struct packer {
	struct privsep_buf *b;
	const char	*fmt;		/* the next format character */
	const char	*item;		/* where the key or value being written starts */
	va_list		*ap;
	struct pack_key	*keys;		/* keys of the objects open, innermost last */
	size_t		 nkeys, capkeys;
	struct pack_key	 first_keys[16];	/* keys until there are more: no allocation */
	const char	*why;		/* set by the first refusal, */
	const char	*at;		/* with the item it found wrong */
};

static int	pack_value(struct packer *, size_t);

static int
pack_refuse(struct packer *p, const char *why)
{
	if (p->why == NULL) {
		p->why = why;
		p->at = p->item;
	}
	return -1;
}

/* Whitespace, ':' and ',' separate the format's items and mean nothing, as in jansson. */
static void
pack_skip(struct packer *p)
{
	for (;; p->fmt++) {
		switch (*p->fmt) {
		case ' ': case '\t': case '\n': case ':': case ',':
			continue;
		}
		return;
	}
}

/* What the writer refused while writing an argument (bad UTF-8, depth, memory). */
static int
pack_written(struct packer *p)
{
	if (p->b->status == PRIVSEP_BUF_NOMEM)
		return pack_refuse(p, "out of memory");
	if (p->b->status == PRIVSEP_BUF_BAD)
		return pack_refuse(p, "the argument cannot be written as JSON (invalid UTF-8, or nested too deep)");
	return 0;
}

/* The argument of s, s# (int length) or s% (size_t length). */
static int
pack_string_arg(struct packer *p, const char **s, size_t *len)
{
	int n;

	*s = va_arg(*p->ap, const char *);
	p->fmt++;
	if (*p->fmt == '#') {
		p->fmt++;
		if ((n = va_arg(*p->ap, int)) < 0)
			return pack_refuse(p, "a string length is negative");
		*len = (size_t)n;
	} else if (*p->fmt == '%') {
		p->fmt++;
		*len = va_arg(*p->ap, size_t);
	} else
		*len = *s != NULL ? strlen(*s) : 0;
	if (*s == NULL)
		return pack_refuse(p, "a string argument is NULL");
	return 0;
}

/* Remembers a key of the innermost open object; refuses one it already has. */
static int
pack_keep_key(struct packer *p, size_t first, const char *s, size_t len)
{
	struct pack_key *grown;
	size_t i, cap;

	for (i = first; i < p->nkeys; i++)
		if (p->keys[i].len == len && memcmp(p->keys[i].s, s, len) == 0)
			return pack_refuse(p, "a key appears twice in one object");
	if (p->nkeys == p->capkeys) {
		cap = 2 * p->capkeys;
		if ((grown = malloc(cap * sizeof(*grown))) == NULL) {
			p->b->status = PRIVSEP_BUF_NOMEM;
			return pack_refuse(p, "out of memory");
		}
		memcpy(grown, p->keys, p->nkeys * sizeof(*grown));
		if (p->keys != p->first_keys)
			free(p->keys);
		p->keys = grown;
		p->capkeys = cap;
	}
	p->keys[p->nkeys].s = s;
	p->keys[p->nkeys].len = len;
	p->nkeys++;
	return 0;
}

static int
pack_object(struct packer *p, size_t depth)
{
	size_t first = p->nkeys, len;
	const char *key;
	int n = 0;

	p->fmt++;
	put_byte(p->b, '{');
	for (;;) {
		pack_skip(p);
		p->item = p->fmt;
		if (*p->fmt == '}')
			break;
		if (*p->fmt == '\0')
			return pack_refuse(p, "the format ends inside an object");
		if (*p->fmt != 's')
			return pack_refuse(p, "an object key must be s, s# or s%");
		if (pack_string_arg(p, &key, &len) == -1 || pack_keep_key(p, first, key, len) == -1)
			return -1;
		if (n++ > 0)
			put_byte(p->b, ',');
		privsep_buf_string(p->b, key, len);
		put_byte(p->b, ':');
		if (pack_written(p) == -1)
			return -1;
		pack_skip(p);
		if (*p->fmt == '}' || *p->fmt == '\0') {
			p->item = p->fmt;
			return pack_refuse(p, "a key has no value");
		}
		if (pack_value(p, depth + 1) == -1)
			return -1;
	}
	p->fmt++;
	p->nkeys = first;
	put_byte(p->b, '}');
	return 0;
}

static int
pack_array(struct packer *p, size_t depth)
{
	int n = 0;

	p->fmt++;
	put_byte(p->b, '[');
	for (;;) {
		pack_skip(p);
		if (*p->fmt == ']')
			break;
		if (*p->fmt == '\0') {
			p->item = p->fmt;
			return pack_refuse(p, "the format ends inside an array");
		}
		if (n++ > 0)
			put_byte(p->b, ',');
		if (pack_value(p, depth + 1) == -1)
			return -1;
	}
	p->fmt++;
	put_byte(p->b, ']');
	return 0;
}

static int
pack_value(struct packer *p, size_t depth)
{
	const char *s;
	json_t *v;
	double d;
	size_t len;

	p->item = p->fmt;
	if (depth > PRIVSEP_WRITE_DEPTH_MAX)
		return pack_refuse(p, "nested too deep");
	switch (*p->fmt) {
	case '{':
		return pack_object(p, depth);
	case '[':
		return pack_array(p, depth);
	case 's':
		if (pack_string_arg(p, &s, &len) == -1)
			return -1;
		privsep_buf_string(p->b, s, len);
		return pack_written(p);
	case 'i':
		privsep_buf_int(p->b, va_arg(*p->ap, int));
		break;
	case 'I':
		privsep_buf_int(p->b, (int64_t)va_arg(*p->ap, json_int_t));
		break;
	case 'b':
		if (va_arg(*p->ap, int))
			privsep_buf_put(p->b, "true", 4);
		else
			privsep_buf_put(p->b, "false", 5);
		break;
	case 'n':
		privsep_buf_put(p->b, "null", 4);
		break;
	case 'f':
		if (!isfinite(d = va_arg(*p->ap, double)))
			return pack_refuse(p, "a real is not finite");
		put_real(p->b, d);
		break;
	case 'O':
		if ((v = va_arg(*p->ap, json_t *)) == NULL)
			return pack_refuse(p, "a json_t argument is NULL");
		privsep_buf_json(p->b, v, depth);
		break;
	case '\0':
		return pack_refuse(p, "the format ends where a value was expected");
	default:
		return pack_refuse(p, "not a format character this library packs ({ } [ ] s s# s% i I b n f O)");
	}
	p->fmt++;
	return pack_written(p);
}

int
privsep_buf_vpack(struct privsep_buf *b, size_t depth, const char *fmt, va_list *ap,
    const char **why, size_t *where)
{
	struct packer p;
	int r;

	memset(&p, 0, sizeof(p));
	p.b = b;
	p.fmt = fmt;
	p.ap = ap;
	p.keys = p.first_keys;
	p.capkeys = sizeof(p.first_keys) / sizeof(p.first_keys[0]);
	pack_skip(&p);
	p.item = p.fmt;
	if (*p.fmt != '{')
		r = pack_refuse(&p, "a body is an object: the format must start with {");
	else if ((r = pack_object(&p, depth)) == 0) {
		pack_skip(&p);
		p.item = p.fmt;
		if (*p.fmt != '\0')
			r = pack_refuse(&p, "the format goes on after the body's object");
	}
	if (p.keys != p.first_keys)
		free(p.keys);
	*why = p.why;
	*where = r == 0 ? 0 : (size_t)(p.at - fmt);
	return r;
}
