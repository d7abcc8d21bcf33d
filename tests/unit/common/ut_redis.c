/* ut_redis: see ut_redis.h. */
#include "ut_redis.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

extern char **environ;

static bool
find_exe(char *out, size_t n)
{
    const char *path = getenv("PATH");
    char buf[4096];

    snprintf(buf, sizeof(buf), "%s", path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(out, n, "%s/redis-server", d);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

bool
ut_redis_available(void)
{
    char exe[512];
    return find_exe(exe, sizeof(exe));
}

/* A random port below the kernel's ephemeral range (32768 up), which no
 * outgoing connection can take, and that binds now. bind(port 0) would hand
 * out an ephemeral port, and two suites running at once can race for it. */
static uint16_t
free_port(void)
{
    static unsigned seed;

    if (seed == 0)
        seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (int tries = 0; tries < 1000; tries++) {
        uint16_t port = (uint16_t)(20000 + rand_r(&seed) % 12768);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    return 0;
}

/* Whether the server answering on <r->port> is the one we forked: a port
 * another process took between free_port and the spawn (or while a test
 * restarts on the same port) would otherwise pass for ours. */
static bool
is_ours(const ut_redis *r)
{
    struct timeval tv = {.tv_sec = 1};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
    redisReply *rep = NULL;
    char want[40];
    bool ok = false;

    if (c == NULL || c->err != 0 || redisSetTimeout(c, tv) != REDIS_OK)
        goto out;
    if (r->password[0] != '\0') {
        rep = redisCommand(c, "AUTH %s", r->password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
            goto out;
        freeReplyObject(rep);
    }
    rep = redisCommand(c, "INFO server");
    snprintf(want, sizeof(want), "process_id:%ld\r", (long)r->pid);
    ok = rep != NULL && rep->type == REDIS_REPLY_STRING && strstr(rep->str, want) != NULL;
out:
    if (rep != NULL)
        freeReplyObject(rep);
    if (c != NULL)
        redisFree(c);
    return ok;
}

/* True while the forked server runs: something else may hold the port. */
static bool
still_running(ut_redis *r)
{
    int status;

    if (waitpid(r->pid, &status, WNOHANG) == 0)
        return true;
    r->pid = 0;
    return false;
}

static bool
start_on_port(ut_redis *r, const char *exe)
{
    char port[16];
    char *argv[20];
    int argc = 0;
    posix_spawn_file_actions_t fa;

    snprintf(port, sizeof(port), "%u", r->port);
    argv[argc++] = (char *)exe;
    argv[argc++] = "--port";
    argv[argc++] = port;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--save";
    argv[argc++] = "";
    argv[argc++] = "--appendonly";
    argv[argc++] = "no";
    argv[argc++] = "--loglevel";
    argv[argc++] = "warning";
    if (r->password[0] != '\0') {
        argv[argc++] = "--requirepass";
        argv[argc++] = r->password;
    }
    argv[argc] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&r->pid, exe, &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        r->pid = 0;
        return false;
    }
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 500; i++) {
        struct timespec ts = {.tv_nsec = 10 * 1000 * 1000};
        if (!still_running(r))
            return false;
        if (is_ours(r))
            return true;
        nanosleep(&ts, NULL);
    }
    ut_redis_stop(r);
    return false;
}

bool
ut_redis_start(ut_redis *r)
{
    char exe[512];
    bool pick = r->port == 0;

    if (!find_exe(exe, sizeof(exe)))
        return false;
    /* A port picked here may be taken before redis binds it: pick again. */
    for (int tries = 0; tries < (pick ? 5 : 1); tries++) {
        if (pick)
            r->port = free_port();
        if (start_on_port(r, exe))
            return true;
    }
    return false;
}

void
ut_redis_stop(ut_redis *r)
{
    int status;

    if (r->pid <= 0)
        return;
    kill(r->pid, SIGTERM);
    waitpid(r->pid, &status, 0);
    r->pid = 0;
}

typedef struct until_ctx {
    bool (*cond)(void *arg);
    void *arg;
    uint64_t deadline;
    gw_timer *t;
    bool ok;
} until_ctx;

static void
on_tick(gw_loop *loop, void *arg)
{
    until_ctx *u = arg;

    if (u->cond != NULL && u->cond(u->arg)) {
        u->ok = true;
        gw_loop_stop(loop);
        return;
    }
    if (gw_now_ms() >= u->deadline) {
        gw_loop_stop(loop);
        return;
    }
    gw_timer_start(u->t, 5);
}

bool
ut_loop_until(gw_loop *loop, bool (*cond)(void *arg), void *arg, uint64_t timeout_ms)
{
    until_ctx u = {.cond = cond, .arg = arg, .deadline = gw_now_ms() + timeout_ms};

    u.t = gw_timer_new(loop, on_tick, &u);
    gw_timer_start(u.t, 0);
    if (gw_loop_run(loop) != GW_OK)
        u.ok = false;
    gw_timer_free(u.t);
    return cond != NULL ? (u.ok || cond(arg)) : true;
}

void
ut_loop_for(gw_loop *loop, uint64_t ms)
{
    (void)ut_loop_until(loop, NULL, NULL, ms);
}
