/* The DPDK shim behind include/hyb_transport.h. Frames in, frames out; no protocol logic here. */
#define _GNU_SOURCE /* SCHED_IDLE, gettid */
#include "hyb_transport.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_random.h>

#define HYB_BURST 32

struct hyb_port {
    uint16_t port_id;
    uint32_t frame_bytes;
    uint32_t drop_per_million;
    struct rte_mempool *pool;
    char name[RTE_ETH_NAME_MAX_LEN];
    hyb_port_stats_t stats;
};

static int g_eal_ready;

uint32_t hyb_abi_version(void) { return HYB_ABI_VERSION; }

const char *hyb_status_name(int32_t status) {
    switch (status) {
    case HYB_OK:
        return "HYB_OK";
    case HYB_EINVAL:
        return "HYB_EINVAL";
    case HYB_EEAL:
        return "HYB_EEAL";
    case HYB_ESTATE:
        return "HYB_ESTATE";
    case HYB_ENODEV:
        return "HYB_ENODEV";
    case HYB_ENOMEM:
        return "HYB_ENOMEM";
    case HYB_EPORT:
        return "HYB_EPORT";
    case HYB_ETOOBIG:
        return "HYB_ETOOBIG";
    case HYB_EAGAIN:
        return "HYB_EAGAIN";
    case HYB_ECLOSED:
        return "HYB_ECLOSED";
    case HYB_ESYS:
        return "HYB_ESYS";
    default:
        return "HYB_UNKNOWN";
    }
}

int32_t hyb_eal_init(int32_t argc, const char *const *argv) {
    if (argc < 1 || argv == NULL)
        return HYB_EINVAL;
    if (g_eal_ready)
        return HYB_ESTATE;
    /* rte_eal_init may permute argv, so it gets a private copy. */
    char **copy = calloc((size_t)argc + 1, sizeof(char *));
    if (copy == NULL)
        return HYB_ENOMEM;
    for (int32_t i = 0; i < argc; i++)
        copy[i] = strdup(argv[i]);
    int rc = rte_eal_init(argc, copy);
    if (rc < 0)
        return HYB_EEAL;
    g_eal_ready = 1;
    return HYB_OK;
}

