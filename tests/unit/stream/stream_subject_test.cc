// Subject escaping and the subscriber's check of untrusted payloads
// (docs/stream.md). The oracle for tokens is NATS' own rule: a token holds
// no '.', '*', '>' or white space, and distinct names give distinct tokens.
#include <gtest/gtest.h>

#include <set>

#include "dsvmi/stream_subject.h"
#include "dsvmi/stream_subscriber.h"

using namespace dsvmi;
using namespace dsvmi::stream;

TEST(StreamSubject, TokensAreValidNatsTokens) {
  for (const char* n : {"vm1", "web.prod", "a*b", "x>y", "sp ace", "tab\t", "ü", "%41", "", "a:b"}) {
    std::string t = subject_token(n);
    EXPECT_FALSE(t.empty()) << n;
    EXPECT_EQ(t.find_first_of(".*> \t\r\n"), std::string::npos) << n << " -> " << t;
  }
  EXPECT_EQ(subject_token("vm-1_a"), "vm-1_a");
  EXPECT_EQ(subject_token("web.prod"), "web%2Eprod");
  EXPECT_EQ(subject_token(""), "%");
}

TEST(StreamSubject, EscapingIsInjective) {
  std::set<std::string> seen;
  std::vector<std::string> names = {"a.b", "a%2Eb", "a%2eb", "%", "", "%25", "a", "A"};
  for (int c = 0; c < 256; ++c) names.push_back(std::string(1, char(c)));
  std::set<std::string> uniq(names.begin(), names.end());
  for (const auto& n : uniq) EXPECT_TRUE(seen.insert(subject_token(n)).second) << "collision for '" << n << "'";
}

TEST(StreamSubject, DiskNamesAndSubjects) {
  DiskName d = split_disk_name("h1:vm1:vda");
  EXPECT_EQ(d.host, "h1");
  EXPECT_EQ(d.vm, "vm1");
  EXPECT_EQ(d.disk, "vda");
  EXPECT_EQ(event_subject("dsvmi", d, "create"), "dsvmi.h1.vm1.vda.create");
  d = split_disk_name("h1:vm1:nbd:x");
  EXPECT_EQ(d.disk, "nbd:x");
  EXPECT_EQ(event_subject("dsvmi", d, "modify"), "dsvmi.h1.vm1.nbd%3Ax.modify");
  d = split_disk_name("solo");
  EXPECT_EQ(event_subject("dsvmi", d, "x"), "dsvmi.%.solo.%.x");
  EXPECT_EQ(filter_subject("dsvmi", "h1", "*"), "dsvmi.h1.*.*.*");
  EXPECT_EQ(filter_subject("dsvmi", "web*", "vm.1"), "dsvmi.*.vm%2E1.*.*");
}

TEST(StreamSubscriber, RefusesMalformedPayloads) {
  Json j;
  std::string why;
  EXPECT_TRUE(parse_event_record(R"({"event":"create","disk":"h:v:d","path":"/a"})", &j, &why));
  for (const char* bad : {"", "not json", "[1,2]", "{\"event\":1,\"disk\":\"d\"}", "{\"event\":\"\",\"disk\":\"d\"}",
                          "{\"event\":\"create\"}", "{\"event\":\"create\",\"disk\":5}", "{\"event\":\"create\"",
                          "\xff\xfe", "nul\0l"}) {
    EXPECT_FALSE(parse_event_record(bad, &j, &why)) << bad;
    EXPECT_FALSE(why.empty());
  }
  std::string deep(100000, '[');
  EXPECT_FALSE(parse_event_record(deep, &j, &why));
}
