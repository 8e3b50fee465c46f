/* rawconn.c -- see rawconn.h. */
#include "rawconn.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int rc_connect(int port, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (src) {
        struct sockaddr_in a = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a)) {
            close(fd);
            return -1;
        }
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    return fd;
}

int rc_send(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int rc_sends(int fd, const char *s)
{
    return rc_send(fd, s, strlen(s));
}

int rc_open(int fd)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0)
        return 1;
    if (p.revents & (POLLERR | POLLHUP))
        return 0;
    char c;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0)
        return 0;
    if (k < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    return 1; /* a reply waits: still open */
}

int rc_wait_closed(int fd, int ms)
{
    char buf[4096];
    for (int waited = 0; waited <= ms; waited += 50) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
            ssize_t k = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                return 1;
        }
    }
    return 0;
}

double rc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int rc_fd_count(int pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/fd", pid);
    DIR *d = opendir(p);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The value in kB of one "Key:" line of /proc/PID/status, or -1. */
static long status_kb(int pid, const char *key)
{
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) {
            kb = atol(line + n);
            break;
        }
    fclose(f);
    return kb;
}

long rc_rss_kb(int pid)
{
    return status_kb(pid, "VmRSS:");
}

long rc_hwm_kb(int pid)
{
    return status_kb(pid, "VmHWM:");
}

int rc_reset_hwm(int pid)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/clear_refs", pid);
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int rc_count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    size_t pl = strlen(prefix);
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, prefix, pl) == 0)
            n++;
    closedir(d);
    return n;
}

long rc_recv_until(int fd, char *buf, size_t n, const char *stop, int ms)
{
    size_t got = 0;
    buf[0] = '\0';
    for (int waited = 0; waited <= ms && got < n - 1; waited += 50) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = recv(fd, buf + got, n - 1 - got, MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
        buf[got] = '\0';
        if (!stop || strstr(buf, stop))
            break;
    }
    return got ? (long)got : -1;
}
