// Media payload inspection (see grtmp/media.h).
#include "grtmp/media.h"

#include <vector>

namespace grtmp::media {
namespace {

constexpr uint8_t kExPacketModEx = 7;  // E-RTMP v2: modifier extension, then the real type
constexpr uint8_t kMultitrackOneTrack = 0;
constexpr uint8_t kMultitrackManyCodecs = 2;
constexpr uint8_t kExAudioMultitrack = 5;

uint32_t load_fourcc(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
}

int32_t load_si24(const uint8_t* p) {
  uint32_t v = (uint32_t(p[0]) << 16) | (uint32_t(p[1]) << 8) | p[2];
  if (v & 0x800000) v |= 0xff000000u;
  return int32_t(v);
}

// Skips E-RTMP ModEx blocks: size-1 (UI8, or UI16 when the UI8 is 255),
// data, then a byte whose low nibble is the next packet type.
bool skip_modex(const uint8_t* data, size_t len, size_t& pos, uint8_t& packet_type) {
  int guard = 0;
  while (packet_type == kExPacketModEx) {
    if (++guard > 16 || pos >= len) return false;
    size_t size = size_t(data[pos++]) + 1;
    if (size == 256) {
      if (len - pos < 2) return false;
      size = ((size_t(data[pos]) << 8) | data[pos + 1]) + 1;
      pos += 2;
    }
    if (len - pos < size + 1) return false;
    pos += size;
    packet_type = data[pos++] & 0x0f;
  }
  return true;
}

// Multitrack header: type/packet-type byte, FourCC unless every track has
// its own, then the first track's (FourCC,) id and (size). Returns the
// FourCC of the first track in `track_fourcc`.
bool parse_multitrack(const uint8_t* data, size_t len, size_t& pos, uint8_t& packet_type,
                      uint32_t& shared_fourcc, uint32_t& track_fourcc, uint8_t forbidden_type) {
  if (pos >= len) return false;
  uint8_t mt = data[pos] >> 4;
  packet_type = data[pos] & 0x0f;
  pos++;
  if (packet_type == forbidden_type) return false;
  shared_fourcc = 0;
  if (mt != kMultitrackManyCodecs) {
    if (len - pos < 4) return false;
    shared_fourcc = load_fourcc(data + pos);
    pos += 4;
  }
  track_fourcc = shared_fourcc;
  if (mt == kMultitrackManyCodecs) {
    if (len - pos < 4) return false;
    track_fourcc = load_fourcc(data + pos);
    pos += 4;
  }
  size_t track_hdr = mt == kMultitrackOneTrack ? 1 : 4;  // track id (+ UI24 size)
  if (len - pos < track_hdr) return false;
  pos += track_hdr;
  return true;
}

// Bounds-checked MSB-first bit reader with exp-Golomb codes.
class BitReader {
 public:
  BitReader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  bool ok() const { return ok_; }
  uint32_t bits(unsigned k) {
    uint32_t v = 0;
    for (unsigned i = 0; i < k; i++) v = (v << 1) | bit();
    return v;
  }
  uint32_t bit() {
    if (pos_ >= n_ * 8) {
      ok_ = false;
      return 0;
    }
    uint32_t b = (p_[pos_ >> 3] >> (7 - (pos_ & 7))) & 1;
    pos_++;
    return b;
  }
  uint32_t ue() {
    unsigned zeros = 0;
    while (bit() == 0) {
      if (!ok_ || ++zeros > 31) {
        ok_ = false;
        return 0;
      }
    }
    if (zeros == 0) return 0;
    return uint32_t((uint64_t(1) << zeros) - 1 + bits(zeros));
  }
  int32_t se() {
    uint32_t k = ue();
    return (k & 1) ? int32_t((k + 1) / 2) : -int32_t(k / 2);
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// NAL unit payload without emulation prevention bytes (00 00 03 -> 00 00).
std::vector<uint8_t> unescape_rbsp(const uint8_t* p, size_t n) {
  std::vector<uint8_t> out;
  out.reserve(n);
  int zeros = 0;
  for (size_t i = 0; i < n; i++) {
    if (zeros >= 2 && p[i] == 3) {
      zeros = 0;
      continue;
    }
    out.push_back(p[i]);
    zeros = p[i] == 0 ? zeros + 1 : 0;
  }
  return out;
}

void skip_scaling_list(BitReader& br, int size) {
  int last = 8, next = 8;
  for (int j = 0; j < size && br.ok(); j++) {
    if (next != 0) {
      // delta_scale is se(v), up to 2^31-1 from a hostile SPS: 64-bit
      // arithmetic, and a non-negative result as the spec intends.
      int64_t delta = br.se();
      next = static_cast<int>(((last + delta) % 256 + 256) % 256);
    }
    last = next == 0 ? last : next;
  }
}

// H.264 sequence parameter set (with its NAL header byte) -> picture size.
bool parse_sps_size(const uint8_t* nal, size_t n, uint32_t& width, uint32_t& height) {
  if (n < 4 || (nal[0] & 0x1f) != 7) return false;
  std::vector<uint8_t> rbsp = unescape_rbsp(nal + 1, n - 1);
  BitReader br(rbsp.data(), rbsp.size());
  uint32_t profile = br.bits(8);
  br.bits(8);  // constraint flags
  br.bits(8);  // level
  br.ue();     // seq_parameter_set_id
  uint32_t chroma_format_idc = 1;
  bool separate_colour_plane = false;
  switch (profile) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86: case 118:
    case 128: case 138: case 139: case 134: case 135: {
      chroma_format_idc = br.ue();
      if (chroma_format_idc > 3) return false;
      if (chroma_format_idc == 3) separate_colour_plane = br.bit();
      br.ue();   // bit_depth_luma_minus8
      br.ue();   // bit_depth_chroma_minus8
      br.bit();  // qpprime_y_zero_transform_bypass_flag
      if (br.bit()) {  // seq_scaling_matrix_present_flag
        int lists = chroma_format_idc != 3 ? 8 : 12;
        for (int i = 0; i < lists && br.ok(); i++)
          if (br.bit()) skip_scaling_list(br, i < 6 ? 16 : 64);
      }
      break;
    }
    default:
      break;
  }
  br.ue();  // log2_max_frame_num_minus4
  uint32_t poc_type = br.ue();
  if (poc_type == 0) {
    br.ue();  // log2_max_pic_order_cnt_lsb_minus4
  } else if (poc_type == 1) {
    br.bit();  // delta_pic_order_always_zero_flag
    br.se();   // offset_for_non_ref_pic
    br.se();   // offset_for_top_to_bottom_field
    uint32_t cycle = br.ue();
    if (cycle > 255) return false;
    for (uint32_t i = 0; i < cycle && br.ok(); i++) br.se();
  } else if (poc_type != 2) {
    return false;
  }
  br.ue();   // max_num_ref_frames
  br.bit();  // gaps_in_frame_num_value_allowed_flag
  uint32_t w_mbs = br.ue() + 1;
  uint32_t h_map_units = br.ue() + 1;
  uint32_t frame_mbs_only = br.bit();
  if (!frame_mbs_only) br.bit();  // mb_adaptive_frame_field_flag
  br.bit();                       // direct_8x8_inference_flag
  uint32_t crop_l = 0, crop_r = 0, crop_t = 0, crop_b = 0;
  if (br.bit()) {
    crop_l = br.ue();
    crop_r = br.ue();
    crop_t = br.ue();
    crop_b = br.ue();
  }
  if (!br.ok() || w_mbs > 1024 || h_map_units > 1024) return false;

  uint32_t chroma_array_type = separate_colour_plane ? 0 : chroma_format_idc;
  uint32_t crop_unit_x = 1, crop_unit_y = 2 - frame_mbs_only;
  if (chroma_array_type != 0) {
    uint32_t sub_w = (chroma_format_idc == 1 || chroma_format_idc == 2) ? 2 : 1;
    uint32_t sub_h = chroma_format_idc == 1 ? 2 : 1;
    crop_unit_x = sub_w;
    crop_unit_y = sub_h * (2 - frame_mbs_only);
  }
  uint64_t w = uint64_t(w_mbs) * 16;
  uint64_t h = uint64_t(2 - frame_mbs_only) * h_map_units * 16;
  uint64_t cx = uint64_t(crop_l + uint64_t(crop_r)) * crop_unit_x;
  uint64_t cy = uint64_t(crop_t + uint64_t(crop_b)) * crop_unit_y;
  if (cx >= w || cy >= h) return false;
  width = uint32_t(w - cx);
  height = uint32_t(h - cy);
  return true;
}

std::string fourcc_string(uint32_t f) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) {
    char c = char((f >> shift) & 0xff);
    s += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return s;
}

}  // namespace

bool inspect_video(const uint8_t* data, size_t len, VideoInfo& out) {
  out = VideoInfo{};
  if (!data || len < 1) return false;
  uint8_t b0 = data[0];

  if (b0 & 0x80) {
    out.enhanced = true;
    uint8_t ft = (b0 >> 4) & 0x07;
    uint8_t pt = b0 & 0x0f;
    size_t pos = 1;
    if (!skip_modex(data, len, pos, pt)) return false;
    if (ft < 1 || ft > 5) return false;
    out.frame_type = FrameType(ft);
    out.packet_type = pt;
    if (pt != uint8_t(ExVideoPacketType::Metadata) && ft == uint8_t(FrameType::Command)) {
      if (len - pos < 1) return false;  // the command byte; no FourCC, no body
      out.header_size = uint32_t(pos);
      out.valid = true;
      return true;
    }
    uint32_t track_fourcc = 0;
    if (pt == uint8_t(ExVideoPacketType::Multitrack)) {
      out.multitrack = true;
      if (!parse_multitrack(data, len, pos, pt, out.fourcc, track_fourcc,
                            uint8_t(ExVideoPacketType::Multitrack)))
        return false;
      out.packet_type = pt;
    } else {
      if (len - pos < 4) return false;
      out.fourcc = track_fourcc = load_fourcc(data + pos);
      pos += 4;
    }
    if (pt == uint8_t(ExVideoPacketType::CodedFrames) &&
        (track_fourcc == fourcc('a', 'v', 'c', '1') || track_fourcc == fourcc('h', 'v', 'c', '1'))) {
      if (len - pos < 3) return false;
      out.composition_time = load_si24(data + pos);
      pos += 3;
    }
    out.sequence_header = pt == uint8_t(ExVideoPacketType::SequenceStart) ||
                          pt == uint8_t(ExVideoPacketType::Mpeg2TsSequenceStart);
    out.end_of_sequence = pt == uint8_t(ExVideoPacketType::SequenceEnd);
    out.keyframe = ft == uint8_t(FrameType::Key) && (pt == uint8_t(ExVideoPacketType::CodedFrames) ||
                                                     pt == uint8_t(ExVideoPacketType::CodedFramesX));
    out.header_size = uint32_t(pos);
    out.valid = true;
    return true;
  }

  uint8_t ft = b0 >> 4;
  uint8_t codec = b0 & 0x0f;
  if (ft < 1 || ft > 5) return false;
  out.frame_type = FrameType(ft);
  out.codec_id = codec;
  if (codec == kVideoAvc) out.fourcc = fourcc('a', 'v', 'c', '1');
  if (codec == kVideoHevcLegacy) out.fourcc = fourcc('h', 'v', 'c', '1');
  if (ft == uint8_t(FrameType::Command)) {
    // Video info / command frame: a UI8 command follows instead of a picture.
    out.header_size = 1;
    out.valid = true;
    return true;
  }
  if (codec == kVideoAvc || codec == kVideoHevcLegacy) {
    if (len < 5) return false;
    out.packet_type = data[1];
    out.composition_time = load_si24(data + 2);
    out.sequence_header = data[1] == 0;
    out.end_of_sequence = data[1] == 2;
    out.keyframe = ft == uint8_t(FrameType::Key) && data[1] == 1;
    out.header_size = 5;
  } else {
    out.keyframe = ft == uint8_t(FrameType::Key);
    out.header_size = 1;
  }
  out.valid = true;
  return true;
}

bool inspect_audio(const uint8_t* data, size_t len, AudioInfo& out) {
  out = AudioInfo{};
  if (!data || len < 1) return false;
  uint8_t b0 = data[0];
  out.sound_format = b0 >> 4;

  if (out.sound_format == kAudioExHeader) {
    out.enhanced = true;
    uint8_t pt = b0 & 0x0f;
    size_t pos = 1;
    if (!skip_modex(data, len, pos, pt)) return false;
    if (pt == kExAudioMultitrack) {
      out.multitrack = true;
      uint32_t track_fourcc = 0;
      if (!parse_multitrack(data, len, pos, pt, out.fourcc, track_fourcc, kExAudioMultitrack))
        return false;
    } else {
      if (len - pos < 4) return false;
      out.fourcc = load_fourcc(data + pos);
      pos += 4;
    }
    out.packet_type = pt;
    out.sequence_header = pt == uint8_t(ExAudioPacketType::SequenceStart);
    out.header_size = uint32_t(pos);
    out.valid = true;
    return true;
  }

  out.sound_rate = (b0 >> 2) & 0x03;
  out.sound_size = (b0 >> 1) & 0x01;
  out.sound_type = b0 & 0x01;
  if (out.sound_format == kAudioAac) {
    if (len < 2) return false;
    out.fourcc = fourcc('m', 'p', '4', 'a');
    out.packet_type = data[1];
    out.sequence_header = data[1] == 0;
    out.header_size = 2;
  } else {
    out.header_size = 1;
  }
  out.valid = true;
  return true;
}

bool parse_aac_config(const uint8_t* data, size_t len, AacConfig& out) {
  static constexpr uint32_t kRates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                          22050, 16000, 12000, 11025, 8000,  7350};
  out = AacConfig{};
  if (!data || len < 2) return false;
  BitReader br(data, len);
  uint32_t aot = br.bits(5);
  if (aot == 31) aot = 32 + br.bits(6);
  uint32_t idx = br.bits(4);
  uint32_t rate = 0;
  if (idx == 15)
    rate = br.bits(24);
  else if (idx < 13)
    rate = kRates[idx];
  uint32_t channels = br.bits(4);
  if (!br.ok() || aot == 0 || rate == 0) return false;
  out.object_type = uint8_t(aot);
  out.sample_rate_index = uint8_t(idx);
  out.sample_rate = rate;
  out.channels = uint8_t(channels);
  return true;
}

