// Handshake state machines: golden vectors made by an independent Python
// generator (golden/handshake/gen_handshake.py), in-process client <-> server
// runs over every slicing, refusal of RTMPE versions, and consumption limits.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "grtmp/bytes.h"
#include "grtmp/error.h"
#include "grtmp/handshake.h"

using grtmp::Handshake;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes golden(const std::string& name) {
  std::ifstream f(std::string(GOLDEN_DIR) + "/handshake/" + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing golden/handshake/" << name;
  return Bytes(std::istreambuf_iterator<char>(f), {});
}

// Same generator as gen_handshake.py.
std::function<void(uint8_t*, size_t)> fixed_random(uint32_t seed) {
  return [x = seed](uint8_t* p, size_t n) mutable {
    for (size_t i = 0; i < n; i++) {
      x = x * 1103515245u + 12345u;
      p[i] = uint8_t((x >> 16) & 0xff);
    }
  };
}

Handshake::Options client_opts(bool digest, Handshake::Scheme scheme, uint32_t version = 0x0d0e0a0d) {
  Handshake::Options o;
  o.digest = digest;
  o.client_scheme = scheme;
  o.version_field = version;
  o.epoch = 1000;
  o.random = fixed_random(1);
  return o;
}

Handshake::Options server_opts() {
  Handshake::Options o;
  o.digest = true;
  o.version_field = 0x04050001;
  o.epoch = 0;
  o.random = fixed_random(2);
  return o;
}

struct Fed {
  Handshake::Status status;
  size_t consumed;
  Bytes out;
  int error_code = -1;
  GQuark error_domain = 0;
};

Fed feed(Handshake& h, const Bytes& in) {
  Fed r;
  GError* err = nullptr;
  r.status = h.feed(in.data(), in.size(), r.consumed, r.out, &err);
  if (err) {
    r.error_code = err->code;
    r.error_domain = err->domain;
    g_error_free(err);
  }
  return r;
}

Bytes slice(const Bytes& b, size_t from, size_t len = SIZE_MAX) {
  len = std::min(len, b.size() - from);
  return Bytes(b.begin() + ptrdiff_t(from), b.begin() + ptrdiff_t(from + len));
}

size_t sum_offset(const Bytes& p, size_t base, size_t add) {
  return (size_t(p[base]) + p[base + 1] + p[base + 2] + p[base + 3]) % 728 + add;
}

const uint8_t kFpText[] = "Genuine Adobe Flash Player 001";
const uint8_t kFmsText[] = "Genuine Adobe Flash Media Server 001";

}  // namespace

// ---- golden vectors --------------------------------------------------------

TEST(HandshakeGolden, ClientC0C1Simple) {
  Handshake c(Handshake::Role::Client, client_opts(false, Handshake::Scheme::Scheme1, 0));
  EXPECT_EQ(c.start(), golden("c0c1_simple.bin"));
}

TEST(HandshakeGolden, ClientC0C1DigestBothSchemes) {
  for (int s = 0; s < 2; s++) {
    Handshake c(Handshake::Role::Client, client_opts(true, Handshake::Scheme(s)));
    Bytes c0c1 = c.start();
    EXPECT_EQ(c0c1, golden("c0c1_digest_scheme" + std::to_string(s) + ".bin")) << "scheme " << s;
    ASSERT_EQ(c0c1.size(), 1537u);
    EXPECT_EQ(c0c1[0], 3);
    // time = 1000, version field non-zero
    EXPECT_EQ(grtmp::load_u32(&c0c1[1]), 1000u);
    EXPECT_EQ(grtmp::load_u32(&c0c1[5]), 0x0d0e0a0du);
  }
}

TEST(HandshakeGolden, DigestOffsetsFollowTheWellKnownLayout) {
  for (int s = 0; s < 2; s++) {
    Bytes c1 = slice(golden("c0c1_digest_scheme" + std::to_string(s) + ".bin"), 1);
    size_t expect = s == 0 ? sum_offset(c1, 8, 12) : sum_offset(c1, 772, 776);
    EXPECT_EQ(Handshake::digest_offset(c1.data(), Handshake::Scheme(s)), expect);
    Handshake::Scheme found = Handshake::Scheme::None;
    EXPECT_TRUE(Handshake::find_digest(c1.data(), kFpText, 30, found));
    EXPECT_EQ(found, Handshake::Scheme(s));
    // The FMS key does not verify a client digest.
    EXPECT_FALSE(Handshake::find_digest(c1.data(), kFmsText, 36, found));
    EXPECT_EQ(found, Handshake::Scheme::None);
  }
  Bytes simple = slice(golden("c0c1_simple.bin"), 1);
  Handshake::Scheme found;
  EXPECT_FALSE(Handshake::find_digest(simple.data(), kFpText, 30, found));
}

