// Protocol control messages (types 1-6) and user control events (type 4),
// encoded as Messages on chunk stream 2, message stream 0.
#pragma once

#include <glib.h>

#include <cstdint>

#include "grtmp/message.h"

namespace grtmp::control {

enum class UserControlEvent : uint16_t {
  StreamBegin = 0,
  StreamEOF = 1,
  StreamDry = 2,
  SetBufferLength = 3,
  StreamIsRecorded = 4,
  PingRequest = 6,
  PingResponse = 7,
};

enum class PeerBandwidthLimit : uint8_t { Hard = 0, Soft = 1, Dynamic = 2 };

struct UserControl {
  UserControlEvent event = UserControlEvent::StreamBegin;
  uint32_t value = 0;          // stream id, or timestamp for Ping*
  uint32_t buffer_length = 0;  // SetBufferLength only (ms)
};

Message set_chunk_size(uint32_t size);
Message abort(uint32_t csid);
Message acknowledgement(uint32_t sequence_number);
Message window_ack_size(uint32_t size);
Message set_peer_bandwidth(uint32_t size, PeerBandwidthLimit limit);
Message user_control(const UserControl& uc);
inline Message stream_begin(uint32_t stream_id) { return user_control({UserControlEvent::StreamBegin, stream_id}); }
inline Message stream_eof(uint32_t stream_id) { return user_control({UserControlEvent::StreamEOF, stream_id}); }
inline Message stream_dry(uint32_t stream_id) { return user_control({UserControlEvent::StreamDry, stream_id}); }
inline Message stream_is_recorded(uint32_t stream_id) { return user_control({UserControlEvent::StreamIsRecorded, stream_id}); }
inline Message ping_request(uint32_t ts) { return user_control({UserControlEvent::PingRequest, ts}); }
inline Message ping_response(uint32_t ts) { return user_control({UserControlEvent::PingResponse, ts}); }

// Decoders: false + GRTMP_ERROR_MALFORMED when the payload is short.
// Set Chunk Size: the top bit must be 0 and the value >= 1.
bool parse_set_chunk_size(const Message& m, uint32_t& size, GError** error);
bool parse_abort(const Message& m, uint32_t& csid, GError** error);
bool parse_acknowledgement(const Message& m, uint32_t& sequence_number, GError** error);
bool parse_window_ack_size(const Message& m, uint32_t& size, GError** error);
bool parse_set_peer_bandwidth(const Message& m, uint32_t& size, PeerBandwidthLimit& limit, GError** error);
bool parse_user_control(const Message& m, UserControl& out, GError** error);

const char* user_control_event_name(UserControlEvent e);

// Acknowledgement bookkeeping: tells when an Acknowledgement is due given a
// running byte count, with the 32-bit sequence wrap handled.
class AckTracker {
 public:
  void set_window(uint32_t window) { window_ = window; }
  uint32_t window() const { return window_; }
  // Call with the total bytes received so far (64-bit, never wraps).
  // Returns true and the sequence number (low 32 bits) when an ack is due.
  bool on_bytes(uint64_t total_received, uint32_t& sequence_number);

 private:
  uint32_t window_ = 0;  // 0 = peer never asked: no acks
  uint64_t last_acked_ = 0;
};

}  // namespace grtmp::control
