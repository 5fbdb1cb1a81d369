/*
 * Envelope decoding and validation, and the message accessors.
 *
 * jansson does the I-JSON work (UTF-8, surrogates, duplicates with
 * JSON_REJECT_DUPLICATES, no NaN, nothing after the value); its own depth bound
 * is a compile-time 2048, so the protocol's 64 is checked on the tree.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privsep_int.h"

int
privsep_seterr(struct privsep_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	snprintf(err->code, sizeof(err->code), "%s", code);
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

int
privsep_decode(const void *body, size_t len, json_t **envelope, struct privsep_error *err)
{
	json_error_t jerr;
	json_t *v;

	*envelope = NULL;
	if (len < PRIVSEP_FRAME_MIN)
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "frame: length %zu below %u",
		    len, PRIVSEP_FRAME_MIN);
	/* JSON_ALLOW_NUL: "\u0000" is valid I-JSON; lengths are used, never strlen. */
	v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (v == NULL)
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "frame: invalid JSON at byte %d: %s",
		    jerr.position, jerr.text);
	if (!json_is_object(v)) {
		json_decref(v);
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "frame: not a JSON object");
	}
	if (depth_of(v, 1, PRIVSEP_DEPTH_MAX) > PRIVSEP_DEPTH_MAX) {
		json_decref(v);
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "frame: nesting deeper than %u",
		    PRIVSEP_DEPTH_MAX);
	}
	*envelope = v;
	return 0;
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
check_error_member(const json_t *e, struct privsep_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(e))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "envelope: error: not an object");
	json_object_foreach((json_t *)e, key, v) {
		if (strcmp(key, "code") != 0 && strcmp(key, "message") != 0 &&
		    strcmp(key, "data") != 0)
			return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
			    "envelope: error: unknown member \"%.64s\"", key);
	}
	if (!json_is_string(json_object_get(e, "code")))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
		    "envelope: error.code: missing or not a string");
	if (!json_is_string(json_object_get(e, "message")))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
		    "envelope: error.message: missing or not a string");
	return 0;
}

static int
check_members(const json_t *env, int from_broker, struct privsep_error *err)
{
	static const char *known[] = {
		"type", "id", "re", "body", "error", "more", "fds", "from"
	};
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)env, key, v) {
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strcmp(key, known[i]) == 0)
				break;
		/* strcmp stops at an embedded NUL: compare lengths too */
		if (i == sizeof(known) / sizeof(known[0]) || strlen(key) != strlen(known[i]))
			return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
			    "envelope: unknown member \"%.64s\"", key);
	}
	if ((v = json_object_get(env, "type")) != NULL &&
	    (!json_is_string(v) || !privsep_type_valid(json_string_value(v), json_string_length(v))))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
		    "envelope: type: not a string matching ^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+$");
	if ((v = json_object_get(env, "id")) != NULL && !is_id(v))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
		    "envelope: id: not an integer in 1..2^53-1");
	if ((v = json_object_get(env, "re")) != NULL && !is_id(v))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
		    "envelope: re: not an integer in 1..2^53-1");
	if ((v = json_object_get(env, "body")) != NULL && !json_is_object(v))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "envelope: body: not an object");
	if ((v = json_object_get(env, "error")) != NULL && check_error_member(v, err) == -1)
		return -1;
	if ((v = json_object_get(env, "more")) != NULL && !json_is_true(v))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "envelope: more: not true");
	if ((v = json_object_get(env, "fds")) != NULL && (!json_is_integer(v) ||
	    json_integer_value(v) < 1 || json_integer_value(v) > PRIVSEP_FDS_MAX))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
		    "envelope: fds: not an integer in 1..%u", PRIVSEP_FDS_MAX);
	if ((v = json_object_get(env, "from")) != NULL) {
		if (!from_broker)
			return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
			    "envelope: from: set by the broker only, never by a helper");
		if (!json_is_string(v))
			return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
			    "envelope: from: not a string");
	}
	return 0;
}

int
privsep_envelope_check(const json_t *env, int from_broker, struct privsep_error *err)
{
	int has_type, has_id, has_re, has_body, has_error, has_more;

	if (!json_is_object(env))
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "envelope: not an object");
	if (check_members(env, from_broker, err) == -1)
		return -1;
	has_type = json_object_get(env, "type") != NULL;
	has_id = json_object_get(env, "id") != NULL;
	has_re = json_object_get(env, "re") != NULL;
	has_body = json_object_get(env, "body") != NULL;
	has_error = json_object_get(env, "error") != NULL;
	has_more = json_object_get(env, "more") != NULL;
	if (has_re) {
		if (has_type || has_id)
			return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
			    "envelope: a reply (re) has no type or id");
		if (has_body && has_error)
			return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
			    "envelope: a reply has body or error, not both");
		if (!has_body && !has_error)
			return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
			    "envelope: a reply needs body or error");
		return 0;
	}
	if (!has_type)
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL,
		    "envelope: type: required on requests and events");
	if (has_error)
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "envelope: error: only on replies");
	if (has_more)
		return privsep_seterr(err, PRIVSEP_E_PROTOCOL, "envelope: more: only on replies");
	return 0;
}

enum privsep_kind
privsep_kind_of(const json_t *env)
{
	if (json_object_get(env, "re") != NULL)
		return PRIVSEP_REPLY;
	if (json_object_get(env, "id") != NULL)
		return PRIVSEP_REQUEST;
	return PRIVSEP_EVENT;
}

struct privsep_msg *
privsep_msg_new(json_t *env, struct privsep_error *err)
{
	struct privsep_msg *m;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		json_decref(env);
		privsep_seterr(err, PRIVSEP_E_INTERNAL, "message: out of memory");
		return NULL;
	}
	m->json = env;
	m->kind = privsep_kind_of(env);
	return m;
}

enum privsep_kind
privsep_msg_kind(const struct privsep_msg *m)
{
	return m->kind;
}

const char *
privsep_msg_type(const struct privsep_msg *m)
{
	return json_string_value(json_object_get(m->json, "type"));
}

int64_t
privsep_msg_id(const struct privsep_msg *m)
{
	return json_integer_value(json_object_get(m->json, "id"));
}

int64_t
privsep_msg_re(const struct privsep_msg *m)
{
	return json_integer_value(json_object_get(m->json, "re"));
}

const char *
privsep_msg_from(const struct privsep_msg *m)
{
	return json_string_value(json_object_get(m->json, "from"));
}

json_t *
privsep_msg_body(const struct privsep_msg *m)
{
	json_t *body;

	if ((body = json_object_get(m->json, "body")) != NULL)
		return body;
	/* The default {} is stored so that the borrowed pointer stays valid. */
	if ((body = json_object()) == NULL || json_object_set_new(m->json, "body", body) == -1)
		return NULL;
	return body;
}

int
privsep_msg_more(const struct privsep_msg *m)
{
	return json_is_true(json_object_get(m->json, "more"));
}

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
	return m->json;
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
