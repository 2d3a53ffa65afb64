// An RTMP client: connect, then publish or play. Blocking calls with
// timeouts and a GCancellable, meant for a streaming thread (the
// elements) or a test. Control traffic (acks, pings, chunk size) is
// handled inside send() / receive().
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "grtmp/message.h"
#include "grtmp/url.h"

namespace grtmp {

struct ClientOptions {
  // Connect, handshake, each command's answer, each receive() and each
  // blocked write. 0 waits forever. Socket-level write and TCP connect
  // timeouts have one-second granularity (rounded up).
  uint32_t timeout_ms = 10000;
  uint32_t chunk_size = 4096;        // Set Chunk Size we send after connect
  uint32_t window_ack_size = 2500000;
  bool digest_handshake = true;      // send a digest C1 (Flash-style)
  std::string flash_ver = "FMLE/3.0 (compatible; grtmp)";
  // rtmps:// certificate validation flags (G_TLS_CERTIFICATE_VALIDATE_ALL by default).
  GTlsCertificateFlags tls_validation_flags = G_TLS_CERTIFICATE_VALIDATE_ALL;
  uint32_t max_message_size = 16u << 20;
};

class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // TCP (or TLS) connect, handshake, connect command and its _result.
  // Errors: G_IO_ERROR_* for the network, GRTMP_ERROR_REFUSED with the
  // server's code in the message for an _error answer, GRTMP_ERROR_TIMEOUT.
  bool connect(const Url& url, GCancellable* cancellable, GError** error);

  // releaseStream, FCPublish, createStream, publish; waits for
  // NetStream.Publish.Start. GRTMP_ERROR_BAD_NAME / _UNAUTHORIZED / _REFUSED.
  bool publish(GCancellable* cancellable, GError** error);
  // createStream, play; waits for NetStream.Play.Start.
  // GRTMP_ERROR_NOT_FOUND for StreamNotFound, _UNAUTHORIZED, _REFUSED.
  bool play(GCancellable* cancellable, GError** error);

  // Publishing: sends an audio/video/data message on our stream (the
  // stream id and chunk stream are set here; data "onMetaData" is wrapped
  // in @setDataFrame). Also reads and handles pending server messages;
  // a server onStatus error becomes an error here.
  bool send(const Message& m, GCancellable* cancellable, GError** error);

  // Playing: the next audio/video/data message. Control messages and
  // onStatus are handled inside; Play.UnpublishNotify / StreamEOF are
  // reported through last_status() (the last onStatus code seen, or
  // "StreamEOF" after that user control event on our stream) and keep
  // waiting (until timeout_ms: GRTMP_ERROR_TIMEOUT). Data messages come as
  // type 18 ("onMetaData", {...}; type 15 is converted, |RtmpSampleAccess
  // dropped); aggregates are split. GRTMP_ERROR_CLOSED at end.
  bool receive(Message& out, GCancellable* cancellable, GError** error);
  const std::string& last_status() const;

  // FCUnpublish + deleteStream (publishing) or deleteStream (playing),
  // then closes the socket. Safe to call more than once.
  void close();

  bool connected() const;
  uint32_t stream_id() const;
  uint64_t bytes_sent() const;
  uint64_t bytes_received() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Splits an Aggregate (type 22) message into its sub-messages (FLV-tag
// framing: 11-byte header, data, 4-byte back pointer). Sub-message
// timestamps are rebased: m.timestamp + (sub_ts - first_sub_ts). Payloads
// share m's buffer. Appends to `out` only on success; GRTMP_ERROR_MALFORMED
// for a truncated sub-message.
bool split_aggregate(const Message& m, std::vector<Message>& out, GError** error);

}  // namespace grtmp
