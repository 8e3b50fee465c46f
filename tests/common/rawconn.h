/* rawconn.h -- raw loopback sockets and /proc probes for the tests that misbehave on
 * purpose (slow clients, disconnects, soak): what libcurl will not do for us.
 *
 * Implemented in rawconn.c (library solatest; tests/soak/soak.sh compiles it with
 * soak.c). Linux only (/proc). */
#ifndef SOLA_RAWCONN_H
#define SOLA_RAWCONN_H

#include <stddef.h>

/* A TCP connection to 127.0.0.1:port from source address src (NULL: any, e.g.
 * "127.0.0.2" to look like another client host: all of 127/8 is loopback on Linux).
 * Returns the fd or -1. */
int rc_connect(int port, const char *src);

/* Sends all of buf; 0, or -1 once the peer is gone. */
int rc_send(int fd, const void *buf, size_t n);

int rc_sends(int fd, const char *s);

/* 1 while the server keeps the connection open (nothing to read, no EOF, no reset),
 * 0 once it has closed it. Bytes the server sent are left unread (MSG_PEEK). */
int rc_open(int fd);

/* Waits up to ms for the server to close fd; 1 if it did. */
int rc_wait_closed(int fd, int ms);

double rc_now_ms(void);

/* Open descriptors of process pid (entries of /proc/PID/fd), -1 if unreadable. */
int rc_fd_count(int pid);

/* Resident set size of pid in KiB (VmRSS of /proc/PID/status), -1 if unreadable. */
long rc_rss_kb(int pid);

/* Peak resident set size of pid in KiB (VmHWM: the high-water mark since the process
 * started, or since rc_reset_hwm), -1 if unreadable. */
long rc_hwm_kb(int pid);

/* Resets pid's VmHWM to its current RSS (writes 5 to /proc/PID/clear_refs; our own
 * child, so permitted). 0, or -1 when the kernel refuses. */
int rc_reset_hwm(int pid);

/* Files in dir whose name starts with prefix (-1 if dir is unreadable). */
int rc_count_prefix(const char *dir, const char *prefix);

/* Reads what arrives within ms into buf (NUL-terminated, at most n-1 bytes), stopping
 * once it holds stop (NULL: the first read). Bytes read, -1 on EOF/error with none. */
long rc_recv_until(int fd, char *buf, size_t n, const char *stop, int ms);

#endif
