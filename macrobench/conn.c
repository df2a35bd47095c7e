/* conn.c - what a response is, independent of how the disk is reached (shared by both loops). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

void conn_reset_request(struct conn *c)
{
	size_t used = c->req_used_save; /* bytes of the request head just served */
	if (used > c->req_len)
		used = c->req_len;
	memmove(c->req, c->req + used, c->req_len - used);
	c->req_len -= used;
	c->hdr_len = c->hdr_off = 0;
	c->buf_len = c->buf_off = 0;
	c->file_fd = -1;
	c->file_size = c->file_off = 0;
	c->close_after = 0;
	c->state = C_READ_REQ;
}

void conn_error(struct conn *c, int status)
{
	/* after a malformed or oversized head the stream cannot be resynchronised: close */
	if (status == 400 || status == 431 || status == 505)
		c->keep_alive = 0;
	c->close_after = !c->keep_alive;
	c->hdr_len = http_header(c->hdr, sizeof c->hdr, status, 0, 0, c->keep_alive);
	c->hdr_off = 0;
	c->file_fd = -1;
	c->file_size = c->file_off = 0;
	c->buf_len = c->buf_off = 0;
}

/* After open+fstat. Returns 1 if a body must be read from c->file_fd, 0 if the header alone is
 * the response (the file, if any, is to be closed by the caller: *close_fd). */
int conn_file_opened(struct conn *c, int fd, int err, const struct stat *st, int *close_fd)
{
	int status = 200;
	*close_fd = -1;
	if (fd < 0) {
		status = (err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG) ? 404
			 : (err == EACCES || err == ELOOP || err == EPERM) ? 403 : 500;
	} else if (!S_ISREG(st->st_mode)) {
		status = 403;
	} else if (c->ims && st->st_mtime <= c->ims) {
		status = 304;
	}
	if (status != 200) {
		*close_fd = fd;
		if (status == 304) {
			c->close_after = !c->keep_alive;
			c->hdr_len = http_header(c->hdr, sizeof c->hdr, 304, 0, st->st_mtime, c->keep_alive);
			/* 304 carries no body; Content-Length 0 is what we send */
			c->hdr_off = 0;
			c->file_fd = -1;
			c->buf_len = c->buf_off = 0;
		} else {
			conn_error(c, status);
		}
		return 0;
	}
	c->close_after = !c->keep_alive;
	c->hdr_len = http_header(c->hdr, sizeof c->hdr, 200, st->st_size, st->st_mtime, c->keep_alive);
	c->hdr_off = 0;
	c->file_size = st->st_size;
	c->file_off = 0;
	c->buf_len = c->buf_off = 0;
	if (c->head_only || st->st_size == 0) {
		*close_fd = fd;
		c->file_fd = -1;
		return 0;
	}
	c->file_fd = fd;
	return 1;
}
