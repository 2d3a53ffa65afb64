// RTMP handshake state machines (see grtmp/handshake.h).
//
// Digest ("complex", Flash Player 9+) handshake, as widely deployed:
//  - C1/S1: time(4) version(4) random(1528) with a 32-byte HMAC-SHA256
//    digest at an offset derived from four bytes of the packet itself
//    (scheme 0: bytes 8..11, scheme 1: bytes 772..775). The digest covers the
//    packet minus the digest; the key is the public prefix of the peer's key
//    ("Genuine Adobe Flash Player 001" for C1, "... Media Server 001" for S1).
//  - S2/C2: 1504 random bytes + HMAC(HMAC(full key, peer digest), first 1504).
//    The full keys are the text followed by a 32-byte public constant.
#include "grtmp/handshake.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "grtmp/bytes.h"
#include "grtmp/error.h"

namespace grtmp {
namespace {

constexpr size_t kDigestLen = 32;
constexpr size_t kSigOffset = kHandshakeSize - kDigestLen;  // 1504

// The 32-byte constant that follows the text part in both full keys.
constexpr uint8_t kKeyTail[32] = {
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
};

constexpr char kFpText[] = "Genuine Adobe Flash Player 001";         // 30 bytes
constexpr char kFmsText[] = "Genuine Adobe Flash Media Server 001";  // 36 bytes
constexpr size_t kFpTextLen = sizeof(kFpText) - 1;
constexpr size_t kFmsTextLen = sizeof(kFmsText) - 1;
static_assert(kFpTextLen == 30 && kFmsTextLen == 36);

template <size_t N>
constexpr std::array<uint8_t, N + 32> full_key(const char (&text)[N + 1]) {
  std::array<uint8_t, N + 32> k{};
  for (size_t i = 0; i < N; i++) k[i] = uint8_t(text[i]);
  for (size_t i = 0; i < 32; i++) k[N + i] = kKeyTail[i];
  return k;
}

constexpr auto kFpKey = full_key<kFpTextLen>(kFpText);     // 62 bytes
constexpr auto kFmsKey = full_key<kFmsTextLen>(kFmsText);  // 68 bytes

using Digest = std::array<uint8_t, kDigestLen>;

// HMAC-SHA256 over up to two byte ranges.
Digest hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* a, size_t a_len,
                   const uint8_t* b = nullptr, size_t b_len = 0) {
  GHmac* h = g_hmac_new(G_CHECKSUM_SHA256, key, key_len);
  if (a_len) g_hmac_update(h, a, gssize(a_len));
  if (b_len) g_hmac_update(h, b, gssize(b_len));
  Digest d{};
  gsize n = d.size();
  g_hmac_get_digest(h, d.data(), &n);
  g_hmac_unref(h);
  return d;
}

// Digest of a C1/S1 packet with the 32 digest bytes at `off` left out.
Digest packet_digest(const uint8_t* p, size_t off, const uint8_t* key, size_t key_len) {
  return hmac_sha256(key, key_len, p, off, p + off + kDigestLen, kHandshakeSize - off - kDigestLen);
}

// Signature of an S2/C2 packet: HMAC(HMAC(full_key, peer_digest), p[0..1504]).
Digest response_signature(const uint8_t* p, const uint8_t* full, size_t full_len,
                          const uint8_t* peer_digest) {
  Digest k = hmac_sha256(full, full_len, peer_digest, kDigestLen);
  return hmac_sha256(k.data(), k.size(), p, kSigOffset);
}

bool refuse_version(uint8_t v, GError** error) {
  if (v == kRtmpVersion) return false;
  if (v == 6 || v == 8 || v == 9)
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_UNSUPPORTED,
                "RTMPE/encrypted handshake not supported (version byte %u)", v);
  else
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "unexpected RTMP version byte %u", v);
  return true;
}

enum State : int {
  kNotStarted = 0,  // client before start()
  kWaitVersion,     // C0 / S0
  kWaitPacket1,     // C1 / S1
  kWaitPacket2,     // C2 / S2
  kDone,
  kFailed,
};

}  // namespace

