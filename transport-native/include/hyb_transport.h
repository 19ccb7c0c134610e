/*
 * hyb_transport.h: the whole contract of the HybridKV native transport.
 *
 * A thin shim over DPDK 22.11 that moves raw Ethernet frames for one virtual device (net_memif or
 * net_af_packet). Everything above frames (sessions, sequence numbers, fragmentation, retransmission,
 * de-duplication) lives in the managed datagram RPC (node-cs/src/Hybrid.Transport/Datagram), where it is
 * tested without DPDK. Rules of this header:
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
#define HYB_ABI_VERSION 1u

typedef enum hyb_status {
    HYB_OK = 0,
    HYB_EINVAL = -1,  /* a null pointer, a zero size, a malformed vdev string */
    HYB_EEAL = -2,    /* rte_eal_init failed (permissions, memory, bad EAL arguments) */
    HYB_ESTATE = -3,  /* EAL not initialised yet, or initialised twice */
    HYB_ENODEV = -4,  /* probing the vdev produced no port (driver missing, bad parameters) */
    HYB_ENOMEM = -5,  /* the mbuf pool or the port structure could not be allocated */
    HYB_EPORT = -6,   /* configuring or starting the port failed */
    HYB_ETOOBIG = -7, /* a frame is larger than the port's frame_bytes */
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

#ifdef __cplusplus
}
#endif

#endif /* HYB_TRANSPORT_H */
