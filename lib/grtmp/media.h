// Media inspection of audio/video message payloads (FLV tag data):
// sequence headers, keyframes, codec ids, AAC and AVC configuration,
// Enhanced RTMP FourCC headers, composition time.
#pragma once

#include <cstdint>
#include <string>

namespace grtmp::media {

constexpr uint32_t fourcc(char a, char b, char c, char d) {
  return (uint32_t(uint8_t(a)) << 24) | (uint32_t(uint8_t(b)) << 16) | (uint32_t(uint8_t(c)) << 8) |
         uint32_t(uint8_t(d));
}

// Legacy FLV video codec ids.
enum VideoCodecId : uint8_t {
  kVideoH263 = 2, kVideoScreen = 3, kVideoVp6 = 4, kVideoVp6Alpha = 5, kVideoScreen2 = 6,
  kVideoAvc = 7, kVideoHevcLegacy = 12,
};
// Legacy FLV sound formats.
enum AudioFormat : uint8_t {
  kAudioPcm = 0, kAudioAdpcm = 1, kAudioMp3 = 2, kAudioPcmLe = 3, kAudioNelly16 = 4,
  kAudioNelly8 = 5, kAudioNelly = 6, kAudioG711A = 7, kAudioG711U = 8, kAudioExHeader = 9,
  kAudioAac = 10, kAudioSpeex = 11, kAudioMp3_8k = 14,
};

enum class FrameType : uint8_t { Key = 1, Inter = 2, DisposableInter = 3, Generated = 4, Command = 5 };

// Enhanced RTMP video packet types.
enum class ExVideoPacketType : uint8_t {
  SequenceStart = 0, CodedFrames = 1, SequenceEnd = 2, CodedFramesX = 3, Metadata = 4,
  Mpeg2TsSequenceStart = 5, Multitrack = 6,
};
// Enhanced RTMP audio packet types.
enum class ExAudioPacketType : uint8_t { SequenceStart = 0, CodedFrames = 1, SequenceEnd = 2, MultichannelConfig = 4, Multitrack = 5 };

struct VideoInfo {
  bool valid = false;
  bool enhanced = false;          // IsExHeader bit
  FrameType frame_type = FrameType::Inter;
  uint8_t codec_id = 0;           // legacy codec id (0 when enhanced)
  uint32_t fourcc = 0;            // enhanced: 'avc1', 'hvc1', 'av01', 'vp09'...; legacy AVC: 'avc1'
  uint8_t packet_type = 0;        // AVC packet type or ExVideoPacketType
  bool multitrack = false;
  bool keyframe = false;          // frame type Key and not a sequence header / command
  bool sequence_header = false;   // AVC packet type 0 / SequenceStart
  bool end_of_sequence = false;
  int32_t composition_time = 0;   // signed 24-bit, ms
  uint32_t header_size = 0;       // bytes before the codec payload
};
bool inspect_video(const uint8_t* data, size_t len, VideoInfo& out);

struct AudioInfo {
  bool valid = false;
  bool enhanced = false;          // sound format 9 (ExHeader)
  uint8_t sound_format = 0;
  uint8_t sound_rate = 0;         // 0..3 (5.5/11/22/44 kHz)
  uint8_t sound_size = 0;         // 0 = 8 bit, 1 = 16 bit
  uint8_t sound_type = 0;         // 0 mono, 1 stereo
  uint32_t fourcc = 0;            // enhanced: 'Opus', 'fLaC', 'mp4a', 'ac-3', 'ec-3', '.mp3'; AAC: 'mp4a'
  uint8_t packet_type = 0;        // AAC packet type or ExAudioPacketType
  bool sequence_header = false;   // AAC packet type 0 / SequenceStart
  bool multitrack = false;
  uint32_t header_size = 0;
};
bool inspect_audio(const uint8_t* data, size_t len, AudioInfo& out);

struct AacConfig {
  uint8_t object_type = 0;
  uint8_t sample_rate_index = 0;
  uint32_t sample_rate = 0;
  uint8_t channels = 0;
};
// AudioSpecificConfig bytes (after the 2-byte FLV AAC header).
bool parse_aac_config(const uint8_t* data, size_t len, AacConfig& out);

struct AvcConfig {
  uint8_t profile = 0;
  uint8_t compatibility = 0;
  uint8_t level = 0;
  uint8_t nal_length_size = 0;
  uint8_t sps_count = 0;
  uint8_t pps_count = 0;
  uint32_t width = 0;   // from the first SPS (0 if it could not be parsed)
  uint32_t height = 0;
};
// AVCDecoderConfigurationRecord bytes (after the 5-byte FLV AVC header).
bool parse_avc_config(const uint8_t* data, size_t len, AvcConfig& out);

// Human-readable codec names for logs and stats: "H264", "HEVC", "AV1",
// "VP9", "AAC", "MP3", "Opus", ... ("unknown(N)" otherwise).
std::string video_codec_name(const VideoInfo& v);
std::string audio_codec_name(const AudioInfo& a);

}  // namespace grtmp::media