Handshake::Handshake(Role role, Options options) : role_(role), options_(std::move(options)) {
  state_ = role_ == Role::Server ? kWaitVersion : kNotStarted;
  in_.reserve(kHandshakeSize);
}

size_t Handshake::digest_offset(const uint8_t* packet, Scheme scheme) {
  switch (scheme) {
    case Scheme::Scheme0:
      return (size_t(packet[8]) + packet[9] + packet[10] + packet[11]) % 728 + 12;
    case Scheme::Scheme1:
      return (size_t(packet[772]) + packet[773] + packet[774] + packet[775]) % 728 + 776;
    default:
      return 0;
  }
}

bool Handshake::find_digest(const uint8_t* packet, const uint8_t* key, size_t key_len, Scheme& scheme) {
  for (Scheme s : {Scheme::Scheme1, Scheme::Scheme0}) {
    size_t off = digest_offset(packet, s);
    Digest d = packet_digest(packet, off, key, key_len);
    if (std::memcmp(d.data(), packet + off, kDigestLen) == 0) {
      scheme = s;
      return true;
    }
  }
  scheme = Scheme::None;
  return false;
}

void Handshake::fill_random(uint8_t* p, size_t n) {
  if (options_.random) {
    options_.random(p, n);
    return;
  }
  while (n >= 4) {
    store_u32(p, g_random_int());
    p += 4;
    n -= 4;
  }
  if (n) {
    uint8_t tmp[4];
    store_u32(tmp, g_random_int());
    std::memcpy(p, tmp, n);
  }
}

std::vector<uint8_t> Handshake::make_packet1(bool digest, Scheme scheme, const uint8_t* key,
                                             size_t key_len) {
  std::vector<uint8_t> p(kHandshakeSize);
  store_u32(p.data(), options_.epoch);
  store_u32(p.data() + 4, options_.version_field);
  fill_random(p.data() + 8, kHandshakeSize - 8);
  if (digest) {
    size_t off = digest_offset(p.data(), scheme);
    Digest d = packet_digest(p.data(), off, key, key_len);
    std::memcpy(p.data() + off, d.data(), kDigestLen);
    own_digest_.assign(d.begin(), d.end());
  } else {
    own_digest_.clear();
  }
  return p;
}

std::vector<uint8_t> Handshake::start() {
  if (role_ != Role::Client || state_ != kNotStarted) return {};
  std::vector<uint8_t> out;
  out.reserve(1 + kHandshakeSize);
  out.push_back(kRtmpVersion);
  Scheme scheme = options_.client_scheme == Scheme::None ? Scheme::Scheme1 : options_.client_scheme;
  own_c1s1_ = make_packet1(options_.digest, scheme, reinterpret_cast<const uint8_t*>(kFpText), kFpTextLen);
  out.insert(out.end(), own_c1s1_.begin(), own_c1s1_.end());
  state_ = kWaitVersion;
  return out;
}

bool Handshake::done() const { return state_ == kDone; }

// Server: C1 complete; answer S0 + S1 + S2.
void Handshake::on_c1(std::vector<uint8_t>& out) {
  const uint8_t* c1 = in_.data();
  Scheme scheme = Scheme::None;
  bool digest = options_.digest &&
                find_digest(c1, reinterpret_cast<const uint8_t*>(kFpText), kFpTextLen, scheme);
  peer_scheme_ = scheme;
  if (digest) peer_digest_.assign(c1 + digest_offset(c1, scheme), c1 + digest_offset(c1, scheme) + kDigestLen);

  out.reserve(out.size() + 1 + 2 * kHandshakeSize);
  out.push_back(kRtmpVersion);
  own_c1s1_ = make_packet1(digest, scheme, kFmsKey.data(), kFmsTextLen);
  out.insert(out.end(), own_c1s1_.begin(), own_c1s1_.end());

  if (digest) {
    size_t at = out.size();
    out.resize(at + kHandshakeSize);
    uint8_t* s2 = out.data() + at;
    fill_random(s2, kHandshakeSize);
    Digest sig = response_signature(s2, kFmsKey.data(), kFmsKey.size(), peer_digest_.data());
    std::memcpy(s2 + kSigOffset, sig.data(), kDigestLen);
  } else {
    out.insert(out.end(), in_.begin(), in_.end());  // S2 echoes C1
  }
}

