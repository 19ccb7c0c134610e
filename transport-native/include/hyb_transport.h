/*
 * hyb_transport.h: the whole contract of the HybridKV native transport.
 *
 * A thin shim over DPDK 22.11 that moves raw Ethernet frames for one virtual device (net_memif or
 * net_af_packet). Everything above frames (sessions, sequence numbers, fragmentation, retransmission,
 * de-duplication) lives in the managed datagram RPC (node-cs/src/Hybrid.Transport/Datagram), where it is
 * tested without DPDK. Also (hyb_poller_*, hyb_sock_*, no DPDK) the readiness loop of the node's kernel
 * sockets: epoll plus non-blocking recv/send, so that a request costs one recv and one send, as in Redis.
 * Rules of this header:
 *   - C ABI only; every symbol starts with hyb_, every type is hyb_*_t, every status is HYB_E*.
 *   - Structs are blittable (fixed-width integers only) so C# passes them without marshalling.
 *   - Functions return hyb_status_t (0 or a negative HYB_E* code) or a non-negative count.
 *   - Not thread-safe per port: the caller serialises calls on one port (the managed engine holds a lock).
 */
#ifndef HYB_TRANSPORT_H
#define HYB_TRANSPORT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the exported functions; the library is built with hidden visibility, so nothing else leaks. */
#if defined(__GNUC__)
#define HYB_API __attribute__((visibility("default")))
#else
#define HYB_API
#endif

/* Bumped on any incompatible change of this header; the managed side refuses a different value. */
#define HYB_ABI_VERSION 4u

typedef enum hyb_status {
    HYB_OK = 0,
    HYB_EINVAL = -1,  /* a null pointer, a zero size, a malformed vdev string */
    HYB_EEAL = -2,    /* rte_eal_init failed (permissions, memory, bad EAL arguments) */
    HYB_ESTATE = -3,  /* EAL not initialised yet, or initialised twice */
    HYB_ENODEV = -4,  /* probing the vdev produced no port (driver missing, bad parameters) */
    HYB_ENOMEM = -5,  /* the mbuf pool or the port structure could not be allocated */
    HYB_EPORT = -6,   /* configuring or starting the port failed */
    HYB_ETOOBIG = -7, /* a frame is larger than the port's frame_bytes */
    HYB_EAGAIN = -8,  /* a socket call would block: wait for the poller's next event on that socket */
    HYB_ECLOSED = -9, /* the peer reset the connection or the socket is shut down for writing (EPIPE) */
    HYB_ESYS = -10,   /* another system call failure; errno is left set for the caller */
} hyb_status_t;

/* An open port: one probed vdev, one rx and one tx queue, its own mbuf pool. Opaque. */
typedef struct hyb_port hyb_port_t;

typedef struct hyb_port_config {
    uint32_t frame_bytes;      /* largest frame sent or received, Ethernet header included, no FCS */
    uint32_t ring_size;        /* descriptors per rx and tx ring (power of two, e.g. 1024) */
    uint32_t pool_size;        /* mbufs in the port's pool (e.g. 8191) */
    uint32_t drop_per_million; /* fault injection: frames handed to hyb_port_send dropped per million */
} hyb_port_config_t;

typedef struct hyb_port_stats {
    uint64_t tx_frames;         /* frames the driver accepted */
    uint64_t rx_frames;         /* frames received and copied out */
    uint64_t tx_injected_drops; /* frames dropped on purpose by drop_per_million */
    uint64_t tx_ring_full;      /* frames refused because the tx ring was full (the caller keeps them) */
    uint64_t rx_oversize;       /* received frames longer than the stride, discarded */
} hyb_port_stats_t;

/* HYB_ABI_VERSION of the built library. */
HYB_API uint32_t hyb_abi_version(void);

/* A static, human-readable name of a status ("HYB_EEAL", ...). Never NULL. */
HYB_API const char *hyb_status_name(int32_t status);

/*
 * Initialises the DPDK EAL with argv[0..argc) (argv[0] is the program name). Once per process: a second
 * call returns HYB_ESTATE. EAL pins the calling thread to its main lcore, so call it from a thread that
 * does nothing else, or pass an --lcores mapping that allows several CPUs.
 */
HYB_API int32_t hyb_eal_init(int32_t argc, const char *const *argv);

/*
 * Probes vdev (e.g. "net_memif0,role=server,socket=/tmp/x.sock" or "net_af_packet0,iface=veth0"),
 * configures one rx and one tx queue, and starts it. On success *out owns the port.
 */
HYB_API int32_t hyb_port_open(const char *vdev, const hyb_port_config_t *config, hyb_port_t **out);

/* Copies the port's MAC address into mac[0..6). */
HYB_API int32_t hyb_port_mac(const hyb_port_t *port, uint8_t *mac);

/* 1 when the link is up (for memif: the peer is connected), 0 when down, or a negative status. */
HYB_API int32_t hyb_port_link_up(const hyb_port_t *port);

/*
 * Sends count frames, frame i at frames + i * stride with lengths[i] bytes. Copies them into mbufs, so the
 * caller's buffer is free on return. Returns how many leading frames were taken (injected drops count as
 * taken); the rest did not fit the tx ring and should be offered again later.
 */
HYB_API int32_t hyb_port_send(hyb_port_t *port, const uint8_t *frames, const uint32_t *lengths,
                              uint32_t count, uint32_t stride);

