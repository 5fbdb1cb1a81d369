/*
 * The library's compact JSON writer against jansson itself: for generated
 * values it must produce json_dumpb(JSON_COMPACT)'s bytes, and refuse what
 * jansson cannot write. The reader against json_loadb(): the same verdict and
 * the same tree for edge cases and for generated frames, whole and with a byte
 * changed. Deterministic: a fixed seed.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include "privsep_int.h"
#include "testlib.h"

#define ROUNDS	60000

static uint64_t seed = 88172645463325252ULL;

static unsigned
rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (unsigned)seed;
}

static json_t *
gen_number(void)
{
	unsigned char b[8];
	double d;
	size_t i;

	switch (rnd() % 8) {
	case 0: return json_integer(rnd() % 100);
	case 1: return json_integer(-(json_int_t)rnd());
	case 2: return json_integer((json_int_t)((uint64_t)rnd() << 32 | rnd()));
	case 3: return json_integer(rnd() % 2 ? INT64_MIN : INT64_MAX);
	case 4: return json_real((double)(int)rnd() / (1 + rnd() % 1000));
	case 5:
		for (i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)rnd();
		memcpy(&d, b, sizeof(d));
		return json_real(isfinite(d) ? d : 0.5);
	case 6: return json_real((double)(rnd() % 100000));
	default:
		d = ldexp(1.0 + (rnd() % 1000) / 1000.0, (int)(rnd() % 2200) - 1100);
		return json_real(isfinite(d) ? d : 1e308);
	}
}

static json_t *
gen_string(void)
{
	char s[16];
	size_t n = rnd() % sizeof(s), i;
	unsigned r;
	json_t *v;

	for (i = 0; i < n; i++) {
		r = rnd() % 10;
		s[i] = r < 2 ? (char)(rnd() % 0x20) : r < 4 ? "\"\\/\x7f"[rnd() % 4] :
		    r < 6 ? (char)(0x80 + rnd() % 128) : (char)('a' + rnd() % 26);
	}
	/* random bytes are often not UTF-8: jansson refuses those */
	return (v = json_stringn(s, n)) != NULL ? v : json_string("x");
}

static json_t *
gen(int depth)
{
	char key[4];
	size_t n, i, j;
	json_t *v;

	switch (rnd() % (depth > 5 ? 6 : 8)) {
	case 0: return json_null();
	case 1: return json_true();
	case 2: return json_false();
	case 3: case 4: return gen_number();
	case 5: return gen_string();
	case 6:
		v = json_array();
		for (n = rnd() % 4, i = 0; i < n; i++)
			json_array_append_new(v, gen(depth + 1));
		return v;
	default:
		v = json_object();
		for (n = rnd() % 4, i = 0; i < n; i++) {
			size_t kl = rnd() % sizeof(key);
			for (j = 0; j < kl; j++)
				key[j] = rnd() % 4 ? (char)('a' + rnd() % 3) : (char)rnd();
			json_object_setn_new(v, key, kl, gen(depth + 1));	/* refused keys: dropped */
		}
		return v;
	}
}

