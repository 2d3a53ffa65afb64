// FLV tag parser and media inspection on arbitrary bytes.
//
// Input: byte 0 = size-table length (bits 0-2, see fuzz::Slicer) and bit 3
// = a tag size limit of 4 KiB instead of 16 MiB, then the size table, then
// an FLV byte stream (file header optional).
//
// Also run on the whole input as one tag body: inspect_video,
// inspect_audio, parse_aac_config, parse_avc_config and the server's
// classify_message (media golden vectors are tag bodies).
//
// Invariants checked: slicing does not change the tags or the verdict; a
// header_size reported by inspect_* lies within the tag; tags re-encoded
// with encode_tag parse back identical.
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "grtmp/flv.h"
#include "grtmp/media.h"
#include "grtmp/registry.h"

using namespace grtmp;

namespace {

void inspect(const uint8_t* p, size_t n, uint8_t type) {
  if (type == 0 || type == kMsgVideo) {
    media::VideoInfo v;
    if (media::inspect_video(p, n, v)) {
      FUZZ_CHECK(v.header_size <= n);
      (void)media::video_codec_name(v);
      if (v.sequence_header && !v.enhanced && v.codec_id == media::kVideoAvc && n >= 5) {
        media::AvcConfig c;
        media::parse_avc_config(p + 5, n - 5, c);
      }
      if (v.sequence_header && v.header_size <= n) {
        media::AvcConfig c;
        media::parse_avc_config(p + v.header_size, n - v.header_size, c);
      }
    }
  }
  if (type == 0 || type == kMsgAudio) {
    media::AudioInfo a;
    if (media::inspect_audio(p, n, a)) {
      FUZZ_CHECK(a.header_size <= n);
      (void)media::audio_codec_name(a);
      if (a.sequence_header && a.header_size <= n) {
        media::AacConfig c;
        media::parse_aac_config(p + a.header_size, n - a.header_size, c);
      }
    }
  }
  Message m;
  m.type = type ? type : uint8_t(kMsgVideo);
  m.payload = Bytes::copy(p, n);
  (void)classify_message(m);
  m.type = kMsgAudio;
  (void)classify_message(m);
}

bool same(const std::vector<Message>& a, const std::vector<Message>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (a[i].type != b[i].type || a[i].timestamp != b[i].timestamp || a[i].payload.size() != b[i].payload.size())
      return false;
    if (a[i].payload.size() && memcmp(a[i].payload.data(), b[i].payload.data(), a[i].payload.size()) != 0)
      return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::install_quiet_log();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint32_t max_tag = (data[0] & 0x08) ? 4096 : (16u << 20);
  fuzz::Slicer in(data, size);

  // The whole input as one tag body, and as raw configs.
  inspect(in.data(), in.size(), 0);
  {
    media::AacConfig a;
    media::parse_aac_config(in.data(), in.size(), a);
    media::AvcConfig v;
    media::parse_avc_config(in.data(), in.size(), v);
    flv::FileHeader fh;
    flv::parse_file_header(in.data(), in.size(), fh, nullptr);
    flv::TagHeader th;
    flv::parse_tag_header(in.data(), in.size(), th, nullptr);
  }

  flv::TagParser sliced(max_tag);
  std::vector<Message> a;
  bool ok_a = true;
  for (size_t off = 0; off < in.size() && ok_a;) {
    size_t k = in.next(in.size() - off);
    GError* err = nullptr;
    ok_a = sliced.feed(in.data() + off, k, a, &err);
    FUZZ_CHECK(ok_a == (err == nullptr));
    g_clear_error(&err);
    off += k;
  }
  flv::TagParser whole(max_tag);
  std::vector<Message> b;
  bool ok_b = whole.feed(in.data(), in.size(), b, nullptr);
  FUZZ_CHECK(ok_a == ok_b);
  FUZZ_CHECK(same(a, b));
  FUZZ_CHECK(sliced.prev_size_mismatches() == whole.prev_size_mismatches());

  std::vector<uint8_t> again;
  auto hdr = flv::file_header(true, true);
  again.insert(again.end(), hdr.begin(), hdr.end());
  for (auto& m : b) {
    FUZZ_CHECK(m.payload.size() <= max_tag);
    inspect(m.payload.data(), m.payload.size(), m.type);
    auto t = flv::encode_tag(m.type, m.timestamp, m.payload.data(), m.payload.size());
    again.insert(again.end(), t.begin(), t.end());
  }
  flv::TagParser back;
  std::vector<Message> c;
  FUZZ_CHECK(back.feed(again.data(), again.size(), c, nullptr));
  FUZZ_CHECK(back.prev_size_mismatches() == 0);
  FUZZ_CHECK(same(b, c));
  return 0;
}
