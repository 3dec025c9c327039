// Replaces malloc, calloc, realloc and posix_memalign in the executable that links this file,
// forwarding to glibc's own implementations and counting calls while enabled. The same technique
// as SwiftNIO's allocation-counter integration tests, without LD_PRELOAD.
#include "CAllocationCounter.h"
#include <stdlib.h>  // defines __GLIBC__ where glibc is the C library

#if defined(__linux__) && defined(__GLIBC__)
#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void __libc_free(void *pointer);

static atomic_int counting = 0;
static atomic_int tracing = 0;
static atomic_long allocations = 0;
static _Thread_local int inTrace = 0;

/// With tracing on, every counted allocation writes its call stack to stderr (for finding where
/// the request path allocates: `ALLOC_PROBE_TRACE=1 alloc-probe 2>stacks.txt`).
static void trace(void) {
    if (inTrace) return;
    inTrace = 1;
    void *frames[24];
    int depth = backtrace(frames, 24);
    static const char separator[] = "----\n";
    write(2, separator, sizeof(separator) - 1);
    backtrace_symbols_fd(frames, depth, 2);
    inTrace = 0;
}

static inline void count(void) {
    if (atomic_load_explicit(&counting, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
        if (atomic_load_explicit(&tracing, memory_order_relaxed)) trace();
    }
}

void *malloc(size_t size) {
    count();
    return __libc_malloc(size);
}

void *calloc(size_t count_, size_t size) {
    count();
    return __libc_calloc(count_, size);
}

void *realloc(void *pointer, size_t size) {
    if (pointer == NULL) count();
    return __libc_realloc(pointer, size);
}

int posix_memalign(void **out, size_t alignment, size_t size) {
    count();
    void *pointer = __libc_memalign(alignment, size);
    if (pointer == NULL) return ENOMEM;
    *out = pointer;
    return 0;
}

void *aligned_alloc(size_t alignment, size_t size) {
    count();
    return __libc_memalign(alignment, size);
}

void free(void *pointer) {
    __libc_free(pointer);
}

void authgate_allocation_counting(int enabled) { atomic_store(&counting, enabled); }
void authgate_allocation_tracing(int enabled) { atomic_store(&tracing, enabled); }
long authgate_allocation_count(void) { return atomic_load(&allocations); }
void authgate_allocation_reset(void) { atomic_store(&allocations, 0); }
#else
void authgate_allocation_counting(int enabled) { (void)enabled; }
void authgate_allocation_tracing(int enabled) { (void)enabled; }
long authgate_allocation_count(void) { return -1; }
void authgate_allocation_reset(void) {}
#endif
