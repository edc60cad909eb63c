// The Linux kernel's own utf8-12.1 casefold code, compiled in user space as a test oracle
// (FOLDFS_KERNEL_ORACLE). See kernel_oracle.c.
#pragma once

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Whether the kernel's utf8_validate() accepts s[0, len).
int kernel_oracle_is_valid(const char* s, size_t len);

// The kernel's utf8_casefold() of s[0, len) into out[0, capacity): returns the key length,
// -1 when the kernel refuses the name, -2 when the key does not fit.
long kernel_oracle_casefold(const char* s, size_t len, unsigned char* out, size_t capacity);

#ifdef __cplusplus
}
#endif
