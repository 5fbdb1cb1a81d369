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
