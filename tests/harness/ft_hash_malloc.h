/*
 * ft_hash_malloc.h - uthash's allocator in test_hash_oom, which builds the
 * plugin's table code with -include of this header and
 * uthash_malloc=ft_hash_malloc: it fails while the test says so.
 */
#ifndef FT_HASH_MALLOC_H
#define FT_HASH_MALLOC_H

#include <stddef.h>

void *ft_hash_malloc(size_t size);

#endif