TEST(HandshakeGolden, ServerAnswersDigestC1WithDigestS1S2) {
  for (int s = 0; s < 2; s++) {
    std::string n = std::to_string(s);
    Handshake srv(Handshake::Role::Server, server_opts());
    Fed r = feed(srv, golden("c0c1_digest_scheme" + n + ".bin"));
    EXPECT_EQ(r.status, Handshake::Status::NeedMore);
    EXPECT_EQ(r.consumed, 1537u);
    EXPECT_EQ(r.out, golden("s0s1s2_digest_scheme" + n + ".bin")) << "scheme " << s;
    EXPECT_EQ(srv.peer_scheme(), Handshake::Scheme(s));
    EXPECT_EQ(srv.peer_version(), 3);
    // S1 carries an FMS digest at the same scheme.
    Handshake::Scheme found;
    ASSERT_EQ(r.out.size(), 3073u);
    EXPECT_TRUE(Handshake::find_digest(r.out.data() + 1, kFmsText, 36, found));
    EXPECT_EQ(found, Handshake::Scheme(s));
    // Then the client's golden C2 completes it and verifies.
    Fed r2 = feed(srv, golden("c2_digest_scheme" + n + ".bin"));
    EXPECT_EQ(r2.status, Handshake::Status::Done);
    EXPECT_EQ(r2.consumed, 1536u);
    EXPECT_TRUE(r2.out.empty());
    EXPECT_TRUE(srv.done());
    EXPECT_TRUE(srv.peer_response_valid());
  }
}

TEST(HandshakeGolden, ServerAnswersSimpleC1ByEcho) {
  Bytes c0c1 = golden("c0c1_simple.bin");
  Handshake srv(Handshake::Role::Server, server_opts());
  Fed r = feed(srv, c0c1);
  EXPECT_EQ(r.status, Handshake::Status::NeedMore);
  Bytes expect = golden("s0s1s2_simple.bin");
  EXPECT_EQ(r.out, expect);
  EXPECT_EQ(srv.peer_scheme(), Handshake::Scheme::None);
  // S2 is C1 exactly.
  EXPECT_EQ(slice(r.out, 1537), slice(c0c1, 1));
}

TEST(HandshakeGolden, ClientAnswersDigestS1WithGoldenC2) {
  for (int s = 0; s < 2; s++) {
    std::string n = std::to_string(s);
    Handshake c(Handshake::Role::Client, client_opts(true, Handshake::Scheme(s)));
    c.start();
    Fed r = feed(c, golden("s0s1s2_digest_scheme" + n + ".bin"));
    EXPECT_EQ(r.status, Handshake::Status::Done);
    EXPECT_EQ(r.consumed, 3073u);
    EXPECT_EQ(r.out, golden("c2_digest_scheme" + n + ".bin"));
    EXPECT_EQ(c.peer_scheme(), Handshake::Scheme(s));
    EXPECT_TRUE(c.peer_response_valid());  // S2 signed over our C1 digest
  }
}

TEST(HandshakeGolden, SimpleClientEchoesS1) {
  Handshake c(Handshake::Role::Client, client_opts(false, Handshake::Scheme::Scheme1, 0));
  c.start();
  Bytes s0s1s2 = golden("s0s1s2_simple.bin");
  Fed r = feed(c, s0s1s2);
  EXPECT_EQ(r.status, Handshake::Status::Done);
  EXPECT_EQ(r.out, slice(s0s1s2, 1, 1536));
  EXPECT_TRUE(c.peer_response_valid());
}

// ---- digest verification ---------------------------------------------------

