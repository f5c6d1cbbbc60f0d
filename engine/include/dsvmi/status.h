// Status: the outcome of an operation on untrusted input. Errors carry a
// message naming the problem ("gpt: entry array CRC mismatch"), never abort.
#pragma once

#include <string>
#include <utility>

namespace dsvmi {

class Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message)); }
  // An error with a class a protocol reports beside the message (the
  // daemon's "NodeNotFound", "QmpError", ...; docs/daemon-protocol.md).
  static Status error(std::string error_class, std::string message) {
    Status s(std::move(message));
    s.class_ = std::move(error_class);
    return s;
  }

  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }
  // "" unless made with a class.
  const std::string& error_class() const { return class_; }

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}
  bool failed_ = false;
  std::string message_;
  std::string class_;
};

}  // namespace dsvmi
