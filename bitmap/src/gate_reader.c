/*
 * The gate's reader (producer side, linked into QEMU). See docs/gate.md for
 * the publication protocol and why a writer never stores into a buffer this
 * reader is viewing.
 */
#define _GNU_SOURCE /* F_OFD_SETLK */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <roaring/roaring_version.h>

#include "dsvmi/gate.h"
#include "gate_checksum.h"
#include "gate_index.h"
#include "gate_layout.h"
#include "gate_reader_internal.h"

#define API __attribute__((visibility("default")))

/* Announce-then-recheck rounds before a query gives up adopting (and passes):
 * a publish would have to land inside each tiny window, 8 times in a row. */
#define ADOPT_TRIES 8

struct dsvmi_gate_reader {
    uint8_t *base;
    size_t map_len;
    bool owns_mapping;
    int fd; /* holds the one-reader lock; -1 when attached to memory */
    struct dsvmi_gate_header *hdr;
    struct dsvmi_gate_geometry geo;

    /* the adopted generation */
    uint64_t seen;       /* published word last acted on; 0 = retry */
    uint32_t mode;       /* 0 = no valid view: answer pass, count fallback */
    const uint8_t *buf;  /* the adopted buffer (mode SET) */
    struct dsvmi_gate_container *table; /* geo.nkeys entries */
    uint8_t *scratch;    /* 5 * nkeys + 4 bytes */

    /* private counters, mirrored into the shared counter line */
    uint64_t writes_passed, bytes_passed, writes_dropped, bytes_dropped;
    uint64_t fallbacks, rejected, adoptions;

    char err[DSVMI_GATE_ERROR_LEN];
};