int32_t hyb_port_open(const char *vdev, const hyb_port_config_t *config, hyb_port_t **out) {
    if (vdev == NULL || config == NULL || out == NULL || config->frame_bytes < 64 || config->ring_size == 0 ||
        config->pool_size == 0 || config->drop_per_million >= 1000000)
        return HYB_EINVAL;
    if (!g_eal_ready)
        return HYB_ESTATE;
    *out = NULL;
    struct hyb_port *port = calloc(1, sizeof(*port));
    if (port == NULL)
        return HYB_ENOMEM;
    const char *comma = strchr(vdev, ',');
    size_t name_len = comma ? (size_t)(comma - vdev) : strlen(vdev);
    if (name_len == 0 || name_len >= sizeof(port->name)) {
        free(port);
        return HYB_EINVAL;
    }
    memcpy(port->name, vdev, name_len);
    port->name[name_len] = '\0';
    if (rte_eal_hotplug_add("vdev", port->name, comma ? comma + 1 : "") != 0 ||
        rte_eth_dev_get_port_by_name(port->name, &port->port_id) != 0) {
        free(port);
        return HYB_ENODEV;
    }
    port->frame_bytes = config->frame_bytes;
    port->drop_per_million = config->drop_per_million;
    char pool_name[RTE_MEMPOOL_NAMESIZE];
    snprintf(pool_name, sizeof(pool_name), "hyb_pool_%u", port->port_id);
    uint32_t room = config->frame_bytes + RTE_PKTMBUF_HEADROOM;
    if (room < RTE_MBUF_DEFAULT_BUF_SIZE)
        room = RTE_MBUF_DEFAULT_BUF_SIZE;
    port->pool =
        rte_pktmbuf_pool_create(pool_name, config->pool_size, 256, 0, (uint16_t)room, (int)rte_socket_id());
    if (port->pool == NULL) {
        rte_eal_hotplug_remove("vdev", port->name);
        free(port);
        return HYB_ENOMEM;
    }
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    uint16_t ring = (uint16_t)config->ring_size;
    if (rte_eth_dev_configure(port->port_id, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(port->port_id, 0, ring, (unsigned)rte_socket_id(), NULL, port->pool) != 0 ||
        rte_eth_tx_queue_setup(port->port_id, 0, ring, (unsigned)rte_socket_id(), NULL) != 0 ||
        rte_eth_dev_start(port->port_id) != 0) {
        rte_eth_dev_close(port->port_id);
        rte_eal_hotplug_remove("vdev", port->name);
        rte_mempool_free(port->pool);
        free(port);
        return HYB_EPORT;
    }
    rte_eth_promiscuous_enable(port->port_id);
    *out = port;
    return HYB_OK;
}

int32_t hyb_port_mac(const hyb_port_t *port, uint8_t *mac) {
    if (port == NULL || mac == NULL)
        return HYB_EINVAL;
    struct rte_ether_addr addr;
    if (rte_eth_macaddr_get(port->port_id, &addr) != 0)
        return HYB_EPORT;
    memcpy(mac, addr.addr_bytes, RTE_ETHER_ADDR_LEN);
    return HYB_OK;
}

int32_t hyb_port_link_up(const hyb_port_t *port) {
    if (port == NULL)
        return HYB_EINVAL;
    struct rte_eth_link link;
    if (rte_eth_link_get_nowait(port->port_id, &link) != 0)
        return HYB_EPORT;
    return link.link_status == RTE_ETH_LINK_UP ? 1 : 0;
}

static int drop_now(const struct hyb_port *port) {
    return port->drop_per_million != 0 && rte_rand_max(1000000) < port->drop_per_million;
}

int32_t hyb_port_send(hyb_port_t *port, const uint8_t *frames, const uint32_t *lengths, uint32_t count,
                      uint32_t stride) {
    if (port == NULL || (count > 0 && (frames == NULL || lengths == NULL)))
        return HYB_EINVAL;
    uint32_t taken = 0;
    while (taken < count) {
        struct rte_mbuf *burst[HYB_BURST];
        uint32_t slot_of[HYB_BURST];
        uint16_t n = 0;
        uint32_t next = taken;
        /* Gather up to one burst of frames, skipping the ones chosen for an injected drop. */
        for (; next < count && n < HYB_BURST; next++) {
            uint32_t len = lengths[next];
            if (len > port->frame_bytes || len > stride) {
                if (n > 0)
                    break;
                return taken > 0 ? (int32_t)taken : HYB_ETOOBIG;
            }
            if (drop_now(port)) {
                port->stats.tx_injected_drops++;
                continue;
            }
            struct rte_mbuf *m = rte_pktmbuf_alloc(port->pool);
            if (m == NULL)
                break;
            char *data = rte_pktmbuf_append(m, (uint16_t)len);
            memcpy(data, frames + (size_t)next * stride, len);
            slot_of[n] = next;
            burst[n++] = m;
        }
        uint16_t sent = n > 0 ? rte_eth_tx_burst(port->port_id, 0, burst, n) : 0;
        port->stats.tx_frames += sent;
        if (sent < n) {
            /* The ring is full: everything from the first refused frame on goes back to the caller. */
            port->stats.tx_ring_full += (uint64_t)(n - sent);
            rte_pktmbuf_free_bulk(burst + sent, (unsigned)(n - sent));
            return (int32_t)slot_of[sent];
        }
        if (next == taken)
            break; /* pool exhausted: let the caller retry later */
        taken = next;
    }
    return (int32_t)taken;
}

int32_t hyb_port_recv(hyb_port_t *port, uint8_t *frames, uint32_t *lengths, uint32_t max, uint32_t stride) {
    if (port == NULL || frames == NULL || lengths == NULL)
        return HYB_EINVAL;
    struct rte_mbuf *burst[HYB_BURST];
    uint16_t want = max < HYB_BURST ? (uint16_t)max : HYB_BURST;
    uint16_t n = rte_eth_rx_burst(port->port_id, 0, burst, want);
    uint32_t out = 0;
    for (uint16_t i = 0; i < n; i++) {
        struct rte_mbuf *m = burst[i];
        uint32_t len = rte_pktmbuf_pkt_len(m);
        if (len > stride) {
            port->stats.rx_oversize++;
        } else {
            const void *src = rte_pktmbuf_read(m, 0, len, frames + (size_t)out * stride);
            if (src != frames + (size_t)out * stride)
                memcpy(frames + (size_t)out * stride, src, len);
            lengths[out++] = len;
        }
        rte_pktmbuf_free(m);
    }
    port->stats.rx_frames += out;
    return (int32_t)out;
}

int32_t hyb_port_stats(const hyb_port_t *port, hyb_port_stats_t *stats) {
    if (port == NULL || stats == NULL)
        return HYB_EINVAL;
    *stats = port->stats;
    return HYB_OK;
}

void hyb_port_close(hyb_port_t *port) {
    if (port == NULL)
        return;
    rte_eth_dev_stop(port->port_id);
    rte_eth_dev_close(port->port_id);
    rte_eal_hotplug_remove("vdev", port->name);
    rte_mempool_free(port->pool);
    free(port);
}

/* ---- Readiness polling (no EAL) ---- */

#define HYB_WAKE_TOKEN UINT64_MAX

struct hyb_poller {
    int epfd;
    int wakefd;
};

int32_t hyb_poller_create(hyb_poller_t **out) {
    if (out == NULL)
        return HYB_EINVAL;
    *out = NULL;
    hyb_poller_t *poller = calloc(1, sizeof(*poller));
    if (poller == NULL)
        return HYB_ENOMEM;
    poller->epfd = epoll_create1(EPOLL_CLOEXEC);
    poller->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = HYB_WAKE_TOKEN};
    if (poller->epfd < 0 || poller->wakefd < 0 ||
        epoll_ctl(poller->epfd, EPOLL_CTL_ADD, poller->wakefd, &ev) != 0) {
        int saved = errno;
        if (poller->epfd >= 0)
            close(poller->epfd);
        if (poller->wakefd >= 0)
            close(poller->wakefd);
        free(poller);
        errno = saved;
        return HYB_ESYS;
    }
    *out = poller;
    return HYB_OK;
}

