#ifndef C_ALLOCATION_COUNTER_H
#define C_ALLOCATION_COUNTER_H

/// Counts heap allocations of the whole process (glibc only) while enabled.
/// Linked into `alloc-probe` only: it replaces malloc and friends for that executable.
void authgate_allocation_counting(int enabled);
long authgate_allocation_count(void);
void authgate_allocation_reset(void);
void authgate_allocation_tracing(int enabled);

#endif
