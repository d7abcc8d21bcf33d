/* Unit tests for gw_httpd's connection limit: a real daemon on a loopback
 * port with conn_limit 1 and conn_refuse 1, driven by raw sockets from a
 * second thread while the test runs the gw_loop. The handler answers
 * "served" or "refused" as gw_httpd_conn_refused says. Covers: the
 * connection within the limit is served, the next is refused and stays
 * refused after a slot frees, one past both waits in the listen backlog
 * until a connection closes and is then served, and a freed slot is reused. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gw/gw_httpd.h"
#include "gw/gw_loop.h"
#include "ut_leak.h"

static gw_loop *loop;
static gw_httpd *httpd;

static void
on_wake(gw_loop *l, void *arg)
{
    (void)arg;
    gw_loop_stop(l);
}

static void
setup(void)
{
    cr_assert_eq(gw_loop_new(&loop), GW_OK);
    gw_loop_set_wake(loop, on_wake, NULL);
}

static void
teardown(void)
{
    gw_httpd_free(httpd);
    httpd = NULL;
    gw_loop_free(loop);
    ut_leak_check();
}
TestSuite(gw_httpd_limit, .init = setup, .fini = teardown, .timeout = 30);

static enum MHD_Result
handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
        const char *version, const char *upload, size_t *upload_size, void **ctx)
{
    static char seen;
    const char *answer;
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    (void)upload_size;

    if (*ctx == NULL) {
        *ctx = &seen;
        return MHD_YES;
    }
    answer = gw_httpd_conn_refused(conn) ? "refused" : "served";
    return gw_httpd_respond(conn, 200, "text/plain", answer, strlen(answer), NULL);
}

static void
completed(void *cls, struct MHD_Connection *conn, void **ctx, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    *ctx = NULL;
}

/* ---- the client thread ------------------------------------------------------ */

typedef struct client {
    uint16_t port;
    char results[6][16]; /* the body of each step's answer, "" for none */
} client;

static int
dial(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void
ask(int fd)
{
    static const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
    /* A failed write shows as no answer in the step's result. */
    ssize_t n = fd >= 0 ? write(fd, req, sizeof(req) - 1) : -1;
    (void)n;
}

/* The body of the answer on <fd> within <ms>, or "" if none came. */
static void
answer(int fd, int ms, char *out, size_t cap)
{
    char buf[1024];
    size_t len = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    const char *body;

    out[0] = '\0';
    while (len < sizeof(buf) - 1 && poll(&p, 1, ms) == 1) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        body = strstr(buf, "\r\n\r\n");
        if (body != NULL && (strstr(body, "served") || strstr(body, "refused"))) {
            snprintf(out, cap, "%s", body + 4);
            return;
        }
    }
}

static void *
client_main(void *arg)
{
    client *c = arg;
    int a, b, d;

    a = dial(c->port);
    ask(a);
    answer(a, 5000, c->results[0], sizeof(c->results[0])); /* within the limit */
    b = dial(c->port);
    ask(b);
    answer(b, 5000, c->results[1], sizeof(c->results[1])); /* over it */
    d = dial(c->port); /* the kernel completes it; MHD is at 1 + 1 */
    ask(d);
    answer(d, 300, c->results[2], sizeof(c->results[2])); /* waits in the backlog */
    close(a);
    answer(d, 5000, c->results[3], sizeof(c->results[3])); /* a's slot */
    ask(b);
    answer(b, 5000, c->results[4], sizeof(c->results[4])); /* still refused */
    close(d);
    a = dial(c->port);
    ask(a);
    answer(a, 5000, c->results[5], sizeof(c->results[5])); /* d's slot */
    close(a);
    close(b);
    gw_loop_wake(loop);
    return NULL;
}

Test(gw_httpd_limit, refuses_past_the_limit_and_reuses_freed_slots)
{
    gw_httpd_opts o = {.host = "127.0.0.1",
                       .conn_limit = 1,
                       .conn_refuse = 1,
                       .conn_timeout_s = 10,
                       .handler = handler,
                       .completed = completed};
    client c = {0};
    pthread_t th;

    cr_assert_eq(gw_httpd_start(loop, &o, &httpd), GW_OK);
    c.port = gw_httpd_port(httpd);
    cr_assert_eq(pthread_create(&th, NULL, client_main, &c), 0);
    cr_assert_eq(gw_loop_run(loop), GW_OK);
    pthread_join(th, NULL);
    cr_expect_str_eq(c.results[0], "served", "the first connection is within the limit");
    cr_expect_str_eq(c.results[1], "refused", "the second is over it");
    cr_expect_str_eq(c.results[2], "", "the third waits in the backlog: MHD holds 1 + 1");
    cr_expect_str_eq(c.results[3], "served", "and takes the first one's slot when it closes");
    cr_expect_str_eq(c.results[4], "refused", "a refused connection stays refused");
    cr_expect_str_eq(c.results[5], "served", "a slot freed by a close is reused");
}
