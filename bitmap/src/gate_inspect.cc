#include "dsvmi/gate_inspect.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gate_published.h"

namespace dsvmi {

Status inspect_gate(const std::string& path, GateSnapshot* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::error("gate " + path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Status::error("gate " + path + ": not a regular file");
  }
  size_t len = static_cast<size_t>(st.st_size);
  if (len < DSVMI_GATE_HEADER_SIZE) {
    close(fd);
    return Status::error("gate " + path + ": " + std::to_string(len) +
                         " bytes, smaller than the gate header");
  }
  void* map = mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return Status::error("gate " + path + ": mmap: " + std::strerror(errno));
  const auto* base = static_cast<const uint8_t*>(map);
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { munmap(p, n); }
  } unmap{map, len};

  dsvmi_gate_geometry geo;
  char err[256];
  if (!dsvmi_gate_check_header(base, len, &geo, err, sizeof(err))) {
    return Status::error(path + ": " + err);
  }
  internal::PublishedCopy copy;
  if (Status s = internal::copy_published(base, geo, &copy); !s) {
    return Status::error(path + ": " + s.message());
  }
  GateSnapshot snap;
  snap.disk_size = geo.disk_size;
  snap.grain_size = 1u << geo.grain_shift;
  snap.slots = geo.nslots;
  snap.file_size = geo.file_size;
  snap.generation = copy.generation;
  snap.slot = copy.slot;
  if (copy.generation) {
    snap.mode = static_cast<GateMode>(copy.desc.mode);
    snap.set_grains = copy.cardinality;
    snap.containers = copy.containers;
    snap.serialized_bytes = copy.desc.size;
  }
  const auto* h = reinterpret_cast<const dsvmi_gate_header*>(base);
  auto load = [](const uint64_t* p) { return __atomic_load_n(p, __ATOMIC_RELAXED); };
  snap.reader_view = load(&h->reader_view);
  snap.counters.writes_passed = load(&h->writes_passed);
  snap.counters.bytes_passed = load(&h->bytes_passed);
  snap.counters.writes_dropped = load(&h->writes_dropped);
  snap.counters.bytes_dropped = load(&h->bytes_dropped);
  snap.counters.fallbacks = load(&h->fallbacks);
  snap.counters.rejected = load(&h->rejected);
  snap.counters.adoptions = load(&h->adoptions);
  uint64_t refused = __atomic_load_n(&h->error_published, __ATOMIC_ACQUIRE);
  if (refused) {
    char text[DSVMI_GATE_ERROR_LEN + 1];
    std::memcpy(text, h->error, DSVMI_GATE_ERROR_LEN);
    text[DSVMI_GATE_ERROR_LEN] = '\0';  // reader-written: terminate it ourselves
    for (char* c = text; *c; c++) {
      if (static_cast<unsigned char>(*c) < 0x20 || static_cast<unsigned char>(*c) > 0x7e) *c = '?';
    }
    snap.error_generation = refused >> DSVMI_GATE_SLOT_BITS;
    snap.reader_error = text;
  }
  *out = std::move(snap);
  return Status::ok();
}

}  // namespace dsvmi
