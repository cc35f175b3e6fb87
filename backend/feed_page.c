/*
 * feed_page.c - fp_feed_page_free (fp_store.h), on its own so that code
 * playing the store's part (the gateway's fuzz target) frees pages as the
 * store does.
 */
#include <stdlib.h>
#include <string.h>

#include "fp_store.h"

void fp_feed_page_free(fp_feed_page *p)
{
    size_t i;

    if (p == NULL)
        return;
    for (i = 0; i < p->n; i++)
        free(p->posts[i]);
    free(p->posts);
    free(p->ids);
    free(p->cached);
    memset(p, 0, sizeof(*p));
}
