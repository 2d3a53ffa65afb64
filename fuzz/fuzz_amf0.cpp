// AMF0 decoder/encoder and the command layer on arbitrary bytes.
//
// Input: an AMF0 byte sequence (as in a command or data message payload).
//
// Invariants checked:
// * decode_all with the default limits either fails cleanly or yields
//   values whose encoding has the input's length (the decoder keeps
//   markers, ECMA counts, time zones and AvmPlus bytes; the only bytes that
//   may differ are non-canonical booleans, see amf0.cpp);
// * decode(encode(v)) == v and encode is stable on the second round;
// * decoding value by value with decode() agrees with decode_all();
// * the command layer (parse_command as type 20 and 17, parse_connect,
//   parse_publish, parse_play, argument helpers, strip_set_data_frame,
//   parse_metadata) never crashes on what it is given.
#include <cstring>
#include <vector>

#include "fuzz_common.h"
#include "grtmp/amf0.h"
#include "grtmp/command.h"

using namespace grtmp;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::install_quiet_log();
  return 0;
}

static void command_layer(const uint8_t* data, size_t size) {
  for (uint8_t type : {uint8_t(kMsgCommandAmf0), uint8_t(kMsgCommandAmf3)}) {
    Message m;
    m.type = type;
    m.payload = Bytes::copy(data, size);
    Command c;
    GError* err = nullptr;
    if (!parse_command(m, c, amf0::Limits{}, &err)) {
      FUZZ_CHECK(err != nullptr);
      g_error_free(err);
      continue;
    }
    ConnectParams cp;
    if (!parse_connect(c, cp, &err)) g_clear_error(&err);
    PublishParams pp;
    if (!parse_publish(c, pp, &err)) g_clear_error(&err);
    PlayParams pl;
    if (!parse_play(c, pl, &err)) g_clear_error(&err);
    double d;
    std::string s;
    for (size_t i = 0; i < 3; i++) {
      command_number_arg(c, i, d);
      command_string_arg(c, i, s);
    }
    std::string name, query;
    split_stream_name(pp.name, name, query);
    (void)c.object.to_string();
  }
  for (uint8_t type : {uint8_t(kMsgDataAmf0), uint8_t(kMsgDataAmf3)}) {
    Message m;
    m.type = type;
    m.payload = Bytes::copy(data, size);
    Bytes out;
    std::string handler;
    GError* err = nullptr;
    if (!strip_set_data_frame(m, out, handler, &err)) {
      g_clear_error(&err);
      continue;
    }
    amf0::Value meta;
    if (!parse_metadata(out, meta, &err)) g_clear_error(&err);
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const amf0::Limits limits;
  std::vector<amf0::Value> v1;
  GError* err = nullptr;
  bool ok = amf0::decode_all(data, size, v1, limits, &err);
  FUZZ_CHECK(ok == (err == nullptr));
  if (err) g_clear_error(&err);

  // Value by value agrees with decode_all.
  {
    std::vector<amf0::Value> vs;
    size_t off = 0;
    bool ok2 = true;
    while (off < size) {
      amf0::Value v;
      size_t before = off;
      if (!amf0::decode(data, size, off, v, limits, nullptr)) {
        ok2 = false;
        break;
      }
      FUZZ_CHECK(off > before && off <= size);
      vs.push_back(std::move(v));
    }
    // decode_all also bounds the total value count over the whole call,
    // which one-at-a-time decoding does not: it may fail where this passes.
    if (ok) {
      FUZZ_CHECK(ok2);
      FUZZ_CHECK(vs == v1);
    }
  }

  if (ok) {
    for (auto& v : v1) (void)v.to_string();
    ByteWriter w1;
    amf0::encode_all(v1, w1);
    FUZZ_CHECK(w1.size() == size);
    std::vector<amf0::Value> v2;
    FUZZ_CHECK(amf0::decode_all(w1.buffer().data(), w1.size(), v2, limits, nullptr));
    FUZZ_CHECK(v2 == v1);
    ByteWriter w2;
    amf0::encode_all(v2, w2);
    FUZZ_CHECK(w2.buffer() == w1.buffer());
  }

  command_layer(data, size);
  return 0;
}