/*
 * Receives up to max frames without waiting: frame i is copied to frames + i * stride and its length
 * stored in lengths[i]. Returns the number of frames (0 when none).
 */
HYB_API int32_t hyb_port_recv(hyb_port_t *port, uint8_t *frames, uint32_t *lengths, uint32_t max,
                              uint32_t stride);

/* Copies the port's counters. */
HYB_API int32_t hyb_port_stats(const hyb_port_t *port, hyb_port_stats_t *stats);

/*
 * Stops and closes the port and frees its pool. Stop polling first: with net_memif, a peer that goes away
 * while the other side is inside rx/tx can crash the survivor inside the driver, so peers say goodbye
 * (the managed protocol does) before either closes.
 */
HYB_API void hyb_port_close(hyb_port_t *port);

/* ---- Readiness polling for kernel sockets (Linux epoll; needs no EAL) ---- */

/* An epoll set plus an eventfd that wakes its waiter. Opaque. Add, remove, wake: any thread; wait: one. */
typedef struct hyb_poller hyb_poller_t;

/* One ready socket: the token given to hyb_poller_add, and HYB_POLL_* bits. */
typedef struct hyb_poll_event {
    uint64_t token;
    uint32_t events;
    uint32_t reserved;
} hyb_poll_event_t;

#define HYB_POLL_IN 0x1u   /* readable (data, end of stream) */
#define HYB_POLL_OUT 0x4u  /* writable again */
#define HYB_POLL_ERR 0x8u  /* error pending */
#define HYB_POLL_HUP 0x10u /* hung up, or the peer shut down its side (no more input will ever come) */

/* Most events one hyb_poller_wait returns. */
#define HYB_POLL_MAX_EVENTS 256

/* Creates a poller. HYB_ESYS (errno set) when epoll or eventfd cannot be created. */
HYB_API int32_t hyb_poller_create(hyb_poller_t **out);

/*
 * Watches socket fd, edge-triggered, for input, output, errors and hang-up, under token. Edge-triggered:
 * an event means "something changed since you last looked"; the owner reads until a short read or
 * HYB_EAGAIN and sends until HYB_EAGAIN, and gets a new event when more arrives or room frees up.
 * A short read proves the input drained only while no HYB_POLL_HUP or HYB_POLL_ERR was seen: the end of
 * stream or a reset that came with the last bytes is reported by the next recv and raises no new event.
 */
HYB_API int32_t hyb_poller_add(hyb_poller_t *poller, int32_t fd, uint64_t token);

/* Stops watching fd (before closing it). Events already returned by a wait may still name its token. */
HYB_API int32_t hyb_poller_remove(hyb_poller_t *poller, int32_t fd);

/*
 * Waits up to timeout_ms (-1: no limit) for events; fills at most max (<= HYB_POLL_MAX_EVENTS) and returns
 * how many. Returns 0 on timeout or after hyb_poller_wake. Interrupted waits are retried.
 */
HYB_API int32_t hyb_poller_wait(hyb_poller_t *poller, hyb_poll_event_t *events, int32_t max,
                                int32_t timeout_ms);

/* Makes the current or next hyb_poller_wait return (async-signal-safe: one eventfd write). */
HYB_API int32_t hyb_poller_wake(hyb_poller_t *poller);

/* Closes the epoll set and the eventfd. The watched sockets stay open (their owners close them). */
HYB_API void hyb_poller_close(hyb_poller_t *poller);

/* Receives up to len bytes without blocking: the count, 0 at end of stream, HYB_EAGAIN, HYB_ECLOSED or
 * HYB_ESYS. */
HYB_API int64_t hyb_sock_recv(int32_t fd, uint8_t *buffer, uint64_t len);

/* Sends up to len bytes without blocking and without SIGPIPE: the count taken, HYB_EAGAIN, HYB_ECLOSED or
 * HYB_ESYS. */
HYB_API int64_t hyb_sock_send(int32_t fd, const uint8_t *buffer, uint64_t len);

/* ---- Thread scheduling (no EAL) ---- */

/* Moves the calling thread to background CPU priority (background != 0: Linux SCHED_IDLE, which the kernel preempts
 * as soon as any other thread of normal priority wakes up on its CPU) or back to normal priority (SCHED_OTHER, its
 * nice value unchanged). HYB_OK, or HYB_ESYS with errno set: leaving SCHED_IDLE needs CAP_SYS_NICE (or an
 * RLIMIT_NICE of 20), so an unprivileged thread can enter it but not leave it. */
HYB_API int32_t hyb_thread_background(int32_t background);

/* Lets thread tid (0 = the calling thread) run only on the count CPUs listed (sched_setaffinity). HYB_OK; HYB_EINVAL
 * for no CPUs or one outside 0..1023; HYB_ESYS with errno set (EINVAL: none of them is available to this process). */
HYB_API int32_t hyb_thread_pin(int32_t tid, const int32_t *cpus, int32_t count);

/* The calling thread's kernel id (gettid), for reading its /proc/self/task/<id> files. */
HYB_API int32_t hyb_thread_id(void);

/* ---- Files (no EAL) ---- */

/* Flushes directory path's entries to disk (open O_DIRECTORY, fsync), so a rename or a file created in it survives a
 * crash of the machine; .NET cannot open a directory. HYB_OK; HYB_EINVAL for a null path; HYB_ESYS with errno set
 * (ENOENT, ENOTDIR, EIO, ...). */
HYB_API int32_t hyb_fsync_dir(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* HYB_TRANSPORT_H */
