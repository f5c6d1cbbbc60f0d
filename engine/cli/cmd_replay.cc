// dsvmi replay TRACE IMAGE: applies a capture trace to a raw image (see
// dsvmi/replay.h for what each frame kind does and why).
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.h"
#include "dsvmi/daemon_json.h"
#include "dsvmi/replay.h"
#include "dsvmi/trace.h"
#include "json_output.h"

namespace dsvmi::cli {
namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: dsvmi replay [--allow-lost] [--discard punch|zero|skip] [--json] TRACE IMAGE\n"
               "Applies the Write/WriteZeroes/Discard frames of TRACE, in order, to the raw\n"
               "IMAGE (a copy of the disk the capture started from). Lost frames mean the\n"
               "trace is incomplete: they are reported, and the exit code is 1 unless\n"
               "--allow-lost. Discards punch holes by default (reads back zeroes, as a raw\n"
               "file under QEMU's discard=unmap does). The summary line on stdout is one\n"
               "JSON record with --json (docs/cli-json.md).\n");
}

void print_loss(const std::string& message, void*) {
  std::fprintf(stderr, "dsvmi replay: WARNING: %s\n", message.c_str());
}

}  // namespace

int cmd_replay(int argc, char** argv) {
  const bool json = take_flag(&argc, argv, "--json");
  bool allow_lost = false;
  ReplayOptions options;
  std::string paths[2];
  int npaths = 0;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    } else if (a == "--allow-lost") {
      allow_lost = true;
    } else if (a == "--discard" && i + 1 < argc) {
      std::string m = argv[++i];
      if (m == "punch") options.discard = ReplayOptions::Discard::kPunchHole;
      else if (m == "zero") options.discard = ReplayOptions::Discard::kZero;
      else if (m == "skip") options.discard = ReplayOptions::Discard::kSkip;
      else {
        std::fprintf(stderr, "dsvmi replay: --discard takes punch, zero or skip, not '%s'\n", m.c_str());
        return 2;
      }
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "dsvmi replay: unknown option '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    } else if (npaths < 2) {
      paths[npaths++] = a;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (npaths != 2) {
    usage(stderr);
    return 2;
  }

  Status err;
  auto reader = TraceReader::open(paths[0], &err);
  if (!reader) {
    std::fprintf(stderr, "dsvmi replay: %s\n", err.message().c_str());
    return 1;
  }
  auto replayer = ImageReplayer::open(paths[1], options, &err);
  if (!replayer) {
    std::fprintf(stderr, "dsvmi %s\n", err.message().c_str());
    return 1;
  }
  replayer->set_loss_reporter(print_loss, nullptr);

  std::span<const std::byte> frame;
  TraceReader::Next next;
  int rc = 0;
  while ((next = reader->next(&frame, &err)) == TraceReader::Next::kFrame) {
    if (Status s = replayer->apply(frame); !s) {
      std::fprintf(stderr, "dsvmi %s (%s)\n", s.message().c_str(), paths[0].c_str());
      rc = 1;
      break;
    }
  }
  if (rc == 0 && next == TraceReader::Next::kError) {
    std::fprintf(stderr, "dsvmi replay: %s; %llu frames before it were applied\n",
                 err.message().c_str(), static_cast<unsigned long long>(reader->frames_read()));
    rc = 1;
  }
  if (Status s = replayer->finish(); !s) {
    std::fprintf(stderr, "dsvmi %s\n", s.message().c_str());
    rc = 1;
  }
  const ReplayStats& st = replayer->stats();
  if (json) {
    print_record(Json::Object{{"replay", "summary"},
                              {"ok", rc == 0},
                              {"frames", st.frames},
                              {"writes", st.writes},
                              {"write_bytes", st.write_bytes},
                              {"write_zeroes", st.write_zeroes},
                              {"write_zeroes_bytes", st.write_zeroes_bytes},
                              {"discards", st.discards},
                              {"discard_bytes", st.discard_bytes},
                              {"flushes", st.flushes},
                              {"lost_records", st.lost_records},
                              {"lost_frames", st.lost_frames},
                              {"lost_bytes", st.lost_bytes},
                              {"unexplained_gaps", st.unexplained_gaps},
                              {"unexplained_missing", st.unexplained_missing},
                              {"lossless", st.lossless()}});
  } else {
    std::printf(
        "replay: %llu frames: %llu writes (%llu bytes), %llu write-zeroes (%llu bytes), "
        "%llu discards (%llu bytes), %llu flushes, %llu lost records (%llu frames, %llu bytes), "
        "%llu unexplained sequence gaps\n",
        (unsigned long long)st.frames, (unsigned long long)st.writes, (unsigned long long)st.write_bytes,
        (unsigned long long)st.write_zeroes, (unsigned long long)st.write_zeroes_bytes,
        (unsigned long long)st.discards, (unsigned long long)st.discard_bytes,
        (unsigned long long)st.flushes, (unsigned long long)st.lost_records,
        (unsigned long long)st.lost_frames, (unsigned long long)st.lost_bytes,
        (unsigned long long)st.unexplained_gaps);
  }
  if (rc == 0 && !st.lossless()) {
    if (allow_lost) {
      std::fprintf(stderr, "dsvmi replay: WARNING: the trace has losses; IMAGE is NOT a faithful copy\n");
    } else {
      std::fprintf(stderr,
                   "dsvmi replay: the trace has losses, so IMAGE cannot be a faithful copy "
                   "(exit 1; --allow-lost to accept)\n");
      rc = 1;
    }
  }
  return rc;
}

}  // namespace dsvmi::cli
