#include "recmeta.h"

#include <cstdio>
#include <cstring>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/flv.h"
#include "grtmp/media.h"

namespace grtmp::launcher {

namespace {

constexpr uint8_t kFlvMarker[3] = {'F', 'L', 'V'};

std::vector<uint8_t> buffer_bytes(GstBuffer* buf) {
  std::vector<uint8_t> out(gst_buffer_get_size(buf));
  gst_buffer_extract(buf, 0, out.data(), out.size());
  return out;
}

// Offset of the 8-byte double of top-level property `key` (a Number) in an
// encoded onMetaData body, or -1. The key is searched as it is encoded in
// an object/ECMA array: u16 length, the name, then the Number marker.
int64_t number_offset(const std::vector<uint8_t>& body, const char* key) {
  std::vector<uint8_t> pat;
  const size_t n = strlen(key);
  pat.push_back(uint8_t(n >> 8));
  pat.push_back(uint8_t(n & 0xff));
  pat.insert(pat.end(), key, key + n);
  pat.push_back(uint8_t(amf0::Marker::Number));
  if (body.size() < pat.size() + 8) return -1;
  for (size_t i = 0; i + pat.size() + 8 <= body.size(); i++)
    if (memcmp(body.data() + i, pat.data(), pat.size()) == 0) return int64_t(i + pat.size());
  return -1;
}

// The onMetaData values of a script tag body (an "@setDataFrame" first is
// skipped), or false when the tag is something else.
bool decode_metadata(const std::vector<uint8_t>& body, std::vector<amf0::Value>& values) {
  GError* err = nullptr;
  if (!amf0::decode_all(body.data(), body.size(), values, amf0::Limits{}, &err)) {
    g_clear_error(&err);
    return false;
  }
  if (!values.empty() && values[0].is_string() && values[0].string == "@setDataFrame")
    values.erase(values.begin());
  return values.size() >= 2 && values[0].is_string() && values[0].string == "onMetaData";
}

// File offset of `key`'s double in a script tag body written at `tag_at`, or -1.
int64_t file_offset(uint64_t tag_at, const std::vector<uint8_t>& body, const char* key) {
  const int64_t at = number_offset(body, key);
  return at < 0 ? -1 : int64_t(tag_at + flv::kTagHeaderSize) + at;
}

GstBuffer* script_tag_buffer(const std::vector<uint8_t>& body) {
  std::vector<uint8_t> tag = flv::encode_tag(flv::kTagScript, 0, body.data(), body.size());
  return gst_buffer_new_memdup(tag.data(), tag.size());
}

void write_be_double(uint8_t out[8], double v) {
  uint64_t bits;
  memcpy(&bits, &v, 8);
  for (int i = 0; i < 8; i++) out[i] = uint8_t(bits >> (56 - 8 * i));
}

}  // namespace

std::vector<std::vector<uint8_t>> streamheader_bytes(GstCaps* caps) {
  std::vector<std::vector<uint8_t>> out;
  if (!caps || gst_caps_get_size(caps) == 0) return out;
  const GValue* arr = gst_structure_get_value(gst_caps_get_structure(caps, 0), "streamheader");
  if (!arr || !GST_VALUE_HOLDS_ARRAY(arr)) return out;
  for (guint i = 0; i < gst_value_array_get_size(arr); i++) {
    const GValue* v = gst_value_array_get_value(arr, i);
    if (GST_VALUE_HOLDS_BUFFER(v)) out.push_back(buffer_bytes(gst_value_get_buffer(v)));
  }
  return out;
}

void RecordingMeta::set_caps(GstCaps* caps) {
  for (const std::vector<uint8_t>& b : streamheader_bytes(caps)) {
    if (b.size() >= 13 && memcmp(b.data(), kFlvMarker, 3) == 0) {
      has_audio_ = b[4] & 0x04;
      has_video_ = b[4] & 0x01;
      continue;
    }
    flv::TagHeader th;
    if (!flv::parse_tag_header(b.data(), b.size(), th, nullptr)) continue;
    if (flv::kTagHeaderSize + th.data_size > b.size()) continue;
    const uint8_t* data = b.data() + flv::kTagHeaderSize;
    const size_t len = th.data_size;
    if (th.type == flv::kTagVideo) {
      media::VideoInfo vi;
      if (!media::inspect_video(data, len, vi)) continue;
      has_video_ = true;
      videocodecid_ = vi.enhanced ? double(vi.fourcc) : double(vi.codec_id);
      media::AvcConfig avc;
      if (!vi.enhanced && vi.codec_id == 7 && vi.sequence_header && len > vi.header_size &&
          media::parse_avc_config(data + vi.header_size, len - vi.header_size, avc)) {
        width_ = avc.width;
        height_ = avc.height;
      }
    } else if (th.type == flv::kTagAudio) {
      media::AudioInfo ai;
      if (!media::inspect_audio(data, len, ai)) continue;
      has_audio_ = true;
      audiocodecid_ = double(ai.sound_format);
      static const uint32_t rates[] = {5512, 11025, 22050, 44100};
      samplerate_ = rates[ai.sound_rate & 3];
      samplesize_ = ai.sound_size ? 16 : 8;
      channels_ = ai.sound_type ? 2 : 1;
      media::AacConfig aac;
      if (!ai.enhanced && ai.sound_format == 10 && ai.sequence_header && len > ai.header_size &&
          media::parse_aac_config(data + ai.header_size, len - ai.header_size, aac)) {
        if (aac.sample_rate) samplerate_ = aac.sample_rate;
        if (aac.channels) channels_ = aac.channels;
      }
    }
  }
}

GstBuffer* RecordingMeta::process(GstBuffer* buf) {
  const size_t size = gst_buffer_get_size(buf);
  if (state_ == State::Start) {
    uint8_t head[3] = {0, 0, 0};
    gst_buffer_extract(buf, 0, head, sizeof head);
    // Not a file header: not a stream we know how to annotate.
    state_ = (size >= 13 && memcmp(head, kFlvMarker, 3) == 0) ? State::AfterHeader : State::Passing;
    offset_ += size;
    return buf;
  }

  uint8_t th_bytes[flv::kTagHeaderSize];
  flv::TagHeader th;
  const bool is_tag = gst_buffer_extract(buf, 0, th_bytes, sizeof th_bytes) == sizeof th_bytes &&
                      flv::parse_tag_header(th_bytes, sizeof th_bytes, th, nullptr) &&
                      flv::kTagHeaderSize + th.data_size <= size;
  if (is_tag && (th.type == flv::kTagAudio || th.type == flv::kTagVideo)) {
    if (first_ms_ < 0 || th.timestamp < first_ms_) first_ms_ = th.timestamp;
    if (int64_t(th.timestamp) > last_ms_) last_ms_ = th.timestamp;
  }
  if (state_ != State::AfterHeader) {
    offset_ += size;
    return buf;
  }
  state_ = State::Passing;

  if (is_tag && th.type == flv::kTagScript) {
    std::vector<uint8_t> all = buffer_bytes(buf);
    std::vector<uint8_t> body(all.begin() + flv::kTagHeaderSize, all.begin() + flv::kTagHeaderSize + th.data_size);
    std::vector<amf0::Value> values;
    if (decode_metadata(body, values)) {
      amf0::Value& props = values[1];
      const amf0::Value* d = props.get("duration");
      const amf0::Value* f = props.get("filesize");
      const bool complete = props.is_object_like() && d && d->is_number() && f && f->is_number();
      if (complete) {
        duration_at_ = file_offset(offset_, body, "duration");
        filesize_at_ = file_offset(offset_, body, "filesize");
        offset_ += size;
        return buf;
      }
      if (props.is_object_like()) {
        // Re-encoded with the two numbers (appended, or replacing a non-number).
        if (!d || !d->is_number()) props.set("duration", amf0::Value::make_number(0));
        if (!f || !f->is_number()) props.set("filesize", amf0::Value::make_number(0));
        std::vector<amf0::Value> out{amf0::Value::make_string("onMetaData"), props};
        for (size_t i = 2; i < values.size(); i++) out.push_back(values[i]);
        Bytes enc = amf0::encode_to_bytes(out);
        std::vector<uint8_t> nb(enc.data(), enc.data() + enc.size());
        GstBuffer* tag = script_tag_buffer(nb);
        gst_buffer_copy_into(tag, buf, GstBufferCopyFlags(GST_BUFFER_COPY_FLAGS | GST_BUFFER_COPY_TIMESTAMPS), 0, -1);
        gst_buffer_unref(buf);
        duration_at_ = file_offset(offset_, nb, "duration");
        filesize_at_ = file_offset(offset_, nb, "filesize");
        offset_ += gst_buffer_get_size(tag);
        return tag;
      }
    }
  }

  // No onMetaData from the publisher: one of ours goes first.
  std::vector<amf0::Property> p;
  p.emplace_back("duration", amf0::Value::make_number(0));
  p.emplace_back("filesize", amf0::Value::make_number(0));
  if (has_video_) {
    if (width_) p.emplace_back("width", amf0::Value::make_number(width_));
    if (height_) p.emplace_back("height", amf0::Value::make_number(height_));
    if (videocodecid_ >= 0) p.emplace_back("videocodecid", amf0::Value::make_number(videocodecid_));
  }
  if (has_audio_) {
    if (audiocodecid_ >= 0) p.emplace_back("audiocodecid", amf0::Value::make_number(audiocodecid_));
    if (samplerate_) p.emplace_back("audiosamplerate", amf0::Value::make_number(samplerate_));
    if (samplesize_) p.emplace_back("audiosamplesize", amf0::Value::make_number(samplesize_));
    if (channels_) p.emplace_back("stereo", amf0::Value::make_boolean(channels_ > 1));
  }
  p.emplace_back("encoder", amf0::Value::make_string("gst-rtmp-server"));
  Bytes enc = amf0::encode_to_bytes({amf0::Value::make_string("onMetaData"), amf0::Value::make_ecma_array(std::move(p))});
  std::vector<uint8_t> nb(enc.data(), enc.data() + enc.size());
  GstBuffer* out = script_tag_buffer(nb);
  duration_at_ = file_offset(offset_, nb, "duration");
  filesize_at_ = file_offset(offset_, nb, "filesize");
  synthesized_ = true;
  gst_buffer_copy_into(out, buf, GstBufferCopyFlags(GST_BUFFER_COPY_FLAGS | GST_BUFFER_COPY_TIMESTAMPS), 0, -1);
  out = gst_buffer_append(out, buf);
  offset_ += gst_buffer_get_size(out);
  return out;
}

double RecordingMeta::media_seconds() const {
  if (first_ms_ < 0 || last_ms_ < first_ms_) return 0;
  return double(last_ms_ - first_ms_) / 1000.0;
}

bool RecordingMeta::finalize(const std::string& path, double duration_s, uint64_t size) const {
  if (duration_at_ < 0 && filesize_at_ < 0) return false;
  FILE* f = fopen(path.c_str(), "r+b");
  if (!f) return false;
  bool ok = true;
  auto put = [&](int64_t at, double v) {
    if (at < 0 || uint64_t(at) + 8 > size) return;
    uint8_t be[8];
    write_be_double(be, v);
    ok = ok && fseek(f, long(at), SEEK_SET) == 0 && fwrite(be, 1, 8, f) == 8;
  };
  put(duration_at_, duration_s);
  put(filesize_at_, double(size));
  ok = fclose(f) == 0 && ok;
  return ok;
}

}  // namespace grtmp::launcher
