/* Checks the parts of the contract that need no EAL: ABI version, status names, argument validation, the
 * poller. */
#define _GNU_SOURCE /* SCHED_IDLE, gettid */
#include "hyb_transport.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int failures;
static int checks;

static void check(int ok, const char *what) {
    checks++;
    if (!ok) {
        fprintf(stderr, "FAIL: %s\n", what);
        failures++;
    }
}

int main(void) {
    check(hyb_abi_version() == HYB_ABI_VERSION, "abi version matches the header");
    check(strcmp(hyb_status_name(HYB_EEAL), "HYB_EEAL") == 0, "status names are the enum names");
    check(strcmp(hyb_status_name(12345), "HYB_UNKNOWN") == 0, "unknown status has a name");
    hyb_port_config_t config = {1514, 1024, 8191, 0};
    hyb_port_t *port = NULL;
    check(hyb_port_open("net_memif0", &config, &port) == HYB_ESTATE, "port before EAL init is refused");
    check(hyb_port_open(NULL, &config, &port) == HYB_EINVAL, "null vdev is refused");
    check(hyb_eal_init(0, NULL) == HYB_EINVAL, "empty argv is refused");
    check(hyb_port_send(NULL, NULL, NULL, 0, 0) == HYB_EINVAL, "null port is refused");

    /* The poller over a socket pair: edge events carry the token; recv/send never block. */
    hyb_poller_t *poller = NULL;
    check(hyb_poller_create(&poller) == HYB_OK && poller != NULL, "poller created");
    int pair[2];
    check(socketpair(AF_UNIX, SOCK_STREAM, 0, pair) == 0, "socket pair");
    check(hyb_poller_add(poller, pair[0], 42) == HYB_OK, "socket added");
    check(hyb_poller_add(poller, pair[0], UINT64_MAX) == HYB_EINVAL, "the wake token is reserved");
    hyb_poll_event_t events[4];
    int32_t n = hyb_poller_wait(poller, events, 4, 0);
    check(n == 1 && events[0].token == 42 && (events[0].events & HYB_POLL_OUT), "a new socket is writable");
    check(hyb_poller_wait(poller, events, 4, 0) == 0, "edge-triggered: no second event without a change");
    uint8_t buffer[16];
    check(hyb_sock_recv(pair[0], buffer, sizeof(buffer)) == HYB_EAGAIN,
          "recv on an empty socket would block");
    check(write(pair[1], "ping", 4) == 4, "peer writes");
    n = hyb_poller_wait(poller, events, 4, 1000);
    check(n == 1 && events[0].token == 42 && (events[0].events & HYB_POLL_IN),
          "input raises an event with the token");
    check(hyb_sock_recv(pair[0], buffer, sizeof(buffer)) == 4 && memcmp(buffer, "ping", 4) == 0,
          "recv returns the bytes");
    check(hyb_sock_send(pair[0], (const uint8_t *)"pong", 4) == 4, "send takes the bytes");
    check(hyb_poller_wake(poller) == HYB_OK && hyb_poller_wait(poller, events, 4, 1000) == 0,
          "wake ends a wait with no events");
    check(read(pair[1], buffer, sizeof(buffer)) == 4, "peer reads the reply");
    close(pair[1]);
    n = hyb_poller_wait(poller, events, 4, 1000);
    check(n == 1 && (events[0].events & HYB_POLL_IN) && (events[0].events & HYB_POLL_HUP),
          "hang-up is reported as input and HUP");
    check(hyb_sock_recv(pair[0], buffer, sizeof(buffer)) == 0, "end of stream reads 0");
    check(hyb_sock_send(pair[0], (const uint8_t *)"x", 1) == HYB_ECLOSED,
          "send after the peer left is HYB_ECLOSED, no SIGPIPE");
    check(hyb_poller_remove(poller, pair[0]) == HYB_OK, "socket removed");
    close(pair[0]);
    hyb_poller_close(poller);
    check(strcmp(hyb_status_name(HYB_EAGAIN), "HYB_EAGAIN") == 0, "new statuses have names");

    /* Background priority: SCHED_IDLE and back (leaving it needs CAP_SYS_NICE; this test runs as root). */
    check(hyb_thread_id() == gettid(), "thread id is gettid");
    check(hyb_thread_background(1) == HYB_OK && sched_getscheduler(0) == SCHED_IDLE, "background is SCHED_IDLE");
    cpu_set_t before, after;
    check(sched_getaffinity(0, sizeof(before), &before) == 0, "affinity read");
    int32_t first[1] = {0};
    while (first[0] < CPU_SETSIZE - 1 && !CPU_ISSET(first[0], &before))
        first[0]++;
    check(hyb_thread_pin(0, first, 1) == HYB_OK && sched_getaffinity(0, sizeof(after), &after) == 0 &&
              CPU_COUNT(&after) == 1 && CPU_ISSET(first[0], &after),
          "pinned to the first allowed CPU");
    check(sched_setaffinity(0, sizeof(before), &before) == 0, "affinity restored");
    int32_t bad[1] = {-1};
    check(hyb_thread_pin(0, bad, 1) == HYB_EINVAL && hyb_thread_pin(0, first, 0) == HYB_EINVAL,
          "no CPU or a negative one is refused");
    /* Leaving needs CAP_SYS_NICE: root usually has it, a container's root may not. */
    if (hyb_thread_background(0) == HYB_OK)
        check(sched_getscheduler(0) == SCHED_OTHER, "back to SCHED_OTHER");
    else
        printf("skipped: leaving SCHED_IDLE needs CAP_SYS_NICE, which this process lacks (errno %d)\n", errno);

    /* Directory fsync: a directory syncs; a missing one and a file are refused with errno. */
    check(hyb_fsync_dir(".") == HYB_OK, "a directory's entries are flushed");
    check(hyb_fsync_dir("/nonexistent-hyb-dir") == HYB_ESYS && errno == ENOENT, "a missing directory is ENOENT");
    check(hyb_fsync_dir("/proc/self/status") == HYB_ESYS && errno == ENOTDIR, "a file is ENOTDIR");
    check(hyb_fsync_dir(NULL) == HYB_EINVAL, "no path is refused");

    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
