/* Reference C loop of Maglev table population (NSDI'16 §3.4, Pseudocode 1), for the bench's ratio only
 * (not shipped). Same hashes as the TypeScript (murmur3 x86_32 of the name, two seeds), same lazy
 * permutation (next slot per backend), equal weights. Prints the median build time in ms per case. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint32_t murmur3(const char *s, uint32_t seed) {
  const uint8_t *d = (const uint8_t *)s;
  size_t len = strlen(s), blocks = len & ~(size_t)3;
  uint32_t h = seed, k;
  for (size_t i = 0; i < blocks; i += 4) {
    memcpy(&k, d + i, 4);
    k *= 0xcc9e2d51; k = (k << 15) | (k >> 17); k *= 0x1b873593;
    h ^= k; h = (h << 13) | (h >> 19); h = h * 5 + 0xe6546b64;
  }
  k = 0;
  switch (len & 3) {
    case 3: k ^= (uint32_t)d[blocks + 2] << 16; /* fallthrough */
    case 2: k ^= (uint32_t)d[blocks + 1] << 8;  /* fallthrough */
    case 1: k ^= d[blocks]; k *= 0xcc9e2d51; k = (k << 15) | (k >> 17); k *= 0x1b873593; h ^= k;
  }
  h ^= (uint32_t)len; h ^= h >> 16; h *= 0x85ebca6b; h ^= h >> 13; h *= 0xc2b2ae35; h ^= h >> 16;
  return h;
}

static double now_ms(void) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y);
}

static int32_t *populate(int n, int m, uint32_t *offset, uint32_t *skip, uint32_t *next, int32_t *table) {
  for (int i = 0; i < n; i++) next[i] = offset[i];
  memset(table, 0xff, sizeof(int32_t) * m);
  int filled = 0;
  for (;;) {
    for (int i = 0; i < n; i++) {
      uint32_t p = next[i];
      while (table[p] >= 0) { p += skip[i]; if (p >= (uint32_t)m) p -= m; }
      table[p] = i; p += skip[i]; next[i] = p >= (uint32_t)m ? p - m : p;
      if (++filled == m) return table;
    }
  }
}

int main(int argc, char **argv) {
  int runs = argc > 1 ? atoi(argv[1]) : 21;
  int cases[][2] = {{65537, 100}, {65537, 1000}, {655373, 1000}};
  for (int c = 0; c < 3; c++) {
    int m = cases[c][0], n = cases[c][1];
    uint32_t *offset = malloc(4 * n), *skip = malloc(4 * n), *next = malloc(4 * n);
    int32_t *table = malloc(4 * (size_t)m);
    char name[32];
    double *t = malloc(sizeof(double) * runs), sink = 0;
    for (int r = 0; r < runs; r++) {
      double t0 = now_ms();
      for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "backend-%d", i);
        offset[i] = murmur3(name, 0x6d61676c) % m;
        skip[i] = murmur3(name, 0x65763334) % (m - 1) + 1;
      }
      populate(n, m, offset, skip, next, table);
      t[r] = now_ms() - t0;
      sink += table[r % m];
    }
    qsort(t, runs, sizeof(double), cmp);
    printf("%d %d %.4f %.0f\n", m, n, t[runs / 2], sink * 0);
    free(offset); free(skip); free(next); free(table); free(t);
  }
  return 0;
}
