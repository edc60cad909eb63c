/* Just enough of the kernel's headers to compile fs/unicode/utf8-norm.c and utf8data.c_shipped
 * in user space. Every <linux/...> header those files include is a one-line stub (generated in
 * the build directory) that includes this file. Used only by the FOLDFS_KERNEL_ORACLE test. */
#ifndef FOLDFS_KERNEL_SHIM_H
#define FOLDFS_KERNEL_SHIM_H

#include <stddef.h>
#include <string.h>
#include <sys/types.h>

typedef unsigned char u8;

#define EXPORT_SYMBOL(sym)
#define EXPORT_SYMBOL_GPL(sym)
#define MODULE_LICENSE(text)
#define MODULE_DESCRIPTION(text)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Only named in prototypes or as a trailing member that the normalizer never touches. */
struct qstr;
struct rcu_head {
  struct rcu_head* next;
  void (*func)(struct rcu_head* head);
};

#endif