static inline void store_relaxed(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

bool dsvmi_gate_check_header(const volatile void *mapped, uint64_t mapped_len,
                             struct dsvmi_gate_geometry *geo, char *err,
                             size_t err_len)
{
    if (mapped_len < DSVMI_GATE_HEADER_SIZE) {
        return dsvmi_gate_fail(err, err_len, "gate: %" PRIu64 " bytes, smaller than the "
                    "%u-byte header", mapped_len, DSVMI_GATE_HEADER_SIZE);
    }
    struct dsvmi_gate_header h; /* line 0 only; read once */
    memcpy(&h, (const void *)mapped, offsetof(struct dsvmi_gate_header, published));
    if (h.magic != DSVMI_GATE_MAGIC) {
        return dsvmi_gate_fail(err, err_len, "gate: bad magic 0x%016" PRIx64
                    " (not a dsvmi gate)", h.magic);
    }
    if (h.layout_version != DSVMI_GATE_LAYOUT_VERSION) {
        return dsvmi_gate_fail(err, err_len, "gate: layout version %u, this build "
                    "speaks %u", h.layout_version, DSVMI_GATE_LAYOUT_VERSION);
    }
    if (h.header_size != DSVMI_GATE_HEADER_SIZE) {
        return dsvmi_gate_fail(err, err_len, "gate: header size %u, expected %u",
                    h.header_size, DSVMI_GATE_HEADER_SIZE);
    }
    uint32_t roaring = DSVMI_GATE_ROARING_VERSION(ROARING_VERSION_MAJOR,
                                                  ROARING_VERSION_MINOR,
                                                  ROARING_VERSION_REVISION);
    if (h.roaring_version != roaring) {
        return dsvmi_gate_fail(err, err_len, "gate: written with CRoaring %u.%u.%u, this "
                    "build reads the frozen format of %u.%u.%u",
                    h.roaring_version >> 16, (h.roaring_version >> 8) & 0xff,
                    h.roaring_version & 0xff, roaring >> 16,
                    (roaring >> 8) & 0xff, roaring & 0xff);
    }
    if (h.grain_shift < DSVMI_GATE_MIN_GRAIN_SHIFT ||
        h.grain_shift > DSVMI_GATE_MAX_GRAIN_SHIFT) {
        return dsvmi_gate_fail(err, err_len, "gate: grain shift %u outside [%u, %u]",
                    h.grain_shift, DSVMI_GATE_MIN_GRAIN_SHIFT,
                    DSVMI_GATE_MAX_GRAIN_SHIFT);
    }
    if (h.nslots < DSVMI_GATE_DEFAULT_SLOTS || h.nslots > DSVMI_GATE_MAX_SLOTS) {
        return dsvmi_gate_fail(err, err_len, "gate: %u slots outside [%u, %u]", h.nslots,
                    DSVMI_GATE_DEFAULT_SLOTS, DSVMI_GATE_MAX_SLOTS);
    }
    uint64_t grain = 1ULL << h.grain_shift;
    if (h.disk_size == 0 || h.disk_size > (1ULL << 52)) {
        return dsvmi_gate_fail(err, err_len, "gate: disk size %" PRIu64 " out of range",
                    h.disk_size);
    }
    uint64_t grains = (h.disk_size + grain - 1) >> h.grain_shift;
    if (grains > (1ULL << 32)) {
        return dsvmi_gate_fail(err, err_len, "gate: disk of %" PRIu64 " bytes has %"
                    PRIu64 " grains of %" PRIu64 " bytes, more than 2^32",
                    h.disk_size, grains, grain);
    }
    uint64_t capacity = dsvmi_gate_slot_capacity(grains);
    if (h.slot_capacity != capacity) {
        return dsvmi_gate_fail(err, err_len, "gate: slot capacity %" PRIu64 ", expected %"
                    PRIu64 " for %" PRIu64 " grains", h.slot_capacity, capacity,
                    grains);
    }
    uint64_t file_size = DSVMI_GATE_HEADER_SIZE + h.nslots * capacity;
    if (h.file_size != file_size) {
        return dsvmi_gate_fail(err, err_len, "gate: file size field %" PRIu64
                    ", expected %" PRIu64, h.file_size, file_size);
    }
    if (file_size > mapped_len) {
        return dsvmi_gate_fail(err, err_len, "gate: needs %" PRIu64 " bytes, only %"
                    PRIu64 " are mapped", file_size, mapped_len);
    }
    geo->grain_shift = h.grain_shift;
    geo->nslots = h.nslots;
    geo->disk_size = h.disk_size;
    geo->grains = grains;
    geo->nkeys = (uint32_t)((grains + 65535) >> 16);
    geo->slot_capacity = capacity;
    geo->file_size = file_size;
    return true;
}

bool dsvmi_gate_check_slot(const uint8_t *base, const struct dsvmi_gate_geometry *g,
                           uint32_t slot, uint64_t generation,
                           struct dsvmi_gate_slot_desc *desc, char *err,
                           size_t err_len)
{
    if (slot >= g->nslots) {
        return dsvmi_gate_fail(err, err_len, "gate: published slot %u, the gate has %u",
                    slot, g->nslots);
    }
    const struct dsvmi_gate_header *h = (const struct dsvmi_gate_header *)base;
    memcpy(desc, &h->slots[slot], sizeof(*desc));
    if (!dsvmi_gate_check_desc(g, slot, generation, desc, err, err_len)) {
        return false;
    }
    uint64_t sum = dsvmi_gate_slot_checksum(base + desc->offset, desc->size,
                                            generation, desc->mode);
    if (sum != desc->checksum) {
        return dsvmi_gate_fail(err, err_len, "gate slot %u: checksum mismatch (stored "
                    "%016" PRIx64 ", computed %016" PRIx64 ") for generation %"
                    PRIu64, slot, desc->checksum, sum, generation);
    }
    return true;
}

bool dsvmi_gate_check_desc(const struct dsvmi_gate_geometry *g, uint32_t slot,
                           uint64_t generation,
                           const struct dsvmi_gate_slot_desc *desc, char *err,
                           size_t err_len)
{
    if (slot >= g->nslots) {
        return dsvmi_gate_fail(err, err_len, "gate: published slot %u, the gate has %u",
                    slot, g->nslots);
    }
    if (desc->generation != generation) {
        return dsvmi_gate_fail(err, err_len, "gate slot %u: holds generation %" PRIu64
                    ", published as %" PRIu64, slot, desc->generation,
                    generation);
    }
    uint64_t offset = dsvmi_gate_slot_offset(g, slot);
    if (desc->offset != offset || desc->capacity != g->slot_capacity) {
        return dsvmi_gate_fail(err, err_len, "gate slot %u: buffer at %" PRIu64 " (+%"
                    PRIu64 "), expected %" PRIu64 " (+%" PRIu64 ")", slot,
                    desc->offset, desc->capacity, offset, g->slot_capacity);
    }
    if (desc->size > g->slot_capacity) {
        return dsvmi_gate_fail(err, err_len, "gate slot %u: %" PRIu64 " bytes in a %"
                    PRIu64 "-byte buffer", slot, desc->size, g->slot_capacity);
    }
    if (desc->mode < DSVMI_GATE_MODE_PASS_ALL || desc->mode > DSVMI_GATE_MODE_SET) {
        return dsvmi_gate_fail(err, err_len, "gate slot %u: unknown mode %u", slot,
                    desc->mode);
    }
    return true;
}

static void dsvmi_gate_reader_free(dsvmi_gate_reader_t *r);

static dsvmi_gate_reader_t *reader_new(uint8_t *base, size_t len,
                                       bool owns_mapping, char *err,
                                       size_t err_len)
{
    struct dsvmi_gate_geometry geo;
    if (!dsvmi_gate_check_header(base, len, &geo, err, err_len)) {
        return NULL;
    }
    dsvmi_gate_reader_t *r = calloc(1, sizeof(*r));
    if (r) {
        r->table = calloc(geo.nkeys, sizeof(*r->table));
        r->scratch = malloc(5 * (size_t)geo.nkeys + 4);
    }
    if (!r || !r->table || !r->scratch) {
        if (r) {
            free(r->table);
            free(r->scratch);
            free(r);
        }
        dsvmi_gate_fail(err, err_len, "gate: out of memory for a %u-container index",
             geo.nkeys);
        return NULL;
    }
    r->base = base;
    r->map_len = len;
    r->owns_mapping = owns_mapping;
    r->fd = -1;
    r->hdr = (struct dsvmi_gate_header *)base;
    r->geo = geo;
    return r;
}

API dsvmi_gate_reader_t *dsvmi_gate_reader_open(const char *path, char *err,
                                                size_t err_len)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        dsvmi_gate_fail(err, err_len, "gate %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        dsvmi_gate_fail(err, err_len, "gate %s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size < DSVMI_GATE_HEADER_SIZE) {
        dsvmi_gate_fail(err, err_len, "gate %s: %lld bytes, smaller than the header",
             path, (long long)st.st_size);
        close(fd);
        return NULL;
    }
    size_t len = (size_t)st.st_size;
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        dsvmi_gate_fail(err, err_len, "gate %s: mmap: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    dsvmi_gate_reader_t *r = reader_new(base, len, true, err, err_len);
    if (!r) {
        munmap(base, len);
        close(fd);
        return NULL;
    }
    /* One reader per gate: reader_view protects a single slot, so a second
     * reader could have its buffer rewritten under it. An open-file-
     * description lock on the reader line says "taken"; the kernel drops it
     * when this fd closes, even if QEMU dies. (The writer's flock is a
     * different lock type and does not interact.) */
    struct flock lk = {
        .l_type = F_WRLCK,
        .l_whence = SEEK_SET,
        .l_start = offsetof(struct dsvmi_gate_header, reader_view),
        .l_len = 64,
    };
    if (fcntl(fd, F_OFD_SETLK, &lk) != 0) {
        if (errno == EAGAIN || errno == EACCES) {
            dsvmi_gate_fail(err, err_len, "gate %s: already has a reader (one dsvmi "
                 "filter per gate)", path);
        } else {
            dsvmi_gate_fail(err, err_len, "gate %s: lock: %s", path, strerror(errno));
        }
        r->owns_mapping = true;
        dsvmi_gate_reader_free(r);
        close(fd);
        return NULL;
    }
    r->fd = fd;
    return r;
}

dsvmi_gate_reader_t *dsvmi_gate_reader_attach(void *base, size_t len, char *err,
                                              size_t err_len)
{
    return reader_new(base, len, false, err, err_len);
}

/* Frees without touching the shared region (for a reader never published). */
static void dsvmi_gate_reader_free(dsvmi_gate_reader_t *r)
{
    if (r->owns_mapping) {
        munmap(r->base, r->map_len);
    }
    free(r->table);
    free(r->scratch);
    free(r);
}

API void dsvmi_gate_reader_close(dsvmi_gate_reader_t *r)
{
    if (!r) {
        return;
    }
    /* release every slot to the writer, then the one-reader lock */
    __atomic_store_n(&r->hdr->reader_view, DSVMI_GATE_VIEW_NONE, __ATOMIC_SEQ_CST);
    int fd = r->fd;
    dsvmi_gate_reader_free(r);
    if (fd >= 0) {
        close(fd);
    }
}

API const char *dsvmi_gate_reader_error(const dsvmi_gate_reader_t *r)
{
    return r ? r->err : "";
}

static void reject(dsvmi_gate_reader_t *r, uint64_t published)
{
    struct dsvmi_gate_header *h = r->hdr;
    r->rejected++;
    store_relaxed(&h->rejected, r->rejected);
    memcpy(h->error, r->err, sizeof(h->error));
    __atomic_store_n(&h->error_published, published, __ATOMIC_RELEASE);
}

/* Out of the hot path: a new published word was seen. */
static __attribute__((noinline)) void adopt(dsvmi_gate_reader_t *r,
                                            uint64_t published)
{
    struct dsvmi_gate_header *h = r->hdr;
    r->mode = 0;
    r->buf = NULL;
    r->seen = published;
    if ((published >> DSVMI_GATE_SLOT_BITS) == 0) {
        return; /* nothing published yet */
    }
    /* Announce the slot, then make sure it is still the published one: from
     * then on the writer will not pick it (docs/gate.md, "Why it is safe"). */
    int tries = 0;
    for (;;) {
        __atomic_store_n(&h->reader_view, published, __ATOMIC_SEQ_CST);
        uint64_t again = __atomic_load_n(&h->published, __ATOMIC_SEQ_CST);
        if (again == published) {
            break;
        }
        if (++tries == ADOPT_TRIES) {
            r->seen = 0; /* try again on the next query */
            return;
        }
        published = again;
        r->seen = published;
        if ((published >> DSVMI_GATE_SLOT_BITS) == 0) {
            return;
        }
    }
    uint32_t slot = (uint32_t)(published & DSVMI_GATE_SLOT_MASK);
    uint64_t generation = published >> DSVMI_GATE_SLOT_BITS;
    struct dsvmi_gate_slot_desc desc;
    if (!dsvmi_gate_check_slot(r->base, &r->geo, slot, generation, &desc,
                               r->err, sizeof(r->err))) {
        reject(r, published);
        return;
    }
    const uint8_t *buf = r->base + dsvmi_gate_slot_offset(&r->geo, slot);
    if (desc.mode == DSVMI_GATE_MODE_SET) {
        char why[DSVMI_GATE_ERROR_LEN - 16];
        if (!dsvmi_gate_index_build(buf, desc.size, r->table, r->geo.nkeys,
                                    r->scratch, NULL, NULL, why, sizeof(why))) {
            snprintf(r->err, sizeof(r->err), "gate slot %u: %s", slot, why);
            reject(r, published);
            return;
        }
    }
    r->buf = buf;
    r->mode = desc.mode;
    r->adoptions++;
    store_relaxed(&h->adoptions, r->adoptions);
}

API bool dsvmi_gate_should_pass(dsvmi_gate_reader_t *r, uint64_t offset,
                                uint64_t length)
{
    if (__builtin_expect(r == NULL, 0)) {
        return true;
    }
    struct dsvmi_gate_header *h = r->hdr;
    uint64_t published = __atomic_load_n(&h->published, __ATOMIC_ACQUIRE);
    if (__builtin_expect(published != r->seen, 0)) {
        adopt(r, published);
    }
    if (length == 0) {
        length = 1;
    }
    bool pass;
    if (__builtin_expect(r->mode == DSVMI_GATE_MODE_SET, 1)) {
        uint64_t end = offset + length;
        if (end < offset || end > r->geo.disk_size) {
            pass = true; /* not a write of this disk: keep it */
        } else {
            uint32_t g0 = (uint32_t)(offset >> r->geo.grain_shift);
            uint32_t g1 = (uint32_t)((end - 1) >> r->geo.grain_shift);
            pass = dsvmi_gate_index_any(r->table, r->buf, g0, g1);
        }
    } else if (r->mode == DSVMI_GATE_MODE_DROP_ALL) {
        pass = false;
    } else {
        pass = true;
        if (r->mode != DSVMI_GATE_MODE_PASS_ALL) {
            r->fallbacks++;
            store_relaxed(&h->fallbacks, r->fallbacks);
        }
    }
    if (pass) {
        r->writes_passed++;
        r->bytes_passed += length;
        store_relaxed(&h->writes_passed, r->writes_passed);
        store_relaxed(&h->bytes_passed, r->bytes_passed);
    } else {
        r->writes_dropped++;
        r->bytes_dropped += length;
        store_relaxed(&h->writes_dropped, r->writes_dropped);
        store_relaxed(&h->bytes_dropped, r->bytes_dropped);
    }
    return pass;
}
