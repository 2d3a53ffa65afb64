// An RTMP client: connect, then publish or play. Blocking calls with
// timeouts and a GCancellable, meant for a streaming thread (the
// elements) or a test. Control traffic (acks, pings, chunk size) is
// handled inside send() / receive().
#pragma once

#include <gio/gio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "grtmp/message.h"
#include "grtmp/url.h"

namespace grtmp {

struct ClientOptions {
  uint32_t timeout_ms = 10000;       // connect, handshake, each command's answer
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
  // reported through `status` (last status code seen) and keep waiting
  // unless `return_on_status` is set. GRTMP_ERROR_CLOSED at end.
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

}  // namespace grtmp
