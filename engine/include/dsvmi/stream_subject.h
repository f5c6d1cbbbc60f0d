// Subjects of the event stream on NATS JetStream (docs/stream.md):
//   <prefix>.<host>.<vm>.<disk>.<event>
// from an attachment name "HOST:VM:DISK". A NATS subject token cannot hold
// '.', '*', '>' or white space, so every byte outside [A-Za-z0-9_-] is
// written as '%' + two upper-case hex digits, and an empty name as "%".
#pragma once
#include <string>
#include <string_view>

namespace dsvmi::stream {

// The escaped token of one name.
std::string subject_token(std::string_view name);

// "HOST:VM:DISK" -> its three parts. The name is split at its first two
// ':'; a name with fewer parts leaves the missing ones empty ("vm1" ->
// host "", vm "vm1", disk ""), a DISK part may hold more ':'.
struct DiskName {
  std::string host, vm, disk;
};
DiskName split_disk_name(std::string_view name);

// prefix + "." + the four escaped tokens.
std::string event_subject(std::string_view prefix, const DiskName& d, std::string_view event);

// A subscriber's HOST:VM glob pair -> the consumer's filter subject: a part
// without glob characters is its token, a part with any is '*' (the
// subscriber then filters by the glob itself). Always ends in ".*.*" (disk,
// event).
std::string filter_subject(std::string_view prefix, std::string_view host_glob, std::string_view vm_glob);

}  // namespace dsvmi::stream