TEST(HandshakeDigest, CorruptedByteFailsVerification) {
  Bytes c0c1 = golden("c0c1_digest_scheme1.bin");
  Bytes c1 = slice(c0c1, 1);
  size_t off = Handshake::digest_offset(c1.data(), Handshake::Scheme::Scheme1);
  // A byte outside the digest and outside the offset bytes of both schemes.
  size_t victim = off > 700 ? 300 : 1400;
  ASSERT_TRUE(victim < off || victim >= off + 32);
  for (size_t pos : {victim, off + 5}) {  // payload byte, then a digest byte
    Bytes bad = c1;
    bad[pos] ^= 0x01;
    Handshake::Scheme found;
    EXPECT_FALSE(Handshake::find_digest(bad.data(), kFpText, 30, found)) << pos;
    EXPECT_EQ(found, Handshake::Scheme::None);
  }
  // A server receiving the corrupted C1 falls back to the simple answer.
  Bytes bad = c0c1;
  bad[1 + victim] ^= 0x01;
  Handshake srv(Handshake::Role::Server, server_opts());
  Fed r = feed(srv, bad);
  EXPECT_EQ(srv.peer_scheme(), Handshake::Scheme::None);
  EXPECT_EQ(slice(r.out, 1537), slice(bad, 1));
}

TEST(HandshakeDigest, ClientFallsBackToEchoForPlainS1) {
  // A digest client facing a simple server echoes S1 in C2.
  Handshake c(Handshake::Role::Client, client_opts(true, Handshake::Scheme::Scheme1));
  Bytes c0c1 = c.start();
  Handshake::Options so = server_opts();
  so.digest = false;
  Handshake srv(Handshake::Role::Server, so);
  Fed r = feed(srv, c0c1);
  EXPECT_EQ(srv.peer_scheme(), Handshake::Scheme::None);
  EXPECT_EQ(slice(r.out, 1537), slice(c0c1, 1));  // digest ignored: echo
  Fed rc = feed(c, r.out);
  EXPECT_EQ(rc.status, Handshake::Status::Done);
  EXPECT_EQ(rc.out, slice(r.out, 1, 1536));
  EXPECT_EQ(c.peer_scheme(), Handshake::Scheme::None);
  EXPECT_TRUE(c.peer_response_valid());
  Fed rs = feed(srv, rc.out);
  EXPECT_EQ(rs.status, Handshake::Status::Done);
  EXPECT_TRUE(srv.peer_response_valid());
}

// ---- refusals --------------------------------------------------------------

TEST(HandshakeRefuse, EncryptedVersionsRefusedOnTheFirstByte) {
  for (uint8_t v : {6, 8, 9}) {
    Handshake srv(Handshake::Role::Server);
    Fed r = feed(srv, Bytes{v});
    EXPECT_EQ(r.status, Handshake::Status::Error) << int(v);
    EXPECT_EQ(r.error_domain, GRTMP_ERROR);
    EXPECT_EQ(r.error_code, GRTMP_ERROR_UNSUPPORTED);
    EXPECT_EQ(r.consumed, 1u);
    EXPECT_TRUE(r.out.empty());
    EXPECT_EQ(srv.peer_version(), v);
    // Stays failed.
    Fed again = feed(srv, Bytes(1536, 0));
    EXPECT_EQ(again.status, Handshake::Status::Error);
  }
}

TEST(HandshakeRefuse, OtherVersionsAreMalformed) {
  for (uint8_t v : {0, 1, 2, 4, 0x16, 0x47, 0xff}) {
    Handshake srv(Handshake::Role::Server);
    Bytes in{v};
    in.resize(1537, 0x55);  // C1 behind it must not matter
    Fed r = feed(srv, in);
    EXPECT_EQ(r.status, Handshake::Status::Error) << int(v);
    EXPECT_EQ(r.error_code, GRTMP_ERROR_MALFORMED);
    EXPECT_EQ(r.consumed, 1u);
    EXPECT_TRUE(r.out.empty());
  }
}

TEST(HandshakeRefuse, ClientChecksS0) {
  Handshake c(Handshake::Role::Client);
  c.start();
  Fed r = feed(c, Bytes{6});
  EXPECT_EQ(r.status, Handshake::Status::Error);
  EXPECT_EQ(r.error_code, GRTMP_ERROR_UNSUPPORTED);
  Handshake c2(Handshake::Role::Client);
  c2.start();
  EXPECT_EQ(feed(c2, Bytes{0x42}).error_code, GRTMP_ERROR_MALFORMED);
}

TEST(HandshakeRefuse, ClientFeedBeforeStartIsAnError) {
  Handshake c(Handshake::Role::Client);
  Fed r = feed(c, Bytes{3});
  EXPECT_EQ(r.status, Handshake::Status::Error);
  EXPECT_EQ(r.error_code, GRTMP_ERROR_PROTOCOL);
}

TEST(HandshakeRefuse, ServerStartIsEmpty) {
  Handshake srv(Handshake::Role::Server);
  EXPECT_TRUE(srv.start().empty());
}

