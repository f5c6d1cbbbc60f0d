// The inference engine on a GPT disk with an EFI System Partition (FAT32)
// beside an ext4 root, both followed live by their drivers: the engine
// starts on both file systems, and a live policy change keeps the FAT
// volume's metadata (reserved sectors and FATs as minfo gives them) and the
// data of the FAT files the glob matches (their sectors as istat lists them)
// in the gate, as it does for ext4.
#include <gtest/gtest.h>

#include <filesystem>

#include "../common/temp_dir.h"
#include "dsvmi/crawl.h"
#include "dsvmi/events.h"
#include "dsvmi/gate_writer.h"
#include "dsvmi/index.h"
#include "dsvmi/inference.h"
#include "../infer/infer_oracle.h"
#include "fat_oracles.h"

namespace dsvmi::testing {
namespace {

class NullSink : public EventSink {
 public:
  void emit(const Event&) override {}
};

TEST(FatEngine, EspBesideExt4RootKeepsItsGrainsAcrossPolicyChanges) {
  TempDir dir("dsvmi-fat-engine");
  Volume esp;
  esp.image = dir / "disk.img";
  esp.offset = 2048 * 512;
  const std::string img = quote(esp.image);
  int rc = 0;
  std::string out = run("truncate -s 120M " + img + " && sgdisk -o -n 1:2048:+34M -t 1:ef00 -n 2:0:0 -t 2:8300 " +
                            img + " >/dev/null && mkfs.vfat -F 32 -s 1 --offset=2048 " + img + " 34816 >/dev/null 2>&1 && " +
                            "mkdir -p " + quote(dir / "esp/EFI/BOOT") + " " + quote(dir / "root/etc") +
                            " && head -c 70000 /dev/urandom > " + quote(dir / "esp/EFI/BOOT/BOOTX64.EFI") +
                            " && head -c 9000 /dev/urandom > " + quote(dir / "esp/other.bin") + " && echo x > " +
                            quote(dir / "root/etc/hostname") + " && " + esp.m("copy") + " -s -Q " +
                            quote(dir / "esp") + "/* ::/ 2>&1",
                        &rc);
  ASSERT_EQ(rc, 0) << out;
  const std::string info = run("sgdisk -i 2 " + img);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(info, m, std::regex(R"(First sector: (\d+))"))) << info;
  const uint64_t root_offset = std::stoull(m[1]) * 512;
  run("mkfs.ext4 -q -F -d " + quote(dir / "root") + " -E offset=" + std::to_string(root_offset) + " " + img +
          " 40M 2>&1",
      &rc);
  ASSERT_EQ(rc, 0);

  Status s;
  auto disk = open_disk(esp.image, {}, &s);
  ASSERT_TRUE(disk) << s.message();
  CrawlSummary summary;
  CrawlOptions co;
  co.index_path = dir / "disk.dsvx";
  ASSERT_TRUE(crawl_disk(*disk, co, &summary));
  ASSERT_EQ(summary.filesystems.size(), 2u);
  auto index = Index::open(co.index_path, &s);
  ASSERT_TRUE(index) << s.message();

  std::unique_ptr<Gate> gate;
  GateOptions go;
  go.disk_size = disk->size();
  ASSERT_TRUE(Gate::create(dir / "gate", go, &gate));
  NullSink sink;
  InferenceOptions o;
  o.policy = GatePolicy{GatePolicyKind::MetadataOnly, {}};
  o.gate = gate.get();
  auto engine = InferenceEngine::create(*index, *disk, sink, o, &s);
  ASSERT_TRUE(engine) << "the ESP and the ext4 root are followed: " << s.message();

