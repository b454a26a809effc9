/*
 * What the parts of l4fleet-nft-batch share (main.c says what the program is for and its protocol):
 * the parsed requests, the interned names, and the three steps: parse a line (request.c), intern its names
 * (names.c), commit a batch over netlink (netlink.c).
 */
#ifndef L4F_NFT_BATCH_H
#define L4F_NFT_BATCH_H

#include <stddef.h>
#include <stdint.h>

/* The ELEMENTS nest's length is a 16-bit field (at most 65,535 bytes): a message ends before its
 * elements pass this many bytes (an element takes 28 bytes with a mark value, at most ~600 with names). */
#define ELEMENT_BYTES_PER_MESSAGE 60000
#define NAME_MAX_LEN 256
#define RECV_TIMEOUT_S 10

#define VALUE_MAX_LEN 64 /* NFT_DATA_VALUE_MAXLEN */

enum kind { ELEMENT, COUNTER };
enum value_kind { NO_VALUE, BYTES, OBJREF };

struct op {
  unsigned char kind, add, value_kind, value_len;
  uint32_t name; /* the set, or the counter */
  uint32_t obj;  /* OBJREF: the referenced object */
  uint32_t key;
  unsigned char value[VALUE_MAX_LEN];
};

struct ops {
  struct op *v;
  size_t len, cap;
};

enum outcome { COMMITTED = 0, REFUSED = -1, UNKNOWN = -2 };

/* main.c: prints "l4fleet-nft-batch: ..." and exits with `code`. */
__attribute__((format(printf, 2, 3), noreturn)) void die(int code, const char *fmt, ...);

/* names.c: the batch's names, interned; reset after every commit. */
const char *name_of(uint32_t i);
int64_t intern(const char *name);
void names_reset(void);

/* request.c */
int family_of(const char *name);
const char *parse_line(char *line, struct ops *ops, int *is_commit, int *is_blank, char *why, size_t why_len);

/* netlink.c */
enum outcome commit(int fd, const char *table, int family, const struct op *ops, size_t count, uint32_t *seq,
                    char *why, size_t why_len);

#endif /* L4F_NFT_BATCH_H */
