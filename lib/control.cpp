// Protocol control messages (RTMP 1.0 spec 5.4: types 1, 2, 3, 5, 6) and
// user control events (spec 6.2 / 7.1.7: type 4). All are sent on chunk
// stream 2, message stream 0, timestamp 0.
//
// Decoders are lenient about trailing bytes (some peers pad) and strict
// about short payloads. An unknown user control event still parses: its
// 4-byte value is read when present (Flash's BufferEmpty / BufferReady
// carry a stream id), and the caller decides what to do with it.
#include "grtmp/control.h"

#include "grtmp/bytes.h"
#include "grtmp/error.h"

namespace grtmp::control {

namespace {

Message make(uint8_t type, const ByteWriter& w) {
  Message m;
  m.type = type;
  m.timestamp = 0;
  m.stream_id = 0;
  m.csid = kCsidControl;
  m.payload = w.to_bytes();
  return m;
}

Message make_u32(uint8_t type, uint32_t v) {
  ByteWriter w;
  w.u32(v);
  return make(type, w);
}

bool check_type(const Message& m, uint8_t type, GError** error) {
  if (m.type == type) return true;
  g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL, "expected %s (type %u), got %s (type %u)",
              message_type_name(type), type, message_type_name(m.type), m.type);
  return false;
}

bool parse_u32(const Message& m, uint8_t type, uint32_t& v, GError** error) {
  if (!check_type(m, type, error)) return false;
  ByteReader r(m.payload.data(), m.payload.size());
  if (!r.u32(v)) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "%s: payload of %zu bytes, need 4",
                message_type_name(type), m.payload.size());
    return false;
  }
  return true;
}

}  // namespace

Message set_chunk_size(uint32_t size) { return make_u32(kMsgSetChunkSize, size); }
Message abort(uint32_t csid) { return make_u32(kMsgAbort, csid); }
Message acknowledgement(uint32_t sequence_number) { return make_u32(kMsgAck, sequence_number); }
Message window_ack_size(uint32_t size) { return make_u32(kMsgWindowAckSize, size); }

Message set_peer_bandwidth(uint32_t size, PeerBandwidthLimit limit) {
  ByteWriter w;
  w.u32(size);
  w.u8(static_cast<uint8_t>(limit));
  return make(kMsgSetPeerBandwidth, w);
}

Message user_control(const UserControl& uc) {
  ByteWriter w;
  w.u16(static_cast<uint16_t>(uc.event));
  w.u32(uc.value);
  if (uc.event == UserControlEvent::SetBufferLength) w.u32(uc.buffer_length);
  return make(kMsgUserControl, w);
}

bool parse_set_chunk_size(const Message& m, uint32_t& size, GError** error) {
  uint32_t v = 0;
  if (!parse_u32(m, kMsgSetChunkSize, v, error)) return false;
  if (v == 0 || (v & 0x80000000u)) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                "Set Chunk Size %u (0x%08x) is invalid: must be 1 to 2^31-1", v, v);
    return false;
  }
  size = v;
  return true;
}

bool parse_abort(const Message& m, uint32_t& csid, GError** error) {
  return parse_u32(m, kMsgAbort, csid, error);
}

bool parse_acknowledgement(const Message& m, uint32_t& sequence_number, GError** error) {
  return parse_u32(m, kMsgAck, sequence_number, error);
}

bool parse_window_ack_size(const Message& m, uint32_t& size, GError** error) {
  return parse_u32(m, kMsgWindowAckSize, size, error);
}

bool parse_set_peer_bandwidth(const Message& m, uint32_t& size, PeerBandwidthLimit& limit,
                              GError** error) {
  if (!check_type(m, kMsgSetPeerBandwidth, error)) return false;
  ByteReader r(m.payload.data(), m.payload.size());
  uint32_t s = 0;
  uint8_t l = 0;
  if (!r.u32(s) || !r.u8(l)) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                "SetPeerBandwidth: payload of %zu bytes, need 5", m.payload.size());
    return false;
  }
  if (l > static_cast<uint8_t>(PeerBandwidthLimit::Dynamic)) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                "SetPeerBandwidth: limit type %u is not 0 (hard), 1 (soft) or 2 (dynamic)", l);
    return false;
  }
  size = s;
  limit = static_cast<PeerBandwidthLimit>(l);
  return true;
}

bool parse_user_control(const Message& m, UserControl& out, GError** error) {
  if (!check_type(m, kMsgUserControl, error)) return false;
  ByteReader r(m.payload.data(), m.payload.size());
  uint16_t ev = 0;
  if (!r.u16(ev)) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                "UserControl: payload of %zu bytes, need at least 2", m.payload.size());
    return false;
  }
  UserControl uc;
  uc.event = static_cast<UserControlEvent>(ev);
  switch (uc.event) {
    case UserControlEvent::StreamBegin:
    case UserControlEvent::StreamEOF:
    case UserControlEvent::StreamDry:
    case UserControlEvent::StreamIsRecorded:
    case UserControlEvent::PingRequest:
    case UserControlEvent::PingResponse:
      if (!r.u32(uc.value)) {
        g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                    "UserControl %s: payload of %zu bytes, need 6", user_control_event_name(uc.event),
                    m.payload.size());
        return false;
      }
      break;
    case UserControlEvent::SetBufferLength:
      if (!r.u32(uc.value) || !r.u32(uc.buffer_length)) {
        g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                    "UserControl SetBufferLength: payload of %zu bytes, need 10", m.payload.size());
        return false;
      }
      break;
    default:
      // Unknown event (e.g. SWFVerify 26/27, BufferEmpty 31, BufferReady 32):
      // take the 4-byte value if there is one.
      if (r.remaining() >= 4) r.u32(uc.value);
      break;
  }
  out = uc;
  return true;
}

const char* user_control_event_name(UserControlEvent e) {
  switch (e) {
    case UserControlEvent::StreamBegin: return "StreamBegin";
    case UserControlEvent::StreamEOF: return "StreamEOF";
    case UserControlEvent::StreamDry: return "StreamDry";
    case UserControlEvent::SetBufferLength: return "SetBufferLength";
    case UserControlEvent::StreamIsRecorded: return "StreamIsRecorded";
    case UserControlEvent::PingRequest: return "PingRequest";
    case UserControlEvent::PingResponse: return "PingResponse";
  }
  return "Unknown";
}

// nginx-rtmp and FFmpeg both ack when (received - last acked) reaches the
// window and then remember the current total, so one big read that crosses
// several windows yields one ack carrying the current total. The sequence
// number is the total modulo 2^32.
bool AckTracker::on_bytes(uint64_t total_received, uint32_t& sequence_number) {
  if (window_ == 0) return false;
  if (total_received < last_acked_) {
    last_acked_ = total_received;  // counter was reset by the caller
    return false;
  }
  if (total_received - last_acked_ < window_) return false;
  last_acked_ = total_received;
  sequence_number = static_cast<uint32_t>(total_received);
  return true;
}

}  // namespace grtmp::control
