/* l4fleet-bpf (native/bpf-loader/): what the loader's files share. The loader itself: main.c. */
#ifndef L4F_LOADER_H
#define L4F_LOADER_H

#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "node-maps.h"

#define TC_HANDLE 0x4c34 /* "L4" */
#define TC_PRIORITY 1
#define MAX_PAYLOAD (64u << 20)

enum op {
	OP_UPDATE = 1,       /* u32 map, u32 n, n x (key, value)                      */
	OP_DELETE = 2,       /* u32 map, u32 n, n x key                               */
	OP_TABLE_CREATE = 3, /* u32 index, u32 size, size x u32 backend id: a new table at index (replaces) */
	OP_TABLE_WRITE = 4,  /* u32 index, u32 n, n x u32 slot, n x u32 backend id: in place, one batch */
	OP_TABLE_DELETE = 5, /* u32 index                                             */
	OP_DUMP = 6,         /* -> every map's content but flows and counters (layout at dump())     */
	OP_STATS = 7,        /* -> counters summed over CPUs and flow entry counts (layout at stats()) */
	OP_FLOWS_CLEAR = 8,  /* empties both flow maps                                */
	OP_REMOVE = 9,       /* detaches the program and removes every pin            */
	OP_PROG_INFO = 10,   /* -> u32 prog id, u64 run_time_ns, u64 run_cnt (kernel.bpf_stats_enabled); the same for XDP */
	OP_TABLE_PREV = 11,  /* u32 index, u32 n, n x u32 slot, n x u32 previous owner id + 1 (0 none): second chance */
	OP_TABLE_SEAT = 12,  /* u32 index, u32 size: make a table ready there ahead of its create (ahead.c) */
	OP_SEAT_WAIT = 13,   /* answered once the seat asked for is ready (or given up) */
	OP_ATTACH_CHECK = 14, /* answered 0 while the program is attached where the start put it, else the errno (attach_check) */
};

/*
 * Set in a request's op by the driver on every request of a send but its first: the send is one chain of dependent
 * requests (an apply's tables before the VIP entries that refer to them), so once one of them failed, each chained
 * request after it is refused unrun (ECANCELED) instead of pointing a VIP at a table that is not there. A request
 * without the bit starts a new chain.
 */
#define OP_CHAINED 0x80000000u

/* Small maps written element by element: index in the OP_UPDATE/OP_DELETE `map` field (state.c). */
#define N_SMALL 5u
/* small_maps[] index of l4f_src_ranges (an LPM trie: written and read in batches, maps.c) */
#define SMALL_SRC_RANGES 4u

/*
 * An array map stores each value in round_up(value_size, 8) bytes (kernel/bpf/arraymap.c). A slot is struct
 * l4f_slot (8 bytes): the backend id at byte 8 * s of the mapping, the previous owner (id + 1, 0 = none) at 8 * s + 4.
 */
#define SLOT_STRIDE 2 /* in uint32_t */

/* state.c */
extern struct bpf_object *obj; /* NULL after a start over the pins (fast path) */
extern const char *const small_maps[N_SMALL];
extern const uint32_t small_key_size[N_SMALL];
extern const uint32_t small_value_size[N_SMALL];
extern int small_fd[N_SMALL];
extern int tables_fd, flows4_fd, flows6_fd, vip_stats_fd, backend_stats_fd, stats_fd;
extern int inner_fd[L4F_MAX_TABLES];
extern uint32_t *inner_mem[L4F_MAX_TABLES];
extern uint32_t inner_size[L4F_MAX_TABLES];
extern struct bpf_tc_hook hook;
extern int prog_fd;
extern unsigned int prog_id;
extern char pin_dir[512];

/* A growing output buffer for dumps (reply.c). */
struct out {
	char *p;
	size_t len, cap;
};

/* pins.c: the backends' high-water mark (every backend id ever written is below it), pinned as HWM_PIN. */
#define HWM_PIN "l4f_backend_hwm"
extern uint32_t hwm;

void reply(uint32_t status, const void *data, uint32_t len);
void reply_err(int err, const char *fmt, ...);
/* Whether a reply of the current chain (OP_CHAINED) was an error; main.c clears it when a chain starts. */
extern int chain_failed;
void reserve(struct out *o, size_t n);
void put(struct out *o, const void *d, size_t n);
int pinned(const char *name);
int pin_is(const char *name, uint32_t key_size, uint32_t value_size);
int hwm_open(int fresh, char *msg, size_t msglen);
int hwm_raise(uint32_t mark);
int inner(uint32_t idx);
void forget_inner(uint32_t idx);
/* tables.c */
size_t mapped_len(uint32_t size);
int create_table(uint32_t size);
int tables_flush(char *msg, size_t msglen);
/* stale.c: flows remembered over ids that start again, recorded in STALE_PIN until they are cleared. */
#define STALE_PIN "l4f_flows_stale"
int stale_recorded(void);
int stale_before_load(int *fresh, char *msg, size_t msglen);
int stale_clear(char *msg, size_t msglen);
/* layout.c: pins of another definition than the object's, removed before the load (which makes them anew). */
int pins_fit(struct bpf_object *o, char *msg, size_t msglen);
/* ahead.c: the spare and the seat (tables made ready off the request path); the seat's registry pin. */
#define SEAT_PIN "l4f_table_seat"
void want_spare(uint32_t size);
int take_spare(uint32_t idx, uint32_t size);
void seat_want(const char *p, uint32_t len);
int seat_take(uint32_t idx, uint32_t size);
void seat_settle(void);
int seat_open(char *msg, size_t msglen);
void table_create(const char *p, uint32_t len);
void table_write(const char *p, uint32_t len, uint32_t half);
void update(const char *p, uint32_t len, int del);
/* ranges.c: l4f_src_ranges in batches */
int ranges_write(const char *e, uint32_t n, int del, uint32_t *failed);
int ranges_dump(struct out *o);
void dump(void);
void stats(void);
int clear_flows(int fd);
uint32_t flow_sets(uint32_t flows);
int flows_pinned_size(uint32_t flows, char *msg, size_t msglen);
int size_flows(struct bpf_object *o, uint32_t flows);
uint32_t count_flows(int fd);
int is_flow_cache(int fd);
void prog_info(void);
void remove_all(void);
int quiet(enum libbpf_print_level level, const char *fmt, va_list ap);
int start(const char *object, const char *ifname, uint32_t flows, char *msg, size_t msglen);
int attach_check(char *msg, size_t msglen);
/* xdp.c: the XDP fast path (--xdp native). */
extern int xdp_wanted;
extern unsigned int xdp_id;
int xdp_matches(void);
int xdp_mac(int map_fd, const char *ifname, char *msg, size_t msglen);
int xdp_attach(struct bpf_program *prog, char *msg, size_t msglen);
int xdp_detach_ours(void);
void xdp_describe(const char *ifname, char *msg, size_t msglen);
static inline void put32(struct out *o, uint32_t v) { put(o, &v, 4); }

#endif
