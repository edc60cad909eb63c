/* Drives the kernel's fs/unicode normalizer (utf8-norm.c with the shipped utf8-12.1 tables)
 * the way fs/unicode/utf8-core.c does for utf8_validate() and utf8_casefold(), so that tests
 * can compare foldfs's keys with the kernel's on any input. */
#include "kernel_oracle.h"

#include "utf8n.h"

/* Unicode 12.1.0, the only encoding version foldfs implements. */
#define ORACLE_VERSION UNICODE_AGE(12, 1, 0)

/* The table of `version` in one of the shipped per-version lists, or NULL. */
static const struct utf8data* table_for(const struct utf8data* tables, int count,
                                        unsigned int version) {
  for (int i = 0; i < count; ++i) {
    if (tables[i].maxage == version) return &tables[i];
  }
  return NULL;
}

static const struct unicode_map* oracle_map(void) {
  static struct unicode_map map;
  if (map.tables == NULL) {
    map.version = ORACLE_VERSION;
    map.ntab[UTF8_NFDI] =
        table_for(utf8_data_table.utf8nfdidata, utf8_data_table.utf8nfdidata_size, ORACLE_VERSION);
    map.ntab[UTF8_NFDICF] = table_for(utf8_data_table.utf8nfdicfdata,
                                      utf8_data_table.utf8nfdicfdata_size, ORACLE_VERSION);
    map.tables = &utf8_data_table;
  }
  return &map;
}

int kernel_oracle_is_valid(const char* s, size_t len) {
  return utf8nlen(oracle_map(), UTF8_NFDI, s, len) >= 0;
}

long kernel_oracle_casefold(const char* s, size_t len, unsigned char* out, size_t capacity) {
  struct utf8cursor cursor;
  if (utf8ncursor(&cursor, oracle_map(), UTF8_NFDICF, s, len) < 0) return -1;
  for (size_t n = 0; n < capacity; ++n) {
    const int c = utf8byte(&cursor);
    if (c < 0) return -1;
    if (c == 0) return (long)n;
    out[n] = (unsigned char)c;
  }
  return -2;
}
