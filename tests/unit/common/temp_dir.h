// A scratch directory under /tmp for tests that write images and indexes,
// removed with everything in it when the test ends.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace dsvmi::testing {

class TempDir {
 public:
  // The directory is /tmp/<prefix>-XXXXXX: the prefix says which tests left
  // it behind if a run is killed.
  explicit TempDir(const std::string& prefix = "dsvmi-test") {
    std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace dsvmi::testing
