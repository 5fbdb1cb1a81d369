/*
 * JSON for frames: the compact writer for outgoing ones, the strict reader for
 * incoming ones (the second half of this file).
 *
 * jansson's json_dumpb() spends most of a small frame's cost on its loop
 * detection (a hash table of every container, keyed by its printed address);
 * frames are written here instead, straight into the connection's buffer, with
 * a depth bound in place of the loop check. The bytes are exactly those of
 * json_dumpb(JSON_COMPACT): members in insertion order, strings in UTF-8 with
 * '"', '\\' and control characters escaped, reals as "%.17g" with ".0" added
 * when the text would read back as an integer.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
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

void
privsep_buf_put(struct privsep_buf *b, const void *data, size_t n)
{
	unsigned char *p;

	if ((p = room(b, n)) != NULL)
		memcpy(p, data, n);
	b->len += n;
}

static void
put_byte(struct privsep_buf *b, unsigned char c)
{
	unsigned char *p;

	if ((p = room(b, 1)) != NULL)
		*p = c;
	b->len++;
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
		for (run = i; run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' &&
		    s[run] != '\\'; run++)
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
 * The reader for incoming frames: strict I-JSON into jansson values, accepting
 * exactly what json_loadb(JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL |
 * JSON_DECODE_ANY) accepts, with the same integer and real values; it reads
 * the buffer in place (jansson's lexer copies every byte through a stream, a
 * token buffer and a UTF-8 state machine).
 */

/* jansson's nesting bound; an envelope (an object) gets the protocol's instead. */
#define READ_DEPTH_ANY	2048u

struct reader {
	const unsigned char	*p;
	const unsigned char	*end;
	const unsigned char	*start;
	size_t			 depth_limit;
	int			 ints_as_reals;	/* an integer overflowed: every integer is a real */
	int			 overflow;	/* set when an integer does not fit 64 bits */
	const char		*why;		/* the first error */
	size_t			 at;
	unsigned char		*scratch;	/* unescaped strings, number text */
	size_t			 scratch_cap;
};

static json_t *
read_error(struct reader *r, const char *why)
{
	if (r->why == NULL) {
		r->why = why;
		r->at = (size_t)(r->p - r->start);
	}
	return NULL;
}

static unsigned char *
scratch(struct reader *r, size_t n)
{
	unsigned char *p;
	size_t cap;

	if (n <= r->scratch_cap)
		return r->scratch;
	for (cap = r->scratch_cap < 256 ? 256 : r->scratch_cap; cap < n; cap *= 2)
		;
	if ((p = realloc(r->scratch, cap)) == NULL)
		return NULL;
	r->scratch = p;
	r->scratch_cap = cap;
	return p;
}

static int
string_error(struct reader *r, const unsigned char *where, const char *why)
{
	r->p = where;
	read_error(r, why);
	return -1;
}

