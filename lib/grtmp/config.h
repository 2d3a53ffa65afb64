// Server policies: every limit and timeout with its default, documented in
// docs/configuration.md. One struct shared by the library, the elements'
// properties and the launcher's flags.
#pragma once

#include <glib.h>

#include <cstdint>
#include <string>

#include <memory>

#include "grtmp/amf0.h"
#include "grtmp/auth.h"

namespace grtmp {

enum class MissingStreamPolicy { Wait, NotFound };     // play on a key with no publisher
enum class PublishConflictPolicy { Reject, TakeOver };  // publish on a busy key

struct ServerConfig {
  // Where to listen. Port 0 = ephemeral (read it back with Server::port()).
  std::string host = "127.0.0.1";
  uint16_t port = 1935;

  // Event loop threads; 0 = one per core. Ignored when main_context is set.
  uint32_t loop_threads = 0;
  // When set, everything runs on this context (the caller iterates it).
  GMainContext* main_context = nullptr;

  // Wire parameters the server announces.
  uint32_t chunk_size = 4096;             // Set Chunk Size sent to every peer
  uint32_t window_ack_size = 2500000;     // Window Acknowledgement Size sent
  uint32_t peer_bandwidth = 2500000;      // Set Peer Bandwidth sent (dynamic)

  // Timeouts (milliseconds; 0 disables).
  uint32_t handshake_timeout_ms = 10000;  // TCP accept -> handshake done
  uint32_t idle_timeout_ms = 60000;       // no byte received from a connection
  uint32_t publisher_timeout_ms = 15000;  // publishing, but no media message
  uint32_t player_stall_timeout_ms = 10000;  // player's socket accepted no byte while data waits

  // Limits.
  uint32_t max_connections = 10000;
  uint32_t max_chunk_size = 65536;        // largest Set Chunk Size accepted from a peer
  uint32_t max_message_size = 16u << 20;  // largest message length accepted
  amf0::Limits amf_limits;

  // GOP cache for instant late join.
  bool gop_cache = true;
  uint32_t gop_cache_max_messages = 2048;
  uint64_t gop_cache_max_bytes = 32u << 20;
  uint32_t gop_cache_max_duration_ms = 15000;

  // Merged writes: a woken player is written at most once per this many
  // milliseconds, so one sendmsg() carries several messages (SRS calls
  // this "merged write"). 0 writes at every wakeup. Joins are not delayed:
  // a new player's catch-up data is written at once.
  uint32_t output_batch_ms = 40;

  // Per-player queue: past this many queued bytes the player drops to the
  // next keyframe (drops are counted).
  uint64_t player_queue_max_bytes = 8u << 20;
  // A player that has not caught up with live for this long is closed
  // ("player lagging N ms behind live"). Caught up means its queue and its
  // unsent output were both empty and nothing was dropped for the last 2 s
  // (or half this limit if shorter):
  // a player that keeps overflowing (say, reading at half speed) drains
  // right after each drop to the next keyframe but never catches up, so it
  // is closed too. 0 disables the check.
  uint32_t player_max_lag_ms = 30000;

  MissingStreamPolicy missing_stream = MissingStreamPolicy::Wait;
  PublishConflictPolicy publish_conflict = PublishConflictPolicy::Reject;
  // After the publisher leaves, players stay connected waiting for a
  // republish (true), or are sent Play.Stop and closed (false).
  bool keep_players_on_unpublish = true;

  // RTMPS: a TLS listener beside the plain one (TLS 1.2 minimum, GIO TLS
  // through glib-networking). A certificate that cannot be loaded makes
  // start() fail: there is never a silent fallback to plain RTMP.
  bool tls = false;
  std::string tls_host;           // empty: same as host
  uint16_t tls_port = 1936;       // 0 = ephemeral (Server::tls_port())
  std::string tls_cert_file;      // PEM certificate (chain)
  std::string tls_key_file;       // PEM private key
  bool plain = true;              // false: RTMPS only

  // Authorization of connect/publish/play (null: everything allowed).
  std::shared_ptr<Authorizer> authorizer;

  // Access limits (0 = unlimited).
  uint32_t max_connections_per_ip = 0;
  uint32_t max_streams = 0;              // live published streams
  uint32_t max_players_per_stream = 0;

  // Stable identity of a listening address (for sharing servers in-process):
  // IP literals in canonical form ("[0:0::1]" and "::1" are "[::1]"), an
  // empty host as "0.0.0.0", host names lowercased. Names are not resolved:
  // "localhost" and "127.0.0.1" are still two keys.
  std::string address_key() const;
};

}  // namespace grtmp
