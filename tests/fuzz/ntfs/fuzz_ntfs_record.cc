// libFuzzer: one File Record through fixups, the header and attribute walk,
// the attribute merge and the value decoders ($FILE_NAME, reparse points,
// Interix files), as the crawler applies them (seeded with mkntfs records).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../../engine/fs/ntfs/file_record.h"

using namespace dsvmi::ntfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const size_t n = size / kFixupStride * kFixupStride;
  if (n == 0 || n > 65536) return 0;
  std::vector<unsigned char> rec(data, data + n);
  if (apply_fixups(rec.data(), rec.size(), "FILE") != FixupResult::Ok) return 0;
  RecordHeader h;
  std::vector<AttrView> attrs;
  (void)parse_record(rec.data(), rec.size(), &h, &attrs);
  FileRecord f;
  std::vector<std::string> problems;
  for (const AttrView& a : attrs) {
    add_attribute(&f, a, uint64_t(1) << 20, &problems);
    if (!a.non_resident) {
      ReparsePoint rp;
      (void)decode_reparse_point(a.value, a.value_length, &rp);
      std::string target;
      uint64_t rdev = 0;
      (void)decode_interix(a.value, a.value_length, &target, &rdev);
    }
  }
  finish_streams(&f, 4096, &problems);
  return 0;
}