// ---- consumption -----------------------------------------------------------

TEST(HandshakeConsume, BytesAfterC2AreNotConsumed) {
  Handshake c(Handshake::Role::Client, client_opts(true, Handshake::Scheme::Scheme0));
  Handshake srv(Handshake::Role::Server, server_opts());
  Bytes c0c1 = c.start();
  Fed rs = feed(srv, c0c1);
  Fed rc = feed(c, rs.out);
  ASSERT_EQ(rc.status, Handshake::Status::Done);
  // C2 and the connect command's first chunk in one TCP segment.
  Bytes seg = rc.out;
  const uint8_t chunk[] = {0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x8d, 0x14, 0, 0, 0, 0, 0x02, 0x00, 0x07};
  seg.insert(seg.end(), std::begin(chunk), std::end(chunk));
  Fed r = feed(srv, seg);
  EXPECT_EQ(r.status, Handshake::Status::Done);
  EXPECT_EQ(r.consumed, 1536u);
  // Everything in one go, too: C0 C1 C2 + chunk bytes.
  Handshake srv2(Handshake::Role::Server, server_opts());
  Bytes all = c0c1;
  all.insert(all.end(), seg.begin(), seg.end());
  Fed r2 = feed(srv2, all);
  EXPECT_EQ(r2.status, Handshake::Status::Done);
  EXPECT_EQ(r2.consumed, 1537u + 1536u);
  EXPECT_EQ(r2.out, rs.out);
  // Fed again after Done: nothing consumed.
  Fed r3 = feed(srv2, Bytes{1, 2, 3});
  EXPECT_EQ(r3.status, Handshake::Status::Done);
  EXPECT_EQ(r3.consumed, 0u);
  EXPECT_TRUE(r3.out.empty());
}

TEST(HandshakeConsume, ClientLeavesServerDataAfterS2) {
  Handshake c(Handshake::Role::Client, client_opts(true, Handshake::Scheme::Scheme1));
  c.start();
  Bytes in = golden("s0s1s2_digest_scheme1.bin");
  in.insert(in.end(), {0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x05});  // Window Ack Size chunk
  Fed r = feed(c, in);
  EXPECT_EQ(r.status, Handshake::Status::Done);
  EXPECT_EQ(r.consumed, 3073u);
}

TEST(HandshakeConsume, GarbageC2IsTolerated) {
  Handshake srv(Handshake::Role::Server, server_opts());
  feed(srv, golden("c0c1_digest_scheme1.bin"));
  Fed r = feed(srv, Bytes(1536, 0xab));
  EXPECT_EQ(r.status, Handshake::Status::Done);
  EXPECT_FALSE(srv.peer_response_valid());
  Handshake srv2(Handshake::Role::Server, server_opts());
  feed(srv2, golden("c0c1_simple.bin"));
  EXPECT_EQ(feed(srv2, Bytes(1536, 0)).status, Handshake::Status::Done);
  EXPECT_FALSE(srv2.peer_response_valid());
}

// ---- client <-> server in process ------------------------------------------

