/* log.c -- solad's log lines on stderr: one per request, plus startup, signal and
 * registry messages. Text for people, JSON (--log-format json) for collectors. Each
 * line is built in memory and written with one write(2), so lines from the loop and
 * from workers (registry warnings) never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api_helpers.h"
#include "server.h"

static void timestamp(char *out, size_t n)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%.19s.%03dZ", base, (int)(tv.tv_usec / 1000) % 1000);
}

static void emit(api_buf *b)
{
    if (b->failed || !b->p)
        return;
    api_buf_put(b, "\n", 1);
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(2, b->p + off, b->len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void srv_log_request(const srv *s, const char *method, const char *path, const char *remote,
                     int status, size_t bytes, double ms)
{
    char ts[40];
    timestamp(ts, sizeof ts);
    api_buf b = {0};
    if (s->cfg.log_json) {
        api_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"info\",\"method\":", ts);
        api_buf_json_str(&b, method);
        api_buf_puts(&b, ",\"path\":");
        api_buf_json_str(&b, path);
        api_buf_puts(&b, ",\"remote\":");
        api_buf_json_str(&b, remote);
        api_buf_printf(&b, ",\"status\":%d,\"bytes\":%zu,\"ms\":%.3f}", status, bytes, ms);
    } else {
        /* Paths are client bytes: keep the line one line. */
        api_buf_printf(&b, "%s %s %s ", ts, remote, method);
        for (const char *p = path; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if (c < 0x20 || c == 0x7f || c == ' ')
                api_buf_printf(&b, "%%%02X", c);
            else
                api_buf_put(&b, p, 1);
        }
        if (status)
            api_buf_printf(&b, " %d %zuB %.1fms", status, bytes, ms);
        else
            api_buf_printf(&b, " - (client went away) %.1fms", ms);
    }
    emit(&b);
    api_buf_free(&b);
}

void srv_logf(const srv *s, const char *level, const char *fmt, ...)
{
    char ts[40], msg[2048];
    timestamp(ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_buf b = {0};
    if (s && s->cfg.log_json) {
        api_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level);
        api_buf_json_str(&b, msg);
        api_buf_puts(&b, "}");
    } else {
        api_buf_printf(&b, "%s solad %s: %s", ts, level, msg);
    }
    emit(&b);
    api_buf_free(&b);
}