int32_t hyb_poller_add(hyb_poller_t *poller, int32_t fd, uint64_t token) {
    if (poller == NULL || fd < 0 || token == HYB_WAKE_TOKEN)
        return HYB_EINVAL;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = token};
    return epoll_ctl(poller->epfd, EPOLL_CTL_ADD, fd, &ev) == 0 ? HYB_OK : HYB_ESYS;
}

int32_t hyb_poller_remove(hyb_poller_t *poller, int32_t fd) {
    if (poller == NULL || fd < 0)
        return HYB_EINVAL;
    return epoll_ctl(poller->epfd, EPOLL_CTL_DEL, fd, NULL) == 0 ? HYB_OK : HYB_ESYS;
}

int32_t hyb_poller_wait(hyb_poller_t *poller, hyb_poll_event_t *events, int32_t max, int32_t timeout_ms) {
    if (poller == NULL || events == NULL || max <= 0)
        return HYB_EINVAL;
    if (max > HYB_POLL_MAX_EVENTS)
        max = HYB_POLL_MAX_EVENTS;
    struct epoll_event raw[HYB_POLL_MAX_EVENTS];
    int n;
    do {
        n = epoll_wait(poller->epfd, raw, max, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return HYB_ESYS;
    int32_t out = 0;
    for (int i = 0; i < n; i++) {
        if (raw[i].data.u64 == HYB_WAKE_TOKEN) {
            uint64_t drained;
            ssize_t ignored = read(poller->wakefd, &drained, sizeof(drained));
            (void)ignored;
            continue;
        }
        uint32_t bits = 0;
        if (raw[i].events & EPOLLIN)
            bits |= HYB_POLL_IN;
        if (raw[i].events & EPOLLRDHUP)
            bits |= HYB_POLL_IN | HYB_POLL_HUP;
        if (raw[i].events & EPOLLOUT)
            bits |= HYB_POLL_OUT;
        if (raw[i].events & EPOLLERR)
            bits |= HYB_POLL_ERR;
        if (raw[i].events & EPOLLHUP)
            bits |= HYB_POLL_HUP;
        events[out].token = raw[i].data.u64;
        events[out].events = bits;
        events[out].reserved = 0;
        out++;
    }
    return out;
}

int32_t hyb_poller_wake(hyb_poller_t *poller) {
    if (poller == NULL)
        return HYB_EINVAL;
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the waiter wakes anyway. */
    if (write(poller->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return HYB_ESYS;
    return HYB_OK;
}

void hyb_poller_close(hyb_poller_t *poller) {
    if (poller == NULL)
        return;
    close(poller->epfd);
    close(poller->wakefd);
    free(poller);
}

static int64_t hyb_sock_failure(void) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return HYB_EAGAIN;
    if (errno == ECONNRESET || errno == EPIPE || errno == ENOTCONN)
        return HYB_ECLOSED;
    return HYB_ESYS;
}

int64_t hyb_sock_recv(int32_t fd, uint8_t *buffer, uint64_t len) {
    if (fd < 0 || (buffer == NULL && len > 0))
        return HYB_EINVAL;
    ssize_t n;
    do {
        n = recv(fd, buffer, len, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    return n >= 0 ? (int64_t)n : hyb_sock_failure();
}

int64_t hyb_sock_send(int32_t fd, const uint8_t *buffer, uint64_t len) {
    if (fd < 0 || buffer == NULL || len == 0)
        return HYB_EINVAL;
    ssize_t n;
    do {
        n = send(fd, buffer, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n >= 0 ? (int64_t)n : hyb_sock_failure();
}

/* ---- Thread scheduling (no EAL) ---- */

int32_t hyb_thread_background(int32_t background) {
    struct sched_param param = {.sched_priority = 0};
    return sched_setscheduler(0, background ? SCHED_IDLE : SCHED_OTHER, &param) == 0 ? HYB_OK : HYB_ESYS;
}

int32_t hyb_thread_pin(int32_t tid, const int32_t *cpus, int32_t count) {
    if (cpus == NULL || count <= 0 || tid < 0)
        return HYB_EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int32_t i = 0; i < count; i++) {
        if (cpus[i] < 0 || cpus[i] >= CPU_SETSIZE)
            return HYB_EINVAL;
        CPU_SET(cpus[i], &set);
    }
    return sched_setaffinity(tid, sizeof(set), &set) == 0 ? HYB_OK : HYB_ESYS;
}

int32_t hyb_thread_id(void) { return (int32_t)gettid(); }

int32_t hyb_fsync_dir(const char *path) {
    if (path == NULL)
        return HYB_EINVAL;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return HYB_ESYS;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc == 0 ? HYB_OK : HYB_ESYS;
}