/* The writer's bytes are jansson's, and what jansson cannot write it refuses too. */
static int
t_writer(void)
{
	static char want[1 << 16];
	struct privsep_buf b;
	size_t n, same = 0;
	long i;
	json_t *v;

	memset(&b, 0, sizeof(b));
	for (i = 0; i < ROUNDS; i++) {
		v = gen(0);
		b.len = 0;
		b.status = 0;
		b.limit = sizeof(want);
		privsep_buf_json(&b, v, 1);
		n = json_dumpb(v, want, sizeof(want), JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(v);
		if (n == 0 || n > sizeof(want)) {
			CHECK(b.status != 0);
			continue;
		}
		CHECK(b.status == 0);
		if (b.len != n || memcmp(b.p, want, n) != 0) {
			snprintf(t_why, sizeof(t_why), "jansson %.*s\nprivsep %.*s", (int)n, want,
			    (int)b.len, (char *)b.p);
			free(b.p);
			return 1;
		}
		same++;
	}
	free(b.p);
	CHECK(same > ROUNDS / 2);
	return 0;
}

static int
t_writer_refuses(void)
{
	struct privsep_buf b;
	json_t *a, *inner, *o;
	char want[64];

	/* a loop: jansson refuses it; the writer stops at its depth bound */
	memset(&b, 0, sizeof(b));
	b.limit = 1 << 20;
	a = json_array();
	inner = json_array();
	json_array_append(a, inner);
	json_array_append(inner, a);
	CHECK(json_dumpb(a, want, sizeof(want), JSON_COMPACT) == 0);
	privsep_buf_json(&b, a, 1);
	CHECK(b.status == PRIVSEP_BUF_BAD);
	json_array_clear(inner);
	json_decref(inner);
	json_decref(a);
	/* a string that is not UTF-8, made without jansson's check */
	b.len = 0;
	b.status = 0;
	o = json_pack("{s:o}", "s", json_stringn_nocheck("\xff", 1));
	privsep_buf_json(&b, o, 1);
	CHECK(b.status == PRIVSEP_BUF_BAD);
	json_decref(o);
	/* past the limit: nothing more is stored, the length still counts */
	b.len = 0;
	b.status = 0;
	b.limit = 8;
	o = json_pack("{s:s}", "text", "0123456789");
	privsep_buf_json(&b, o, 1);
	CHECK(b.status == PRIVSEP_BUF_OVER && b.len == strlen("{\"text\":\"0123456789\"}"));
	json_decref(o);
	free(b.p);
	return 0;
}

/* Nesting depth: a scalar is 0, an empty container 1. */
static size_t
tree_depth(json_t *v)
{
	const char *key;
	size_t i, d, max = 0;
	json_t *child;

	if (json_is_object(v)) {
		json_object_foreach(v, key, child)
			if ((d = tree_depth(child)) > max)
				max = d;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child)
			if ((d = tree_depth(child)) > max)
				max = d;
	} else
		return 0;
	return max + 1;
}

/*
 * What json_loadb() makes of a frame under the library's rules: NULL when the
 * library must refuse it (NUL byte, bad JSON, not an object, too deep).
 */
