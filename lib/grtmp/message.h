// One RTMP message as it travels between chunk reader, session, registry,
// chunk writer and the GStreamer elements: a header and a shared payload.
#pragma once

#include <cstdint>

#include "grtmp/bytes.h"

namespace grtmp {

enum MessageType : uint8_t {
  kMsgSetChunkSize = 1,
  kMsgAbort = 2,
  kMsgAck = 3,
  kMsgUserControl = 4,
  kMsgWindowAckSize = 5,
  kMsgSetPeerBandwidth = 6,
  kMsgAudio = 8,
  kMsgVideo = 9,
  kMsgDataAmf3 = 15,
  kMsgSharedObjectAmf3 = 16,
  kMsgCommandAmf3 = 17,
  kMsgDataAmf0 = 18,
  kMsgSharedObjectAmf0 = 19,
  kMsgCommandAmf0 = 20,
  kMsgAggregate = 22,
};

// Conventional chunk stream ids (what FFmpeg, OBS and nginx-rtmp use).
enum ChunkStreamId : uint32_t {
  kCsidControl = 2,
  kCsidCommand = 3,
  kCsidData = 5,   // onStatus / metadata on a media stream (nginx uses 5 for amf)
  kCsidAudio = 6,
  kCsidVideo = 7,
};

struct Message {
  uint8_t type = 0;
  uint32_t timestamp = 0;   // absolute, 32-bit, wraps
  uint32_t stream_id = 0;   // message stream id
  uint32_t csid = kCsidCommand;
  Bytes payload;
};

const char* message_type_name(uint8_t type);

}  // namespace grtmp