bool parse_avc_config(const uint8_t* data, size_t len, AvcConfig& out) {
  out = AvcConfig{};
  if (!data || len < 7 || data[0] != 1) return false;
  out.profile = data[1];
  out.compatibility = data[2];
  out.level = data[3];
  out.nal_length_size = uint8_t((data[4] & 0x03) + 1);
  out.sps_count = data[5] & 0x1f;
  size_t pos = 6;
  const uint8_t* first_sps = nullptr;
  size_t first_sps_len = 0;
  for (unsigned i = 0; i < out.sps_count; i++) {
    if (len - pos < 2) return false;
    size_t n = (size_t(data[pos]) << 8) | data[pos + 1];
    pos += 2;
    if (len - pos < n) return false;
    if (i == 0) {
      first_sps = data + pos;
      first_sps_len = n;
    }
    pos += n;
  }
  if (len - pos < 1) return false;
  out.pps_count = data[pos++];
  for (unsigned i = 0; i < out.pps_count; i++) {
    if (len - pos < 2) return false;
    size_t n = (size_t(data[pos]) << 8) | data[pos + 1];
    pos += 2;
    if (len - pos < n) return false;
    pos += n;
  }
  uint32_t w = 0, h = 0;
  if (first_sps && parse_sps_size(first_sps, first_sps_len, w, h)) {
    out.width = w;
    out.height = h;
  }
  return true;
}

