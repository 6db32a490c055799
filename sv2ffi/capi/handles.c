/* handles.c: libsv2's table of C-side handles (the codec's Sv2Decoder).
 *
 * A handle is never the address of anything: it is (generation, slot, kind tag) packed
 * into a pointer-sized value, so a freed, foreign or garbage handle is refused with
 * SV2_ERR_INVALID_ARGUMENT instead of being dereferenced, and a reused slot gets a new
 * generation, so a stale handle cannot reach a newer decoder. The Python side's table
 * (handles.py) uses the other tags of the same scheme, which is how a connection passed
 * where a decoder is expected is named in the error.
 *
 * Threads: the contract lets any thread use a handle, one thread at a time. Adding and
 * removing take a mutex; looking up is two atomic loads (the hot path of every decode).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sv2_internal.h"

#define TAG_BITS 4
#define TAG_MASK ((uintptr_t)0xF)
#define TAG_DECODER 1u /* handles.py: 2 connection, 3 template provider */
#define SLOT_BITS 20   /* up to 2^20 live decoders */
#define PAGE_BITS 10
#define PAGE_SIZE (1u << PAGE_BITS)
#define PAGES (1u << (SLOT_BITS - PAGE_BITS))
#define GEN_BITS (sizeof(uintptr_t) * 8 - TAG_BITS - SLOT_BITS)
#define GEN_MASK ((((uintptr_t)1) << GEN_BITS) - 1)

typedef struct Slot {
    _Atomic(void *) obj;
    atomic_uintptr_t gen;
    uint32_t next_free; /* 1 + index of the next free slot, 0 = none (under the lock) */
} Slot;

static _Atomic(Slot *) pages[PAGES];
static atomic_uint used; /* slots handed out so far (never shrinks) */
static uint32_t free_head; /* 1 + index, 0 = none */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static Slot *slot_at(uint32_t index)
{
    Slot *page = atomic_load_explicit(&pages[index >> PAGE_BITS], memory_order_acquire);
    return page ? &page[index & (PAGE_SIZE - 1)] : NULL;
}

static Sv2Decoder *make_handle(uintptr_t gen, uint32_t index)
{
    uintptr_t v = ((gen & GEN_MASK) << (SLOT_BITS + TAG_BITS)) |
                  ((uintptr_t)index << TAG_BITS) | TAG_DECODER;
    return (Sv2Decoder *)v;
}

Sv2Decoder *sv2i_handle_add(void *obj)
{
    uint32_t index;
    Slot *s;
    uintptr_t gen;
    pthread_mutex_lock(&lock);
    if (free_head) {
        index = free_head - 1;
        s = slot_at(index);
        free_head = s->next_free;
    } else {
        index = atomic_load_explicit(&used, memory_order_relaxed);
        if (index >= PAGES * PAGE_SIZE) {
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        if (!atomic_load_explicit(&pages[index >> PAGE_BITS], memory_order_relaxed)) {
            Slot *page = calloc(PAGE_SIZE, sizeof *page);
            if (!page) {
                pthread_mutex_unlock(&lock);
                return NULL;
            }
            atomic_store_explicit(&pages[index >> PAGE_BITS], page, memory_order_release);
        }
        atomic_store_explicit(&used, index + 1, memory_order_release);
        s = slot_at(index);
    }
    gen = atomic_load_explicit(&s->gen, memory_order_relaxed) & GEN_MASK;
    atomic_store_explicit(&s->obj, obj, memory_order_release);
    pthread_mutex_unlock(&lock);
    return make_handle(gen, index);
}

static void *lookup(Sv2Decoder *handle, Slot **slot)
{
    uintptr_t v = (uintptr_t)handle;
    uint32_t index = (uint32_t)((v >> TAG_BITS) & ((1u << SLOT_BITS) - 1));
    Slot *s;
    void *obj;
    char text[160];
    if (!v) {
        sv2i_set_error("Sv2Decoder handle is NULL");
        return NULL;
    }
    if ((v & TAG_MASK) == 2 || (v & TAG_MASK) == 3) {
        snprintf(text, sizeof text, "0x%lx is a %s handle, not a Sv2Decoder", (unsigned long)v,
                 (v & TAG_MASK) == 2 ? "Sv2Connection" : "Sv2Tp");
        sv2i_set_error(text);
        return NULL;
    }
    if ((v & TAG_MASK) == TAG_DECODER &&
        index < atomic_load_explicit(&used, memory_order_acquire) &&
        (s = slot_at(index)) != NULL &&
        (atomic_load_explicit(&s->gen, memory_order_acquire) & GEN_MASK) ==
            (v >> (SLOT_BITS + TAG_BITS)) &&
        (obj = atomic_load_explicit(&s->obj, memory_order_acquire)) != NULL) {
        if (slot)
            *slot = s;
        return obj;
    }
    snprintf(text, sizeof text,
             "0x%lx is not a live Sv2Decoder handle (freed, or never returned by libsv2)",
             (unsigned long)v);
    sv2i_set_error(text);
    return NULL;
}

void *sv2i_handle_get(Sv2Decoder *handle)
{
    return lookup(handle, NULL);
}

void *sv2i_handle_remove(Sv2Decoder *handle)
{
    Slot *s = NULL;
    void *obj;
    pthread_mutex_lock(&lock);
    obj = lookup(handle, &s);
    if (obj) {
        uint32_t index = (uint32_t)(((uintptr_t)handle >> TAG_BITS) & ((1u << SLOT_BITS) - 1));
        atomic_store_explicit(&s->obj, NULL, memory_order_release);
        atomic_store_explicit(&s->gen, atomic_load_explicit(&s->gen, memory_order_relaxed) + 1,
                              memory_order_release);
        s->next_free = free_head;
        free_head = index + 1;
    }
    pthread_mutex_unlock(&lock);
    return obj;
}
