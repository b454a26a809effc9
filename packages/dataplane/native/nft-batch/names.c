/*
 * Names (sets, counters: one per backend added or removed) are interned per batch, so an element costs a
 * few bytes: a growing array, indexed by an open-addressing hash (power-of-two slots, at most half full).
 */
#include <stdlib.h>
#include <string.h>

#include "nft-batch.h"

static char **names;
static size_t names_count, names_cap;
static uint32_t *name_slots; /* index + 1; 0 = empty */
static size_t name_slots_len;

const char *name_of(uint32_t i) { return names[i]; }

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

void names_reset(void) {
  for (size_t i = 0; i < names_count; i++) free(names[i]);
  names_count = 0;
  if (name_slots) memset(name_slots, 0, name_slots_len * sizeof *name_slots);
}

static void name_slots_grow(void) {
  size_t len = name_slots_len ? name_slots_len * 2 : 1024;
  uint32_t *slots = calloc(len, sizeof *slots);
  if (!slots) die(1, "out of memory");
  for (size_t i = 0; i < names_count; i++) {
    size_t at = fnv1a(names[i]) & (len - 1);
    while (slots[at]) at = (at + 1) & (len - 1);
    slots[at] = (uint32_t)i + 1;
  }
  free(name_slots);
  name_slots = slots;
  name_slots_len = len;
}

/* Returns the name's index, or -1 when it is too long. */
int64_t intern(const char *name) {
  if (strlen(name) >= NAME_MAX_LEN) return -1;
  if (2 * (names_count + 1) > name_slots_len) name_slots_grow();
  size_t at = fnv1a(name) & (name_slots_len - 1);
  for (; name_slots[at]; at = (at + 1) & (name_slots_len - 1))
    if (strcmp(names[name_slots[at] - 1], name) == 0) return name_slots[at] - 1;
  if (names_count == names_cap) {
    names_cap = names_cap ? names_cap * 2 : 256;
    if (!(names = realloc(names, names_cap * sizeof *names))) die(1, "out of memory");
  }
  if (!(names[names_count] = strdup(name))) die(1, "out of memory");
  name_slots[at] = (uint32_t)names_count + 1;
  return (int64_t)names_count++;
}