std::string video_codec_name(const VideoInfo& v) {
  if (v.enhanced) {
    switch (v.fourcc) {
      case fourcc('a', 'v', 'c', '1'): return "H264";
      case fourcc('h', 'v', 'c', '1'): return "HEVC";
      case fourcc('a', 'v', '0', '1'): return "AV1";
      case fourcc('v', 'p', '0', '9'): return "VP9";
      case fourcc('v', 'p', '0', '8'): return "VP8";
      case fourcc('v', 'v', 'c', '1'): return "VVC";
      case 0: return v.multitrack ? "multitrack" : "unknown(0)";
      default: return "unknown(" + fourcc_string(v.fourcc) + ")";
    }
  }
  switch (v.codec_id) {
    case kVideoH263: return "H263";
    case kVideoScreen: return "ScreenVideo";
    case kVideoVp6: return "VP6";
    case kVideoVp6Alpha: return "VP6A";
    case kVideoScreen2: return "ScreenVideo2";
    case kVideoAvc: return "H264";
    case kVideoHevcLegacy: return "HEVC";
    default: return "unknown(" + std::to_string(v.codec_id) + ")";
  }
}

std::string audio_codec_name(const AudioInfo& a) {
  if (a.enhanced) {
    switch (a.fourcc) {
      case fourcc('O', 'p', 'u', 's'): return "Opus";
      case fourcc('f', 'L', 'a', 'C'): return "FLAC";
      case fourcc('m', 'p', '4', 'a'): return "AAC";
      case fourcc('a', 'c', '-', '3'): return "AC3";
      case fourcc('e', 'c', '-', '3'): return "EAC3";
      case fourcc('.', 'm', 'p', '3'): return "MP3";
      case 0: return a.multitrack ? "multitrack" : "unknown(0)";
      default: return "unknown(" + fourcc_string(a.fourcc) + ")";
    }
  }
  switch (a.sound_format) {
    case kAudioPcm: case kAudioPcmLe: return "PCM";
    case kAudioAdpcm: return "ADPCM";
    case kAudioMp3: case kAudioMp3_8k: return "MP3";
    case kAudioNelly16: case kAudioNelly8: case kAudioNelly: return "Nellymoser";
    case kAudioG711A: return "G711A";
    case kAudioG711U: return "G711U";
    case kAudioAac: return "AAC";
    case kAudioSpeex: return "Speex";
    default: return "unknown(" + std::to_string(a.sound_format) + ")";
  }
}

}  // namespace grtmp::media