static json_t *
reference_load(const char *text, size_t len)
{
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY;
	json_error_t jerr;
	json_t *v;

	if (memchr(text, '\0', len) != NULL)
		return NULL;
	v = json_loadb(text, len, flags, &jerr);
	if (v == NULL && json_error_code(&jerr) == json_error_numeric_overflow)
		v = json_loadb(text, len, flags | JSON_DECODE_INT_AS_REAL, &jerr);
	if (v != NULL && (!json_is_object(v) || tree_depth(v) > PRIVSEP_DEPTH_MAX)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

/* The library reads text as jansson does: the same verdict, the same tree in the same order. */
static int
same_reading(const char *text, size_t len)
{
	struct privsep_error err;
	json_t *ours, *ref;
	char *a, *b;
	int r, same;

	r = privsep_decode(text, len, &ours, &err);
	ref = reference_load(text, len);
	if ((r == 0) != (ref != NULL)) {
		snprintf(t_why, sizeof(t_why), "%s by the library, %s by jansson: %.*s",
		    r == 0 ? "accepted" : "refused", ref != NULL ? "accepted" : "refused",
		    (int)(len > 200 ? 200 : len), text);
		json_decref(ours);
		json_decref(ref);
		return 1;
	}
	if (r != 0)
		return 0;
	/* id, re and fds as integral reals are made integers: compare the rest */
	json_object_del(ours, "id");
	json_object_del(ours, "re");
	json_object_del(ours, "fds");
	json_object_del(ref, "id");
	json_object_del(ref, "re");
	json_object_del(ref, "fds");
	a = json_dumps(ours, JSON_COMPACT);
	b = json_dumps(ref, JSON_COMPACT);
	same = a != NULL && b != NULL && strcmp(a, b) == 0 && json_equal(ours, ref);
	if (!same)
		snprintf(t_why, sizeof(t_why), "read %.*s\nlibrary %.100s\njansson %.100s",
		    (int)(len > 200 ? 200 : len), text, a != NULL ? a : "?", b != NULL ? b : "?");
	free(a);
	free(b);
	json_decref(ours);
	json_decref(ref);
	return !same;
}

static const char *const reader_edges[] = {
	"{}", " {} ", "\t{\r\n}\n", "{\"a\":1}", "{\"a\":-1}", "{\"a\":0}", "{\"a\":-0}",
	"{\"a\":01}", "{\"a\":1.0}", "{\"a\":1e2}", "{\"a\":1E2}", "{\"a\":-}", "{\"a\":+1}",
	"{\"a\":123456789012345678}", "{\"a\":-123456789012345678}",
	"{\"a\":1234567890123456789}", "{\"a\":9223372036854775807}",
	"{\"a\":9223372036854775808}", "{\"a\":-9223372036854775809}",
	"{\"a\":99999999999999999999999}", "{\"id\":1.0,\"type\":\"a.b\"}",
	"{\"a\":true}", "{\"a\":false}", "{\"a\":null}", "{\"a\":truex}", "{\"a\":true1}",
	"{\"a\":tru}", "{\"a\":nul}", "{\"a\":True}", "{\"a\":\"x\"}", "{\"a\":\"\"}", "{\"\":1}",
	"{\"a\":\"\x7f\"}", "{\"a\":\"\x1f\"}", "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc3\"}",
	"{\"a\":\"\\n\"}", "{\"a\":\"\\u0000\"}", "{\"a\\u0000\":1}", "{\"a\":\"\\ud800\"}",
	"{\"a\":1,}", "{\"a\":1,,\"b\":2}", "{,}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\":1 \"b\":2}",
	"{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1,\"b\":1}}", "{\"a\":[1,2]}", "{\"a\":[]}", "{\"a\":[ ]}",
	"{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":[1 2]}", "{\"a\":[}", "{\"a\":{}}", "{\"a\":{]}",
	"{\"a\":1}}", "{\"a\":1} x", "{\"a\":1}{}", "{\"a\":1", "{\"a", "{", "[]", "[{}]", "1",
	"\"{}\"", "null", "", " ", "{\"a\":1}\v", "\xef\xbb\xbf{}", "{\"a\":\"x\" }",
	"{ \"a\" : [ 1 , { \"b\" : null } ] }", "{\"a\":-a}", "{\"a\":1.}", "{\"a\":.5}",
	"{\"a\":0x1}", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":'x'}", "{'a':1}",
};

static int
t_reader(void)
{
	static const char edit[] = "\"\\{}[],:0-e.1 tnx\x7f\x80\x01";
	char buf[1 << 16], *text;
	size_t len, i, k, depth;
	json_t *v, *o;

	for (i = 0; i < sizeof(reader_edges) / sizeof(reader_edges[0]); i++)
		if (same_reading(reader_edges[i], strlen(reader_edges[i])))
			return 1;
	/* nesting at the bound and one past it, in objects and in arrays */
	for (depth = 63; depth <= 66; depth++) {
		for (k = 0; k < 2; k++) {
			memcpy(buf, k ? "{\"a\":" : "{", len = k ? 5 : 1);
			for (i = 1; i < depth; i++) {
				memcpy(buf + len, k ? "[" : "\"a\":{", k ? 1 : 5);
				len += k ? 1 : 5;
			}
			for (i = 1; i < depth; i++)
				buf[len++] = k ? ']' : '}';
			buf[len++] = '}';
			if (same_reading(buf, len))
				return 1;
		}
	}
	/* generated objects, compact and indented, as they are and with one byte changed */
	for (i = 0; i < ROUNDS / 4; i++) {
		v = gen(0);
		if (json_is_object(v))
			o = v;
		else {
			o = json_object();
			json_object_set_new(o, "v", v);
		}
		text = json_dumps(o, rnd() % 2 ? JSON_COMPACT : JSON_INDENT(rnd() % 3));
		json_decref(o);
		if (text == NULL)
			continue;
		len = strlen(text);
		if (len >= sizeof(buf)) {
			free(text);
			continue;
		}
		if (same_reading(text, len)) {
			free(text);
			return 1;
		}
		memcpy(buf, text, len);
		free(text);
		for (k = 0; k < 3 && len > 0; k++) {
			buf[rnd() % len] = rnd() % 4 ? edit[rnd() % (sizeof(edit) - 1)] : (char)rnd();
			if (same_reading(buf, len))
				return 1;
		}
	}
	return 0;
}

/* The table of plain bytes says what the reader and the writer need, byte by byte. */
static int
t_plain_table(void)
{
	unsigned c;
	int read, write;

	for (c = 0; c < 256; c++) {
		read = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
		write = c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
		CHECK(!(privsep_plain[c] & PRIVSEP_PLAIN_READ) == !read);
		CHECK(!(privsep_plain[c] & PRIVSEP_PLAIN_WRITE) == !write);
	}
	return 0;
}

/*
 * Packs fmt with both libraries: 0 when privsep's bytes are json_dumpb's of
 * json_pack's value, 1 (t_why says how) when not, -1 when privsep refused.
 */
static int
pack_both(const char **why, const char *fmt, ...)
{
	static char want[4096];
	struct privsep_buf b;
	json_error_t jerr;
	va_list ap, again;
	size_t n, where;
	json_t *v;
	int r;

	memset(&b, 0, sizeof(b));
	b.limit = sizeof(want);
	va_start(ap, fmt);
	va_copy(again, ap);
	r = privsep_buf_vpack(&b, 2, fmt, &ap, why, &where);
	v = json_vpack_ex(&jerr, 0, fmt, again);
	va_end(again);
	va_end(ap);
	if (r == -1) {
		json_decref(v);
		free(b.p);
		return -1;
	}
	n = v == NULL ? 0 : json_dumpb(v, want, sizeof(want), JSON_COMPACT);
	json_decref(v);
	if (v == NULL || n != b.len || memcmp(b.p, want, n) != 0) {
		snprintf(t_why, sizeof(t_why), "%s: jansson %.*s\nprivsep %.*s", fmt, (int)n, want,
		    (int)b.len, (char *)b.p);
		free(b.p);
		return 1;
	}
	free(b.p);
	return 0;
}

/* A packed body is jansson's bytes for the same format and arguments. */
static int
t_pack(void)
{
	const char *why;
	json_t *o;

	CHECK(pack_both(&why, "{}") == 0);
	CHECK(pack_both(&why, "{s:I,s:s#}", "seq", (json_int_t)42, "payload", "xxxxyy", 4) == 0);
	CHECK(pack_both(&why, " { s : i , s : b , s : b , s : n } ", "i", -7, "t", 1, "f", 0, "z") == 0);
	CHECK(pack_both(&why, "{s:I,s:I}", "min", (json_int_t)INT64_MIN, "max", (json_int_t)INT64_MAX) == 0);
	CHECK(pack_both(&why, "{s:f,s:f,s:f,s:f}", "a", 0.1, "b", 1e300, "c", -0.0, "d", 3.0) == 0);
	CHECK(pack_both(&why, "{s:s,s%:s%}", "esc", "q\"b\\n\n\x01\x7f\xc3\xa9", "k", (size_t)1, "vw",
	    (size_t)1) == 0);
	CHECK(pack_both(&why, "{s:{s:[i,[],{}]},s:[s,{s:i}]}", "o", "a", 1, "l", "x", "y", 2) == 0);
	/* the same key in different objects is no duplicate */
	CHECK(pack_both(&why, "{s:{s:i},s:{s:i}}", "a", "k", 1, "b", "k", 2) == 0);
	/* more keys than the packer holds without allocating */
	CHECK(pack_both(&why, "{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i}",
	    "a", 1, "b", 2, "c", 3, "d", 4, "e", 5, "f", 6, "g", 7, "h", 8, "i", 9, "j", 10, "k", 11,
	    "l", 12, "m", 13, "n", 14, "o", 15, "p", 16, "q", 17, "r", 18) == 0);
	o = json_pack("{s:[i,s]}", "n", 1, "s");
	CHECK(pack_both(&why, "{s:O,s:i}", "tree", o, "after", 3) == 0);
	CHECK(o->refcount == 1);	/* borrowed */
	json_decref(o);
	/* refused, and why */
	CHECK(pack_both(&why, "{s:i,s:i}", "k", 1, "k", 2) == -1 && strstr(why, "twice") != NULL);
	CHECK(pack_both(&why, "{s:{s:i,s:i}}", "o", "k", 1, "k", 2) == -1 && strstr(why, "twice") != NULL);
	CHECK(pack_both(&why, "{s:s}", "k", (const char *)NULL) == -1 && strstr(why, "NULL") != NULL);
	CHECK(pack_both(&why, "{s:s}", "k", "\xff") == -1 && strstr(why, "UTF-8") != NULL);
	CHECK(pack_both(&why, "{s:i}", "\xc3", 1) == -1 && strstr(why, "UTF-8") != NULL);
	CHECK(pack_both(&why, "{s:f}", "k", INFINITY) == -1 && strstr(why, "finite") != NULL);
	CHECK(pack_both(&why, "{s:f}", "k", NAN) == -1 && strstr(why, "finite") != NULL);
	CHECK(pack_both(&why, "{s:s#}", "k", "x", -1) == -1 && strstr(why, "negative") != NULL);
	CHECK(pack_both(&why, "[i]", 1) == -1 && strstr(why, "start with {") != NULL);
	CHECK(pack_both(&why, "{}i", 1) == -1 && strstr(why, "goes on") != NULL);
	CHECK(pack_both(&why, "{s:i", "k", 1) == -1 && strstr(why, "ends inside an object") != NULL);
	CHECK(pack_both(&why, "{s:[i", "k", 1) == -1 && strstr(why, "ends inside an array") != NULL);
	CHECK(pack_both(&why, "{s}", "k") == -1 && strstr(why, "no value") != NULL);
	CHECK(pack_both(&why, "{i:i}", 1, 2) == -1 && strstr(why, "key must be") != NULL);
	CHECK(pack_both(&why, "{s:o}", "k", json_null()) == -1 && strstr(why, "not a format") != NULL);
	CHECK(pack_both(&why, "{s:O}", "k", (json_t *)NULL) == -1 && strstr(why, "NULL") != NULL);
	CHECK(pack_both(&why, "{s:s?}", "k", "v") == -1 && strstr(why, "key must be") != NULL);
	return 0;
}

/* privsep_buf_vpack() with its arguments given here. */
static int
pack_into(struct privsep_buf *b, const char **why, const char *fmt, ...)
{
	va_list ap;
	size_t where;
	int r;

	va_start(ap, fmt);
	r = privsep_buf_vpack(b, 2, fmt, &ap, why, &where);
	va_end(ap);
	return r;
}

/* A body nested past the writer's depth bound is refused, not written. */
static int
t_pack_depth(void)
{
	static char fmt[2 * PRIVSEP_WRITE_DEPTH_MAX + 8];
	struct privsep_buf b;
	const char *why;
	size_t d;

	memset(&b, 0, sizeof(b));
	b.limit = 1 << 20;
	/* {s[[...]]}: the body is at depth 2, its member's value at 3 */
	for (d = PRIVSEP_WRITE_DEPTH_MAX - 2; d <= PRIVSEP_WRITE_DEPTH_MAX - 1; d++) {
		memcpy(fmt, "{s", 2);
		memset(fmt + 2, '[', d);
		memset(fmt + 2 + d, ']', d);
		memcpy(fmt + 2 + 2 * d, "}", 2);
		b.len = 0;
		b.status = 0;
		if (d == PRIVSEP_WRITE_DEPTH_MAX - 2)
			CHECK(pack_into(&b, &why, fmt, "k") == 0 && b.len == 2 * d + 6);
		else
			CHECK(pack_into(&b, &why, fmt, "k") == -1 && strstr(why, "too deep") != NULL);
	}
	free(b.p);
	return 0;
}

int
main(void)
{
	static const struct t_case cases[] = {
		{ "writer: jansson's compact bytes (generated values)", t_writer },
		{ "writer: loops, bad UTF-8 refused; the limit counts on", t_writer_refuses },
		{ "reader: jansson's verdict and tree (edge cases, generated, mutated)", t_reader },
		{ "plain bytes: the table matches the reader's and the writer's rules", t_plain_table },
		{ "pack: jansson's bytes for json_pack's format; bad formats and arguments refused", t_pack },
		{ "pack: nesting past the writer's bound refused", t_pack_depth },
	};

	return t_run(cases, sizeof(cases) / sizeof(cases[0]), "c_json");
}
