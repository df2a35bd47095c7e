/* server.h - a small HTTP/1.1 static-file server with a choice of disk I/O architectures. */
#ifndef MB_SERVER_H
#define MB_SERVER_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define REQ_MAX 8192          /* request head larger than this: 431 */
#define CHUNK (64 * 1024)     /* file bytes read and sent per step */
#define HDR_MAX 512

enum conn_state { C_READ_REQ, C_DISK, C_SEND, C_CLOSED };

struct conn {
	int fd;
	enum conn_state state;
	char req[REQ_MAX + 1];
	size_t req_len;
	/* the parsed request */
	int head_only, keep_alive;
	char path[4096];
	time_t ims;                  /* If-Modified-Since, 0 if none */
	/* the file */
	int file_fd;
	off_t file_size, file_off;
	time_t mtime;
	/* the output: header then the current chunk */
	char hdr[HDR_MAX];
	size_t hdr_len, hdr_off;
	char *buf;                   /* CHUNK bytes */
	size_t buf_len, buf_off;
	int close_after;             /* close once the response is sent */
	size_t req_used_save;        /* length of the request head being answered */
	int ev;                      /* events registered with epoll, -1: not registered */
	int dead;
	void *pending;               /* LAIO handle of the call in flight, if any */
	int pending_kind;
	struct stat st;              /* fstat result (its buffer must outlive a background call) */
	struct iovec iov[2];         /* LAIO-LAIO: a background sendmsg owns these */
	struct msghdr msg;
	struct conn *next_ready;
	struct conn *next_free;
};

/* A disk I/O architecture: asynchronous from the caller's view; completions call
 * conn_open_done() and conn_read_done(). */
struct disk_ops {
	const char *name;
	int (*init)(void);                 /* returns an fd for the epoll set, or -1 for none */
	void (*open)(struct conn *c);      /* open c->path and fstat it */
	void (*read)(struct conn *c);      /* pread up to CHUNK at c->file_off into c->buf */
	void (*event)(void);               /* the fd from init() is readable */
	void (*report)(void);              /* statistics at exit */
};

extern const struct disk_ops disk_nbb, disk_nblaio, disk_amted, disk_uring;
extern int root_fd;
extern volatile int stopping;

/* http.c */
enum parse_result { P_INCOMPLETE, P_OK, P_ERROR };
int http_parse(struct conn *c, int *status);   /* status set when P_ERROR */
size_t http_header(char *out, size_t cap, int status, off_t len, time_t mtime, int keep_alive);
const char *http_reason(int status);
int path_check(const char *raw, char *out, size_t cap); /* 0, or an HTTP status */

/* server.c: the epoll event loop, used by every architecture except LAIO-LAIO */
void conn_open_done(struct conn *c, int fd, int err, const struct stat *st);
void conn_read_done(struct conn *c, long n, int err);
int loop_epoll(int lfd, const struct disk_ops *ops);

/* response logic shared by both loops */
void conn_reset_request(struct conn *c);
void conn_error(struct conn *c, int status);   /* sets hdr for an error response */
int conn_file_opened(struct conn *c, int fd, int err, const struct stat *st, int *close_fd);

/* laio_loop.c */
int loop_laio(int lfd);

/* print laio_stats of the calling thread */
void print_laio_stats(const char *arch);

#endif

/* laio_map.c: which connection and step a background LAIO call belongs to */
enum { K_ACCEPT = 1, K_RECV, K_SEND, K_OPEN, K_FSTAT, K_READ, K_CLOSE };
void pending_put(void *handle, struct conn *c, int kind);
struct conn *pending_take(void *handle, int *kind);
extern unsigned long disk_calls, disk_blocked;
/* LAIO calls and those that went to the background, per K_ kind (0: the rest) */
extern unsigned long kind_calls[K_CLOSE + 1], kind_blocked[K_CLOSE + 1];
