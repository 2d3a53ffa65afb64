// The RTMP handshake as incremental state machines for both roles.
//
// Server: reads C0 (version checked before C1 arrives), C1; answers
// S0+S1+S2 at once; reads C2. A C1 carrying an HMAC-SHA256 digest (either
// scheme, "Genuine Adobe Flash Player 001" key) gets a digest S1/S2;
// otherwise the simple form (S2 echoes C1).
// Client: sends C0+C1 (digest or simple), reads S0/S1/S2, answers C2.
#pragma once

#include <glib.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace grtmp {

constexpr size_t kHandshakeSize = 1536;
constexpr uint8_t kRtmpVersion = 3;

class Handshake {
 public:
  enum class Role { Server, Client };
  enum class Status { NeedMore, Done, Error };
  enum class Scheme { None = -1, Scheme0 = 0, Scheme1 = 1 };  // digest offset scheme

  struct Options {
    // Client: send a digest C1 (scheme 1 like Flash Player). Server: answer
    // digest with digest. When false the simple handshake is used.
    bool digest = true;
    Scheme client_scheme = Scheme::Scheme1;
    // Version field of C1/S1 (bytes 4-7). Non-zero; some CDNs refuse zero.
    uint32_t version_field = 0x0d0e0a0d;
    uint32_t epoch = 0;  // time field of C1/S1
    // Random source for the 1528 random bytes; default uses g_random.
    std::function<void(uint8_t*, size_t)> random;
  };

  Handshake(Role role, Options options);
  explicit Handshake(Role role) : Handshake(role, Options{}) {}

  // Client only: the C0+C1 bytes to send first.
  std::vector<uint8_t> start();

  // Feeds received bytes; `consumed` tells how many belonged to the
  // handshake (the rest, after Done, are chunk stream bytes). Bytes to send
  // to the peer are appended to `out`.
  Status feed(const uint8_t* data, size_t len, size_t& consumed, std::vector<uint8_t>& out,
              GError** error);

  bool done() const;
  Role role() const { return role_; }
  // Which scheme the peer's C1/S1 digest used (None: simple handshake).
  Scheme peer_scheme() const { return peer_scheme_; }
  uint8_t peer_version() const { return peer_version_; }
  // After Done: whether the peer's C2/S2 answered our C1/S1 correctly (the
  // echo, or the digest signature). Informational only: many peers send
  // garbage there and the handshake does not fail on it.
  bool peer_response_valid() const { return peer_response_valid_; }

  // Exposed for tests and golden vectors.
  static bool find_digest(const uint8_t* packet, const uint8_t* key, size_t key_len, Scheme& scheme);
  static size_t digest_offset(const uint8_t* packet, Scheme scheme);

 private:
  Role role_;
  Options options_;
  int state_ = 0;
  Scheme peer_scheme_ = Scheme::None;
  uint8_t peer_version_ = 0;
  std::vector<uint8_t> in_;      // staged peer bytes
  std::vector<uint8_t> own_c1s1_; // what we sent as C1 (client) or S1 (server)
  std::vector<uint8_t> own_digest_;   // digest embedded in own_c1s1_ (empty: simple)
  std::vector<uint8_t> peer_digest_;  // digest found in the peer's C1/S1
  bool peer_response_valid_ = false;

  void fill_random(uint8_t* p, size_t n);
  std::vector<uint8_t> make_packet1(bool digest, Scheme scheme, const uint8_t* key, size_t key_len);
  void on_c1(std::vector<uint8_t>& out);
  void on_s1(std::vector<uint8_t>& out);
  void on_packet2();
};

}  // namespace grtmp