  const std::string minfo = run(esp.m("info") + " ::");
  const uint64_t reserved = std::stoull(minfo_field(minfo, "reserved (boot) sectors:"));
  const uint64_t fat_sectors = 2 * std::stoull(minfo_field(minfo, "Big fatlen"));
  auto tsk = tsk_paths(esp);
  const std::vector<uint64_t> boot = tsk_istat(esp, tsk.at("/EFI/BOOT/BOOTX64.EFI").addr).sectors;
  const std::vector<uint64_t> other = tsk_istat(esp, tsk.at("/other.bin").addr).sectors;
  ASSERT_FALSE(boot.empty());
  ASSERT_FALSE(other.empty());
  auto passes = [&](uint64_t sector) { return gate->grain_is_set((esp.offset + sector * 512) / gate->grain_size()); };

  PolicyApplyResult r;
  ASSERT_TRUE(engine->set_policy(GatePolicy{GatePolicyKind::MetadataAndGlobs, {"/EFI/**"}}, &r));
  for (uint64_t sec = 0; sec < reserved + fat_sectors; sec += 7) EXPECT_TRUE(passes(sec)) << "metadata sector " << sec;
  for (uint64_t sec : boot) EXPECT_TRUE(passes(sec)) << "BOOTX64.EFI sector " << sec;
  size_t other_passed = 0;
  for (uint64_t sec : other) other_passed += passes(sec);
  EXPECT_LT(other_passed, other.size()) << "other.bin does not match /EFI/** (a shared grain may pass)";

  ASSERT_TRUE(engine->set_policy(GatePolicy{GatePolicyKind::MetadataOnly, {}}, &r));
  EXPECT_TRUE(passes(0));
  EXPECT_TRUE(passes(reserved));
  size_t boot_passed = 0;
  for (uint64_t sec : boot) boot_passed += passes(sec);
  EXPECT_LT(boot_passed, boot.size()) << "metadata only: BOOTX64.EFI's data no longer passes";

  // Both file systems give events from one frame stream: a boot loader added
  // to the ESP by mcopy, a file added to the root by debugfs (on the
  // partition cut out of a copy of the disk and put back).
  const std::string after = dir / "after.img";
  std::filesystem::copy_file(esp.image, after);
  const uint64_t root_sectors = std::stoull(std::regex_search(info, m, std::regex(R"(Last sector: (\d+))"))
                                                ? m[1].str()
                                                : "0") -
                                root_offset / 512 + 1;
  const std::string root_img = quote(dir / "root.img");
  out = run("MTOOLS_SKIP_CHECK=1 mcopy -i " + quote(after + "@@" + std::to_string(esp.offset)) + " " +
                quote(dir / "root/etc/hostname") + " ::/EFI/BOOT/grubx64.efi && dd if=" + quote(after) + " of=" +
                root_img + " bs=512 skip=" + std::to_string(root_offset / 512) + " count=" +
                std::to_string(root_sectors) + " status=none && debugfs -w -R " +
                quote("write " + std::string(dir / "root/etc/hostname") + " /etc/motd") + " " + root_img +
                " && dd if=" + root_img + " of=" + quote(after) + " bs=512 seek=" +
                std::to_string(root_offset / 512) + " conv=notrunc status=none 2>&1",
            &rc);
  ASSERT_EQ(rc, 0) << out;
  FrameStream frames;
  frames.diff(esp.image, after, 512);
  frames.flush();
  VectorEventSink events;
  InferenceOptions full;
  auto both = InferenceEngine::create(*index, *disk, events, full, &s);
  ASSERT_TRUE(both) << s.message();
  for (const Frame& f : frames.frames) ASSERT_TRUE(both->feed_bytes(f.bytes()));
  ASSERT_TRUE(both->finish());
  bool esp_event = false, root_event = false;
  for (const Event& e : events.events) {
    esp_event = esp_event || (e.kind == EventKind::Create && e.path == "/EFI/BOOT/grubx64.efi" && e.partition == 1);
    root_event = root_event || (e.kind == EventKind::Create && e.path == "/etc/motd" && e.partition == 2);
  }
  EXPECT_TRUE(esp_event) << "no create of /EFI/BOOT/grubx64.efi from partition 1";
  EXPECT_TRUE(root_event) << "no create of /etc/motd from partition 2";
}

}  // namespace
}  // namespace dsvmi::testing