namespace {

enum class Order { ServerPriority, ClientPriority, Alternate };

// Runs a handshake moving at most `step` bytes per feed call (0: random
// 1..700). ServerPriority: the server reads whatever is available first (it
// gets C2 before the client has S2); ClientPriority: the client drains the
// whole S0+S1+S2 before the server sees C2; Alternate: one chunk each way.
void run_pair(bool client_digest, bool server_digest, Handshake::Scheme scheme, size_t step,
              Order order, uint32_t seed) {
  SCOPED_TRACE(::testing::Message() << "client_digest=" << client_digest << " server_digest="
                                    << server_digest << " scheme=" << int(scheme) << " step=" << step
                                    << " order=" << int(order));
  Handshake::Options co;
  co.digest = client_digest;
  co.client_scheme = scheme;
  Handshake::Options so;
  so.digest = server_digest;
  Handshake c(Handshake::Role::Client, co);
  Handshake s(Handshake::Role::Server, so);
  std::mt19937 rng(seed);

  Bytes to_server = c.start();
  Bytes to_client;
  size_t ts_pos = 0, tc_pos = 0;
  auto chunk = [&](size_t left) {
    size_t n = step ? step : 1 + rng() % 700;
    return std::min(n, left);
  };
  auto pump = [&](Handshake& h, Bytes& in, size_t& pos, Bytes& reply) -> bool {
    if (pos >= in.size() || h.done()) return false;
    size_t n = chunk(in.size() - pos);
    size_t consumed = 0;
    GError* err = nullptr;
    auto st = h.feed(in.data() + pos, n, consumed, reply, &err);
    EXPECT_NE(st, Handshake::Status::Error) << (err ? err->message : "");
    if (err) g_error_free(err);
    EXPECT_EQ(consumed, n);  // no bytes beyond the handshake here
    pos += consumed;
    return true;
  };
  for (int guard = 0; guard < 100000 && !(c.done() && s.done()); guard++) {
    if (order == Order::ServerPriority) {
      if (pump(s, to_server, ts_pos, to_client)) continue;
      if (pump(c, to_client, tc_pos, to_server)) continue;
      break;
    } else if (order == Order::ClientPriority) {
      if (pump(c, to_client, tc_pos, to_server)) continue;
      if (pump(s, to_server, ts_pos, to_client)) continue;
      break;
    } else {
      bool a = pump(s, to_server, ts_pos, to_client);
      bool b = pump(c, to_client, tc_pos, to_server);
      if (!a && !b) break;
    }
  }
  ASSERT_TRUE(c.done());
  ASSERT_TRUE(s.done());
  EXPECT_EQ(ts_pos, to_server.size());
  EXPECT_EQ(tc_pos, to_client.size());
  EXPECT_EQ(to_server.size(), 1u + 2 * 1536);
  EXPECT_EQ(to_client.size(), 1u + 2 * 1536);
  bool digest = client_digest && server_digest;
  EXPECT_EQ(s.peer_scheme(), digest ? scheme : Handshake::Scheme::None);
  EXPECT_EQ(c.peer_scheme(), digest ? scheme : Handshake::Scheme::None);
  EXPECT_TRUE(c.peer_response_valid());
  EXPECT_TRUE(s.peer_response_valid());
  EXPECT_EQ(c.peer_version(), 3);
  EXPECT_EQ(s.peer_version(), 3);
  // Default options: version field non-zero in C1 and S1.
  EXPECT_NE(grtmp::load_u32(&to_server[5]), 0u);
  EXPECT_NE(grtmp::load_u32(&to_client[5]), 0u);
}

}  // namespace

TEST(HandshakePair, AllModesAllSlicings) {
  uint32_t seed = 1;
  for (bool cd : {true, false})
    for (bool sd : {true, false})
      for (auto scheme : {Handshake::Scheme::Scheme0, Handshake::Scheme::Scheme1})
        for (size_t step : {size_t(1), size_t(0), size_t(1537), size_t(100000)})
          for (auto order : {Order::ServerPriority, Order::ClientPriority, Order::Alternate})
            run_pair(cd, sd, scheme, step, order, seed++);
}

TEST(HandshakePair, DefaultRandomDiffers) {
  Handshake a(Handshake::Role::Client), b(Handshake::Role::Client);
  Bytes ca = a.start(), cb = b.start();
  EXPECT_NE(ca, cb);
  Handshake::Scheme found;
  EXPECT_TRUE(Handshake::find_digest(ca.data() + 1, kFpText, 30, found));
  EXPECT_EQ(found, Handshake::Scheme::Scheme1);  // the default, like Flash Player
  EXPECT_TRUE(a.start().empty());                // only once
}

TEST(HandshakePair, ClientSendsC2OnceS1IsKnown) {
  // C2 depends only on S1; sending it before S2 also suits servers that
  // (wrongly) hold S2 back until C2 arrives.
  Handshake c(Handshake::Role::Client, client_opts(true, Handshake::Scheme::Scheme1));
  c.start();
  Bytes s0s1s2 = golden("s0s1s2_digest_scheme1.bin");
  Fed r = feed(c, slice(s0s1s2, 0, 1537));
  EXPECT_EQ(r.status, Handshake::Status::NeedMore);
  EXPECT_EQ(r.out, golden("c2_digest_scheme1.bin"));
  Bytes rest = slice(s0s1s2, 1537);
  for (size_t i = 0; i < rest.size(); i++) {
    Fed b = feed(c, Bytes{rest[i]});
    EXPECT_EQ(b.consumed, 1u);
    EXPECT_TRUE(b.out.empty());
    EXPECT_EQ(b.status, i + 1 == rest.size() ? Handshake::Status::Done : Handshake::Status::NeedMore);
  }
  EXPECT_TRUE(c.peer_response_valid());
}
