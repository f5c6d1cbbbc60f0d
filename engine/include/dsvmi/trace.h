// A capture trace: the frames a ring delivered, in delivery order, in a file
// (`dsvmi capture` writes one, `dsvmi replay` and the engine read it).
//
// The trace is a container of opaque frame records; what a frame means is the
// ring's FlatBuffers schema (ringbuf/frame.fbs), decoded by trace_frame.h.
//
// File layout (all integers little-endian):
//   header, 32 bytes:
//     0  char[8]  magic "DSVMITRC"
//     8  u32      format version (kTraceFormatVersion)
//     12 u32      header size (32; a reader skips what it doesn't know)
//     16 u64      reserved, 0
//     24 u64      reserved, 0
//   records, until the end of the file:
//     0  u32      frame length L (1 .. kTraceMaxFrameBytes)
//     4  u32      CRC-32 (zlib) of the L frame bytes
//     8  L bytes  the frame, exactly as the ring delivered it
//        0-7      zero bytes, so the next record starts 8-byte aligned
// Every frame starts 8-byte aligned in the file and in the reader's buffer, so
// FlatBuffers can read it in place.
//
// The reader treats the file as untrusted: every length is bounded (by
// kTraceMaxFrameBytes and by what is left in the file), every record's CRC is
// checked, and a truncated last record is reported as such (the writer was
// killed mid-append), never read past. Memory use is bounded by the largest
// frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dsvmi/status.h"

namespace dsvmi {

inline constexpr char kTraceMagic[8] = {'D', 'S', 'V', 'M', 'I', 'T', 'R', 'C'};
inline constexpr uint32_t kTraceFormatVersion = 1;
inline constexpr uint32_t kTraceHeaderBytes = 32;
inline constexpr uint32_t kTraceRecordHeaderBytes = 8;
// Larger than any frame the ring can hold (its payloads are bounded by the
// guest's request size limits) and small enough to allocate on read.
inline constexpr uint32_t kTraceMaxFrameBytes = 64u << 20;

// Appends records to a new trace file. Buffered: call flush() to push the
// buffered records to the kernel (capture does so on idle and on signals).
class TraceWriter {
 public:
  // Creates (truncating) `path` and writes the header. nullptr + *error on
  // failure.
  static std::unique_ptr<TraceWriter> create(const std::string& path, Status* error);
  ~TraceWriter();
  TraceWriter(const TraceWriter&) = delete;
  TraceWriter& operator=(const TraceWriter&) = delete;

  // Appends one frame (1 .. kTraceMaxFrameBytes bytes).
  Status append(std::span<const std::byte> frame);
  // Writes buffered records to the file; with `durable`, fdatasync()s too.
  Status flush(bool durable = false);
  // flush(true) and close the file. Idempotent.
  Status close();

  uint64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }

 private:
  explicit TraceWriter(int fd) : fd_(fd) {}
  Status write_all(const std::byte* data, size_t size);

  int fd_ = -1;
  std::vector<std::byte> buffer_;
  uint64_t records_ = 0;
  uint64_t bytes_ = 0;  // file bytes, header included
};

// Reads the records of a trace one at a time.
class TraceReader {
 public:
  // Opens a trace file and checks its header.
  static std::unique_ptr<TraceReader> open(const std::string& path, Status* error);
  // Reads a trace held in memory (the bytes are copied; used by the fuzzer).
  static std::unique_ptr<TraceReader> from_bytes(std::span<const std::byte> bytes, Status* error);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;

  enum class Next {
    kFrame,  // *frame holds the next frame (valid until the next call)
    kEnd,    // clean end of the trace
    kError,  // *error names the problem and the record; reading stops here
  };
  // The next record. After kEnd or kError every further call returns the same.
  Next next(std::span<const std::byte>* frame, Status* error);

  uint64_t frames_read() const { return frames_read_; }
  uint64_t file_offset() const { return offset_; }  // of the next record
  uint64_t file_size() const { return size_; }

 private:
  TraceReader() = default;
  Status read_at(uint64_t offset, std::byte* out, size_t size);
  Status check_header();

  int fd_ = -1;                     // file mode
  std::vector<std::byte> memory_;   // from_bytes mode
  uint64_t size_ = 0;
  uint64_t offset_ = 0;
  uint64_t frames_read_ = 0;
  std::vector<uint64_t> frame_buf_;  // uint64_t: 8-byte aligned storage
  Next done_ = Next::kFrame;        // kEnd/kError once finished
  Status final_error_;
};

}  // namespace dsvmi
