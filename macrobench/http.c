/* http.c - request parsing, path checks and response headers (shared by every architecture). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* Decode the origin-form target `raw` into a path relative to the root. Refuse "..", NUL,
 * bad escapes and anything not starting with '/'. */
int path_check(const char *raw, char *out, size_t cap)
{
	char dec[4096];
	size_t n = 0;
	if (raw[0] != '/')
		return 400;
	for (const char *p = raw; *p && *p != '?' && *p != '#'; p++) {
		int ch = (unsigned char)*p;
		if (ch == '%') {
			int h = hexval(p[1]), l = h < 0 ? -1 : hexval(p[2]);
			if (h < 0 || l < 0)
				return 400;
			ch = h * 16 + l;
			p += 2;
			if (ch == 0)
				return 400;
		}
		if (ch == '\\')
			return 403;
		if (n + 1 >= sizeof dec)
			return 400;
		dec[n++] = (char)ch;
	}
	dec[n] = 0;
	/* rebuild segment by segment: drop empty and ".", refuse ".." */
	size_t o = 0;
	char *save = NULL;
	for (char *seg = strtok_r(dec, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
		if (strcmp(seg, ".") == 0)
			continue;
		if (strcmp(seg, "..") == 0)
			return 403;
		size_t l = strlen(seg);
		if (o + l + 2 >= cap)
			return 400;
		if (o)
			out[o++] = '/';
		memcpy(out + o, seg, l);
		o += l;
	}
	if (o == 0) {
		if (cap < 11)
			return 400;
		strcpy(out, "index.html");
		return 0;
	}
	out[o] = 0;
	return 0;
}

static int token_char(int ch)
{
	return ch > 32 && ch < 127 && !strchr("()<>@,;:\\\"/[]?={}", ch);
}

/* Parse the request head in c->req. On P_OK, c->req_len is left as is and the head's length is
 * recorded in c->req_used_save. */
int http_parse(struct conn *c, int *status)
{
	c->req[c->req_len] = 0;
	char *end = strstr(c->req, "\r\n\r\n");
	if (!end) {
		if (memchr(c->req, 0, c->req_len)) {
			*status = 400;
			return P_ERROR;
		}
		if (c->req_len >= REQ_MAX) {
			*status = 431;
			return P_ERROR;
		}
		return P_INCOMPLETE;
	}
	size_t head_len = (size_t)(end - c->req) + 4;
	c->req_used_save = head_len;
	*end = 0;
	/* request line */
	char *line = c->req, *eol = strstr(line, "\r\n");
	if (eol)
		*eol = 0;
	char *sp1 = strchr(line, ' ');
	if (!sp1 || sp1 == line) { *status = 400; return P_ERROR; }
	*sp1 = 0;
	for (char *p = line; *p; p++)
		if (!token_char((unsigned char)*p)) { *status = 400; return P_ERROR; }
	char *target = sp1 + 1, *sp2 = strchr(target, ' ');
	if (!sp2 || sp2 == target) { *status = 400; return P_ERROR; }
	*sp2 = 0;
	char *version = sp2 + 1;
	int minor;
	if (strncmp(version, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)version[7]) || version[8]) {
		*status = 400;
		return P_ERROR;
	}
	minor = version[7] - '0';
	c->keep_alive = minor >= 1;
	c->ims = 0;
	if (strcmp(line, "GET") == 0)
		c->head_only = 0;
	else if (strcmp(line, "HEAD") == 0)
		c->head_only = 1;
	else {
		*status = 405;
		return P_ERROR;
	}
	/* headers */
	char *h = eol ? eol + 2 : NULL;
	int host = 0;
	while (h && *h) {
		char *next = strstr(h, "\r\n");
		if (next) { *next = 0; next += 2; }
		char *colon = strchr(h, ':');
		if (!colon || colon == h) { *status = 400; return P_ERROR; }
		*colon = 0;
		for (char *p = h; *p; p++)
			if (!token_char((unsigned char)*p)) { *status = 400; return P_ERROR; }
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (strcasecmp(h, "Connection") == 0) {
			if (strcasestr(v, "close"))
				c->keep_alive = 0;
			else if (strcasestr(v, "keep-alive"))
				c->keep_alive = 1;
		} else if (strcasecmp(h, "Host") == 0) {
			host = 1;
		} else if (strcasecmp(h, "If-Modified-Since") == 0) {
			struct tm tm;
			memset(&tm, 0, sizeof tm);
			char *r = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
			if (r && *r == 0)
				c->ims = timegm(&tm);
		} else if (strcasecmp(h, "Content-Length") == 0 || strcasecmp(h, "Transfer-Encoding") == 0) {
			if (strcmp(v, "0") != 0) { *status = 400; return P_ERROR; } /* no bodies on GET/HEAD */
		}
		h = next;
	}
	if (minor >= 1 && !host) { *status = 400; return P_ERROR; }
	int st = path_check(target, c->path, sizeof c->path);
	if (st) { *status = st; return P_ERROR; }
	return P_OK;
}

size_t http_header(char *out, size_t cap, int status, off_t len, time_t mtime, int keep_alive)
{
	char lm[64] = "";
	if (mtime) {
		struct tm tm;
		gmtime_r(&mtime, &tm);
		strftime(lm, sizeof lm, "Last-Modified: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	}
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\nServer: laio-mb\r\n%sContent-Length: %lld\r\n%s%s\r\n",
			 status, http_reason(status), lm, (long long)len,
			 status == 405 ? "Allow: GET, HEAD\r\n" : "",
			 keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}
