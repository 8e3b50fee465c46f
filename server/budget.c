/* budget.c -- see budget.h. */
#include "budget.h"

static void note_peak(srv_budget *b, size_t now)
{
    size_t p = atomic_load_explicit(&b->peak, memory_order_relaxed);
    while (now > p &&
           !atomic_compare_exchange_weak_explicit(&b->peak, &p, now, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

int budget_take(srv_budget *b, size_t n)
{
    size_t cur = atomic_load_explicit(&b->used, memory_order_relaxed);
    for (;;) {
        if (n > b->max || cur > b->max - n)
            return -1;
        if (atomic_compare_exchange_weak_explicit(&b->used, &cur, cur + n, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    note_peak(b, cur + n);
    return 0;
}

void budget_force(srv_budget *b, size_t n)
{
    note_peak(b, atomic_fetch_add_explicit(&b->used, n, memory_order_relaxed) + n);
}

void budget_give(srv_budget *b, size_t n)
{
    atomic_fetch_sub_explicit(&b->used, n, memory_order_relaxed);
}

size_t budget_used(srv_budget *b)
{
    return atomic_load_explicit(&b->used, memory_order_relaxed);
}
