/* The request lines of l4fleet-nft-batch (the protocol is in main.c's comment), parsed into operations. */
#include <ctype.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nft-batch.h"

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end || end == s || v > 0xffffffffULL || s[0] == '-') return -1;
  *out = (uint32_t)v;
  return 0;
}

/* "hex:0a0b.." -> bytes; returns the length, or -1. */
static int parse_hex(const char *s, unsigned char *out) {
  size_t n = strlen(s);
  if (n == 0 || n % 2 || n / 2 > VALUE_MAX_LEN) return -1;
  for (size_t i = 0; i < n; i += 2) {
    if (!isxdigit((unsigned char)s[i]) || !isxdigit((unsigned char)s[i + 1])) return -1;
    char pair[3] = {s[i], s[i + 1], 0};
    out[i / 2] = (unsigned char)strtoul(pair, NULL, 16);
  }
  return (int)(n / 2);
}

int family_of(const char *name) {
  static const struct { const char *name; int family; } families[] = {
      {"netdev", NFPROTO_NETDEV}, {"inet", NFPROTO_INET}, {"ip", NFPROTO_IPV4},
      {"ip6", NFPROTO_IPV6},      {"bridge", NFPROTO_BRIDGE}, {"arp", NFPROTO_ARP},
  };
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
    if (strcmp(name, families[i].name) == 0) return families[i].family;
  return -1;
}

static struct op *push(struct ops *ops) {
  if (ops->len == ops->cap) {
    ops->cap = ops->cap ? ops->cap * 2 : 4096;
    if (!(ops->v = realloc(ops->v, ops->cap * sizeof *ops->v))) die(1, "out of memory");
  }
  struct op *o = &ops->v[ops->len++];
  o->value_kind = NO_VALUE;
  o->value_len = 0;
  return o;
}

/* "KEY" or "KEY=VALUE" into o; returns NULL when fine, else why not. */
static const char *parse_element(char *tok, struct op *o, char *why, size_t why_len) {
  char *eq = strchr(tok, '=');
  if (eq) *eq = '\0';
  if (parse_u32(tok, &o->key)) {
    snprintf(why, why_len, "key is not an unsigned 32-bit integer: %.32s", tok);
    return why;
  }
  if (!eq) return NULL;
  const char *v = eq + 1;
  uint32_t u;
  int n;
  int64_t ref;
  if (strncmp(v, "obj:", 4) == 0 && v[4] && (ref = intern(v + 4)) >= 0) {
    o->value_kind = OBJREF;
    o->obj = (uint32_t)ref;
  } else if (strncmp(v, "hex:", 4) == 0 && (n = parse_hex(v + 4, o->value)) > 0) {
    o->value_kind = BYTES;
    o->value_len = (unsigned char)n;
  } else if (parse_u32(v, &u) == 0) {
    o->value_kind = BYTES;
    o->value_len = sizeof u;
    memcpy(o->value, &u, sizeof u);
  } else {
    snprintf(why, why_len, "value of key %.16s is not an unsigned 32-bit integer, hex:BYTES or obj:NAME: %.32s",
             tok, v);
    return why;
  }
  return NULL;
}

/*
 * One request line: appends its operations to `ops`. Returns NULL when fine, else why not (then
 * nothing of the line is kept). Sets *is_commit for "commit", *is_blank for empty and comment lines.
 */
const char *parse_line(char *line, struct ops *ops, int *is_commit, int *is_blank, char *why,
                              size_t why_len) {
  char *save;
  char *verb = strtok_r(line, " \t\r\n", &save);
  *is_commit = 0;
  *is_blank = verb == NULL || verb[0] == '#';
  if (*is_blank) return NULL;
  char *name = strtok_r(NULL, " \t\r\n", &save);
  if (strcmp(verb, "commit") == 0 && name == NULL) {
    *is_commit = 1;
    return NULL;
  }
  int counter = strcmp(verb, "add-counter") == 0 || strcmp(verb, "delete-counter") == 0;
  int add = verb[0] == 'a';
  if (!counter && strcmp(verb, "add") != 0 && strcmp(verb, "delete") != 0) {
    snprintf(why, why_len,
             "expected \"add SET KEY[=VALUE] ...\", \"delete SET KEY ...\", \"add-counter NAME\", "
             "\"delete-counter NAME\" or \"commit\", got \"%.32s\"",
             verb);
    return why;
  }
  int64_t n = name ? intern(name) : -1;
  if (n < 0) {
    snprintf(why, why_len, "%s: a name is missing or too long", verb);
    return why;
  }
  const size_t first = ops->len;
  if (counter) {
    if (strtok_r(NULL, " \t\r\n", &save) != NULL) {
      snprintf(why, why_len, "%s takes one name", verb);
      return why;
    }
    struct op *o = push(ops);
    o->kind = COUNTER;
    o->add = (unsigned char)add;
    o->name = (uint32_t)n;
    return NULL;
  }
  size_t elements = 0;
  for (char *tok = strtok_r(NULL, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
    struct op *o = push(ops);
    o->kind = ELEMENT;
    o->add = (unsigned char)add;
    o->name = (uint32_t)n;
    if (parse_element(tok, o, why, why_len) || (!add && o->value_kind != NO_VALUE)) {
      if (!add && o->value_kind != NO_VALUE) snprintf(why, why_len, "delete takes keys only, got a value for %u", o->key);
      ops->len = first;
      return why;
    }
    elements++;
  }
  if (elements == 0) {
    snprintf(why, why_len, "%s %s: no elements", verb, name);
    return why;
  }
  return NULL;
}