static void
skip_space(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int
hex4(const unsigned char *s, uint32_t *v)
{
	int i, d;

	*v = 0;
	for (i = 0; i < 4; i++) {
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f')
			d = (s[i] | 0x20) - 'a' + 10;
		else
			return -1;
		*v = *v << 4 | (uint32_t)d;
	}
	return 0;
}

static size_t
put_utf8(unsigned char *d, uint32_t cp)
{
	if (cp < 0x80) {
		d[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		d[0] = (unsigned char)(0xc0 | cp >> 6);
		d[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		d[0] = (unsigned char)(0xe0 | cp >> 12);
		d[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
		d[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	d[0] = (unsigned char)(0xf0 | cp >> 18);
	d[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
	d[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
	d[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Reads a string at r->p (on its '"'): *s and *len are its UTF-8 bytes, in the
 * input when it has no escapes, else in the scratch buffer. -1 on an error.
 */
static int
read_string(struct reader *r, const char **s, size_t *len)
{
	const unsigned char *q = ++r->p, *run;
	unsigned char *d;
	uint32_t cp, lo;
	size_t k, n = 0;
	int escaped = 0;

	/* First pass: validate and find the end. */
	for (;;) {
		if (q >= r->end)
			return string_error(r, q, "unterminated string");
		if (*q == '"')
			break;
		if (*q < 0x20)
			return string_error(r, q, "control character in a string");
		if (*q == '\\') {
			escaped = 1;
			if (q + 1 >= r->end)
				return string_error(r, q, "unterminated string");
			switch (q[1]) {
			case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
				q += 2;
				n++;
				continue;
			case 'u':
				break;
			default:
				return string_error(r, q, "invalid escape");
			}
			if (r->end - q < 6 || hex4(q + 2, &cp) == -1)
				return string_error(r, q, "invalid \\u escape");
			q += 6;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return string_error(r, q, "lone low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (r->end - q < 6 || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, &lo) == -1 ||
				    lo < 0xdc00 || lo > 0xdfff)
					return string_error(r, q, "lone high surrogate");
				q += 6;
				n += 4;
			} else
				n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
			continue;
		}
		if (*q < 0x80) {
			q++;
			n++;
			continue;
		}
		if ((k = utf8_len(q, (size_t)(r->end - q))) == 0)
			return string_error(r, q, "invalid UTF-8");
		q += k;
		n += k;
	}
	if (!escaped) {
		*s = (const char *)r->p;
		*len = (size_t)(q - r->p);
		r->p = q + 1;
		return 0;
	}
	/* Second pass: unescape into the scratch buffer (n bytes, counted above). */
	if ((d = scratch(r, n + 1)) == NULL)
		return string_error(r, r->p, "out of memory");
	*s = (const char *)d;
	*len = n;
	for (run = r->p; run < q;) {
		if (*run != '\\') {
			*d++ = *run++;
			continue;
		}
		switch (run[1]) {
		case 'b': *d++ = '\b'; break;
		case 'f': *d++ = '\f'; break;
		case 'n': *d++ = '\n'; break;
		case 'r': *d++ = '\r'; break;
		case 't': *d++ = '\t'; break;
		case 'u':
			hex4(run + 2, &cp);
			run += 6;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				hex4(run + 2, &lo);
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				run += 6;
			}
			d += put_utf8(d, cp);
			continue;
		default: *d++ = run[1]; break;
		}
		run += 2;
	}
	r->p = q + 1;
	return 0;
}

static double
strtod_c(const char *s, char **end)
{
	locale_t l = c_locale();

	return l != (locale_t)0 ? strtod_l(s, end, l) : strtod(s, end);
}

static json_t *
read_number(struct reader *r)
{
	const unsigned char *s = r->p, *q = r->p;
	uint64_t u = 0, limit;
	int neg = 0, integral = 1, big = 0;
	unsigned char *text;
	double d;

	if (*q == '-') {
		neg = 1;
		q++;
	}
	if (q >= r->end || *q < '0' || *q > '9')
		return r->p = q, read_error(r, "invalid number");
	limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if (*q == '0') {
		q++;
		if (q < r->end && *q >= '0' && *q <= '9')
			return r->p = q, read_error(r, "leading zero in a number");
	} else {
		for (; q < r->end && *q >= '0' && *q <= '9'; q++) {
			if (u > (limit - (uint64_t)(*q - '0')) / 10)
				big = 1;
			else
				u = u * 10 + (uint64_t)(*q - '0');
		}
	}
	if (q < r->end && *q == '.') {
		integral = 0;
		if (++q >= r->end || *q < '0' || *q > '9')
			return r->p = q, read_error(r, "invalid number");
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < r->end && (*q == 'e' || *q == 'E')) {
		integral = 0;
		if (++q < r->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= r->end || *q < '0' || *q > '9')
			return r->p = q, read_error(r, "invalid number");
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	}
	r->p = q;
	if (integral && !r->ints_as_reals) {
		if (big) {
			r->overflow = 1;
			return read_error(r, "integer does not fit 64 bits");
		}
		return json_integer(neg ? (json_int_t)(0 - u) : (json_int_t)u);
	}
	if ((text = scratch(r, (size_t)(q - s) + 1)) == NULL)
		return read_error(r, "out of memory");
	memcpy(text, s, (size_t)(q - s));
	text[q - s] = '\0';
	errno = 0;
	d = strtod_c((const char *)text, NULL);
	if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
		return read_error(r, "real number overflow");
	return json_real(d);
}

static json_t *read_value(struct reader *, size_t);

static json_t *
read_object(struct reader *r, size_t depth)
{
	json_t *obj, *v;
	const char *key;
	size_t keylen, size;
	char *kcopy;

	if ((obj = json_object()) == NULL)
		return read_error(r, "out of memory");
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return obj;
	}
	for (;;) {
		if (r->p >= r->end || *r->p != '"')
			goto bad_key;
		if (read_string(r, &key, &keylen) == -1)
			goto fail;
		if (memchr(key, '\0', keylen) != NULL) {
			read_error(r, "NUL byte in an object key");
			goto fail;
		}
		/* the key may live in the scratch buffer, which the value reuses */
		kcopy = (char *)key;
		if ((const unsigned char *)key == r->scratch) {
			if ((kcopy = malloc(keylen + 1)) == NULL) {
				read_error(r, "out of memory");
				goto fail;
			}
			memcpy(kcopy, key, keylen);
		}
		skip_space(r);
		if (r->p >= r->end || *r->p != ':') {
			read_error(r, "':' expected");
			v = NULL;
		} else {
			r->p++;
			skip_space(r);
			v = read_value(r, depth);
		}
		/* a key seen before replaces its value: the size tells, without a lookup first */
		size = json_object_size(obj);
		if (v != NULL && json_object_setn_new_nocheck(obj, kcopy, keylen, v) == -1)
			v = read_error(r, "out of memory");
		else if (v != NULL && json_object_size(obj) == size)
			v = read_error(r, "duplicate object key");
		if (kcopy != key)
			free(kcopy);
		if (v == NULL)
			goto fail;
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			skip_space(r);
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return obj;
		}
		read_error(r, "',' or '}' expected");
		goto fail;
	}
bad_key:
	read_error(r, "string or '}' expected");
fail:
	json_decref(obj);
	return NULL;
}

static json_t *
read_array(struct reader *r, size_t depth)
{
	json_t *arr, *v;

	if ((arr = json_array()) == NULL)
		return read_error(r, "out of memory");
	r->p++;
	skip_space(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return arr;
	}
	for (;;) {
		if ((v = read_value(r, depth)) == NULL || json_array_append_new(arr, v) == -1) {
			read_error(r, "out of memory");
			json_decref(arr);
			return NULL;
		}
		skip_space(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			skip_space(r);
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return arr;
		}
		json_decref(arr);
		return read_error(r, "',' or ']' expected");
	}
}

static json_t *
read_literal(struct reader *r, const char *word, json_t *v)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return read_error(r, "invalid token");
	r->p += n;
	/* jansson reads a whole word of letters: "truex" is one bad token */
	if (r->p < r->end && ((*r->p | 0x20) >= 'a' && (*r->p | 0x20) <= 'z'))
		return read_error(r, "invalid token");
	return v;
}

static json_t *
read_value(struct reader *r, size_t depth)
{
	const char *s;
	size_t len;

	if (r->p >= r->end)
		return read_error(r, "unexpected end of input");
	switch (*r->p) {
	case '{':
		if (depth + 1 > r->depth_limit)
			return read_error(r, "nesting too deep");
		return read_object(r, depth + 1);
	case '[':
		if (depth + 1 > r->depth_limit)
			return read_error(r, "nesting too deep");
		return read_array(r, depth + 1);
	case '"':
		if (read_string(r, &s, &len) == -1)
			return NULL;
		return json_stringn_nocheck(s, len);
	case 't':
		return read_literal(r, "true", json_true());
	case 'f':
		return read_literal(r, "false", json_false());
	case 'n':
		return read_literal(r, "null", json_null());
	case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7':
	case '8': case '9':
		return read_number(r);
	default:
		return read_error(r, "invalid token");
	}
}

static json_t *
read_document(struct reader *r, const void *data, size_t len)
{
	json_t *v;

	r->start = r->p = data;
	r->end = r->p + len;
	r->why = NULL;
	r->overflow = 0;
	skip_space(r);
	/* An envelope (an object) is held to the protocol's depth; anything else fails anyway. */
	r->depth_limit = r->p < r->end && *r->p == '{' ? PRIVSEP_DEPTH_MAX : READ_DEPTH_ANY;
	if ((v = read_value(r, 0)) == NULL)
		return NULL;
	skip_space(r);
	if (r->p != r->end) {
		json_decref(v);
		return read_error(r, "end of input expected");
	}
	return v;
}

json_t *
privsep_json_read(const void *data, size_t len, size_t *at, const char **why)
{
	struct reader r;
	json_t *v;

	memset(&r, 0, sizeof(r));
	v = read_document(&r, data, len);
	/* An integer beyond 64 bits: the whole frame is read again with every integer as a real. */
	if (v == NULL && r.overflow) {
		r.ints_as_reals = 1;
		v = read_document(&r, data, len);
	}
	free(r.scratch);
	if (v == NULL) {
		*at = r.at;
		*why = r.why;
	}
	return v;
}
