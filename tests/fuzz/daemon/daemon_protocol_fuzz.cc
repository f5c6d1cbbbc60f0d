// libFuzzer: the daemon's request parser and the policy-file parser on
// arbitrary bytes. Properties beyond "no crash, no hang": a parsed JSON value
// re-serialises to text that parses to the same serialisation.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dsvmi/daemon.h"
#include "dsvmi/daemon_json.h"
#include "policy_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  dsvmi::Json j;
  if (dsvmi::Json::parse(text, &j)) {
    std::string once = j.dump();
    dsvmi::Json again;
    if (!dsvmi::Json::parse(once, &again) || again.dump() != once) std::abort();
  }
  std::string cmd;
  dsvmi::Json args;
  (void)dsvmi::parse_request(text, &cmd, &args);
  dsvmi::Json policy;
  (void)dsvmi::cli::parse_policy_text(text, &policy);
  return 0;
}