// Client: S1 complete; answer C2.
void Handshake::on_s1(std::vector<uint8_t>& out) {
  const uint8_t* s1 = in_.data();
  Scheme scheme = Scheme::None;
  bool digest = options_.digest && find_digest(s1, kFmsKey.data(), kFmsTextLen, scheme);
  peer_scheme_ = scheme;
  if (digest) {
    size_t off = digest_offset(s1, scheme);
    peer_digest_.assign(s1 + off, s1 + off + kDigestLen);
    size_t at = out.size();
    out.resize(at + kHandshakeSize);
    uint8_t* c2 = out.data() + at;
    fill_random(c2, kHandshakeSize);
    Digest sig = response_signature(c2, kFpKey.data(), kFpKey.size(), peer_digest_.data());
    std::memcpy(c2 + kSigOffset, sig.data(), kDigestLen);
  } else {
    out.insert(out.end(), in_.begin(), in_.end());  // C2 echoes S1
  }
}

// C2 (server) / S2 (client) complete: check it answers what we sent, by
// echo or (digest handshake) by signature. Many peers send garbage here, so
// the result is informational only.
void Handshake::on_packet2() {
  const uint8_t* p = in_.data();
  peer_response_valid_ = own_c1s1_.size() == kHandshakeSize &&
                         std::memcmp(own_c1s1_.data(), p, kHandshakeSize) == 0;
  if (!peer_response_valid_ && !own_digest_.empty() && peer_scheme_ != Scheme::None) {
    // Server: the client signs with the FP key over our S1 digest; client:
    // the server signs with the FMS key over our C1 digest.
    const uint8_t* k = role_ == Role::Server ? kFpKey.data() : kFmsKey.data();
    size_t k_len = role_ == Role::Server ? kFpKey.size() : kFmsKey.size();
    Digest sig = response_signature(p, k, k_len, own_digest_.data());
    peer_response_valid_ = std::memcmp(sig.data(), p + kSigOffset, kDigestLen) == 0;
  }
}

Handshake::Status Handshake::feed(const uint8_t* data, size_t len, size_t& consumed,
                                  std::vector<uint8_t>& out, GError** error) {
  consumed = 0;
  if (state_ == kDone) return Status::Done;
  if (state_ == kFailed) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL, "handshake already failed");
    return Status::Error;
  }
  if (state_ == kNotStarted) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_PROTOCOL,
                "client handshake received data before start()");
    state_ = kFailed;
    return Status::Error;
  }

  while (consumed < len && state_ != kDone) {
    size_t stage = state_ == kWaitVersion ? 1 : kHandshakeSize;
    size_t take = std::min(stage - in_.size(), len - consumed);
    in_.insert(in_.end(), data + consumed, data + consumed + take);
    consumed += take;
    if (in_.size() < stage) break;

    switch (state_) {
      case kWaitVersion:
        peer_version_ = in_[0];
        if (refuse_version(peer_version_, error)) {
          state_ = kFailed;
          in_.clear();
          return Status::Error;
        }
        state_ = kWaitPacket1;
        break;
      case kWaitPacket1:
        if (role_ == Role::Server)
          on_c1(out);
        else
          on_s1(out);  // C2 may go out as soon as S1 is known
        state_ = kWaitPacket2;
        break;
      case kWaitPacket2:
        on_packet2();
        state_ = kDone;
        break;
      default:
        break;
    }
    in_.clear();
  }
  return state_ == kDone ? Status::Done : Status::NeedMore;
}

}  // namespace grtmp
