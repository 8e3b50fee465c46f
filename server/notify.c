/* notify.c -- readiness and shutdown notification for systemd's Type=notify (see
 * server.h). The protocol is one datagram of newline-separated KEY=VALUE lines sent
 * to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or '@' for the abstract
 * namespace): sd_notify(3). With libsystemd (cmake -DSOLA_SYSTEMD=ON, the default
 * when libsystemd-dev is installed) its sd_notify sends it; without, the fallback
 * below sends the same bytes, so a unit with Type=notify works with either build. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "server.h"

#ifdef SOLA_HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>

static int send_state(const char *state)
{
    int rc = sd_notify(0, state);
    return rc < 0 ? rc : 0; /* 0 = no $NOTIFY_SOCKET: nothing to do */
}
#else
/* 0, or -errno. */
static int send_state(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
        return -EINVAL; /* vsock and other forms: libsystemd builds only */
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int err = w < 0 ? errno : 0;
    close(fd);
    return -err;
}
#endif

void srv_notify(const srv *s, const char *fmt, ...)
{
    static int warned;
    const char *env = getenv("NOTIFY_SOCKET");
    if (!env || !*env)
        return;
    char state[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(state, sizeof state, fmt, ap);
    va_end(ap);
    int rc = send_state(state);
    if (rc < 0 && !warned) {
        warned = 1;
        srv_logf(s, "warn", "NOTIFY_SOCKET=%s: cannot notify the service manager: %s", env,
                 strerror(-rc));
    }
}
