// AMF0 decoder / encoder: every marker, golden vectors (field by field and
// byte-exact), limits, truncation at every offset, random input.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/error.h"

using grtmp::ByteWriter;
using namespace grtmp::amf0;

namespace {

using Buf = std::vector<uint8_t>;

Buf read_golden(const std::string& rel) {
  std::ifstream f(std::string(GOLDEN_DIR) + "/" + rel, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing golden file " << rel;
  return Buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<std::string> golden_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(GOLDEN_DIR) + "/" + dir))
    if (e.path().extension() == ".bin") out.push_back(dir + "/" + e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

Buf enc(const Value& v) {
  ByteWriter w;
  encode(v, w);
  return w.buffer();
}

Buf enc_all(const std::vector<Value>& v) {
  ByteWriter w;
  encode_all(v, w);
  return w.buffer();
}

// Decodes exactly one value that must span the whole buffer.
Value dec1(const Buf& b, const Limits& limits = Limits()) {
  size_t off = 0;
  Value v;
  GError* err = nullptr;
  bool ok = decode(b.data(), b.size(), off, v, limits, &err);
  EXPECT_TRUE(ok) << (err ? err->message : "");
  EXPECT_EQ(off, b.size());
  g_clear_error(&err);
  return v;
}

struct Failure {
  bool failed = false;
  int code = -1;
  std::string message;
};

Failure dec_fail(const Buf& b, const Limits& limits = Limits()) {
  std::vector<Value> out;
  GError* err = nullptr;
  Failure f;
  f.failed = !decode_all(b.data(), b.size(), out, limits, &err);
  if (err) {
    EXPECT_EQ(err->domain, GRTMP_ERROR);
    f.code = err->code;
    f.message = err->message;
    g_error_free(err);
  }
  EXPECT_EQ(f.failed, !f.message.empty()) << "an error must come with a message";
  return f;
}

void put_u16(Buf& b, uint16_t v) {
  b.push_back(v >> 8);
  b.push_back(v & 0xff);
}
void put_u32(Buf& b, uint32_t v) {
  put_u16(b, v >> 16);
  put_u16(b, v & 0xffff);
}
void put_key(Buf& b, const std::string& k) {
  put_u16(b, uint16_t(k.size()));
  b.insert(b.end(), k.begin(), k.end());
}
void put_end(Buf& b) {
  b.push_back(0);
  b.push_back(0);
  b.push_back(0x09);
}

Value typed(Marker m) {
  Value v;
  v.type = m;
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------
// Golden vectors, field by field.

TEST(Amf0Golden, Number) {
  Value v = dec1(read_golden("amf0/number.bin"));
  EXPECT_EQ(v.type, Marker::Number);
  EXPECT_DOUBLE_EQ(v.number, 3.141592653589793);
}

TEST(Amf0Golden, NumberNegativeZeroAndNaN) {
  Value z = dec1(read_golden("amf0/number_negative_zero.bin"));
  EXPECT_EQ(z.type, Marker::Number);
  EXPECT_EQ(z.number, 0.0);
  EXPECT_TRUE(std::signbit(z.number));
  EXPECT_EQ(enc(z), read_golden("amf0/number_negative_zero.bin"));
  Value n = dec1(read_golden("amf0/number_nan.bin"));
  EXPECT_TRUE(std::isnan(n.number));
  EXPECT_EQ(enc(n), read_golden("amf0/number_nan.bin"));
}

TEST(Amf0Golden, Boolean) {
  Value t = dec1(read_golden("amf0/boolean_true.bin"));
  EXPECT_EQ(t.type, Marker::Boolean);
  EXPECT_TRUE(t.boolean);
  Value f = dec1(read_golden("amf0/boolean_false.bin"));
  EXPECT_EQ(f.type, Marker::Boolean);
  EXPECT_FALSE(f.boolean);
}

TEST(Amf0Golden, Strings) {
  Value s = dec1(read_golden("amf0/string.bin"));
  EXPECT_EQ(s.type, Marker::String);
  EXPECT_EQ(s.string, "hello");
  Value e = dec1(read_golden("amf0/string_empty.bin"));
  EXPECT_EQ(e.type, Marker::String);
  EXPECT_EQ(e.string, "");
  Value u = dec1(read_golden("amf0/string_utf8.bin"));
  EXPECT_EQ(u.string, "h\xc3\xa9llo \xe2\x9c\x93");
  Value l = dec1(read_golden("amf0/long_string.bin"));
  EXPECT_EQ(l.type, Marker::LongString);  // kept as LongString though it is short
  EXPECT_EQ(l.string, "long string");
  EXPECT_TRUE(l.is_string());
}

TEST(Amf0Golden, Object) {
  Value o = dec1(read_golden("amf0/object.bin"));
  ASSERT_EQ(o.type, Marker::Object);
  ASSERT_EQ(o.properties.size(), 3u);
  EXPECT_EQ(o.properties[0].first, "a");
  EXPECT_EQ(o.properties[0].second, Value::make_number(1));
  EXPECT_EQ(o.properties[1].first, "b");
  EXPECT_EQ(o.properties[1].second, Value::make_string("x"));
  EXPECT_EQ(o.properties[2].first, "c");
  EXPECT_EQ(o.properties[2].second, Value::make_boolean(true));
  Value e = dec1(read_golden("amf0/object_empty.bin"));
  EXPECT_EQ(e.type, Marker::Object);
  EXPECT_TRUE(e.properties.empty());
}

TEST(Amf0Golden, NullUndefinedUnsupported) {
  EXPECT_EQ(dec1(read_golden("amf0/null.bin")).type, Marker::Null);
  EXPECT_EQ(dec1(read_golden("amf0/undefined.bin")).type, Marker::Undefined);
  EXPECT_EQ(dec1(read_golden("amf0/unsupported.bin")).type, Marker::Unsupported);
}

TEST(Amf0Golden, Reference) {
  Value r = dec1(read_golden("amf0/reference.bin"));
  EXPECT_EQ(r.type, Marker::Reference);
  EXPECT_EQ(r.reference, 1);
}

TEST(Amf0Golden, EcmaArray) {
  Value a = dec1(read_golden("amf0/ecma_array.bin"));
  ASSERT_EQ(a.type, Marker::EcmaArray);
  EXPECT_EQ(a.ecma_count, 2u);
  ASSERT_EQ(a.properties.size(), 2u);
  EXPECT_EQ(a.get_number("duration"), 0.0);
  EXPECT_EQ(a.get_number("width"), 1280.0);
  // The count is advisory: 0 declared, 2 present, kept as declared.
  Value z = dec1(read_golden("amf0/ecma_array_count_zero.bin"));
  EXPECT_EQ(z.ecma_count, 0u);
  EXPECT_EQ(z.properties.size(), 2u);
  EXPECT_EQ(enc(z), read_golden("amf0/ecma_array_count_zero.bin"));
}

TEST(Amf0Golden, StrictArray) {
  Value a = dec1(read_golden("amf0/strict_array.bin"));
  ASSERT_EQ(a.type, Marker::StrictArray);
  ASSERT_EQ(a.elements.size(), 3u);
  EXPECT_EQ(a.elements[0], Value::make_number(1));
  EXPECT_EQ(a.elements[1], Value::make_string("two"));
  EXPECT_EQ(a.elements[2], Value::make_null());
  Value e = dec1(read_golden("amf0/strict_array_empty.bin"));
  EXPECT_EQ(e.type, Marker::StrictArray);
  EXPECT_TRUE(e.elements.empty());
}

TEST(Amf0Golden, Date) {
  Value d = dec1(read_golden("amf0/date.bin"));
  EXPECT_EQ(d.type, Marker::Date);
  EXPECT_EQ(d.number, 1700000000000.0);
  EXPECT_EQ(d.timezone, 0);
  Value tz = dec1(read_golden("amf0/date_timezone.bin"));
  EXPECT_EQ(tz.timezone, -60);
  EXPECT_EQ(enc(tz), read_golden("amf0/date_timezone.bin"));
}

TEST(Amf0Golden, XmlDocument) {
  Value x = dec1(read_golden("amf0/xml_document.bin"));
  EXPECT_EQ(x.type, Marker::XmlDocument);
  EXPECT_EQ(x.string, "<a>b</a>");
}

TEST(Amf0Golden, TypedObject) {
  Value t = dec1(read_golden("amf0/typed_object.bin"));
  ASSERT_EQ(t.type, Marker::TypedObject);
  EXPECT_EQ(t.string, "Point");
  EXPECT_TRUE(t.is_object_like());
  EXPECT_EQ(t.get_number("x"), 1.0);
  EXPECT_EQ(t.get_number("y"), 2.0);
}

TEST(Amf0Golden, AvmPlusDecodesTheAmf3String) {
  Buf b = read_golden("amf0/avmplus.bin");
  Value v = dec1(b);
  EXPECT_EQ(v.type, Marker::String);
  EXPECT_EQ(v.string, "foo");
  ASSERT_TRUE(v.amf3);
  EXPECT_EQ(v.amf3->bytes, std::string("\x06\x07" "foo", 5));
  EXPECT_EQ(enc(v), b);  // unchanged: the AMF3 bytes again
}

TEST(Amf0Golden, Nested) {
  Value n = dec1(read_golden("amf0/nested.bin"));
  const Value* list = n.get("list");
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->type, Marker::StrictArray);
  ASSERT_EQ(list->elements.size(), 2u);
  EXPECT_EQ(list->elements[0].get_string("k"), "v");
  EXPECT_EQ(list->elements[1].type, Marker::EcmaArray);
  EXPECT_EQ(list->elements[1].get_number("n"), 2.0);
  const Value* deep = n.get("o")->get("deep");
  ASSERT_NE(deep, nullptr);
  EXPECT_EQ(deep->get("x")->type, Marker::Undefined);
}

TEST(Amf0Golden, Sequence) {
  Buf b = read_golden("amf0/sequence.bin");
  std::vector<Value> vs;
  ASSERT_TRUE(decode_all(b.data(), b.size(), vs, Limits(), nullptr));
  ASSERT_EQ(vs.size(), 4u);
  EXPECT_EQ(vs[0].string, "onStatus");
  EXPECT_EQ(vs[1].number, 0.0);
  EXPECT_EQ(vs[2].type, Marker::Null);
  EXPECT_EQ(vs[3].get_string("level"), "status");
  // decode() walks the same sequence one value at a time.
  size_t off = 0;
  for (int i = 0; i < 4; i++) {
    Value v;
    ASSERT_TRUE(decode(b.data(), b.size(), off, v, Limits(), nullptr));
    EXPECT_EQ(v, vs[i]);
  }
  EXPECT_EQ(off, b.size());
}

// Every golden AMF vector in the repository (AMF0 values and the command /
// data message payloads) decodes and re-encodes byte-exact.
TEST(Amf0Golden, AllVectorsRoundTripByteExact) {
  std::vector<std::string> files = golden_files("amf0");
  for (const auto& f : golden_files("command")) files.push_back(f);
  ASSERT_GE(files.size(), 40u);
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    Buf b = read_golden(f);
    // Type 15 / 17 payloads: one 0x00 byte before the AMF0 values.
    size_t skip = f.find("amf3_envelope") != std::string::npos ? 1 : 0;
    std::vector<Value> vs;
    GError* err = nullptr;
    ASSERT_TRUE(decode_all(b.data() + skip, b.size() - skip, vs, Limits(), &err))
        << (err ? err->message : "");
    Buf again = enc_all(vs);
    EXPECT_EQ(again, Buf(b.begin() + skip, b.end()));
    // Decoding the re-encoded bytes gives equal values.
    std::vector<Value> vs2;
    ASSERT_TRUE(decode_all(again.data(), again.size(), vs2, Limits(), nullptr));
    EXPECT_EQ(vs, vs2);
  }
}

// ---------------------------------------------------------------------------
// Round trips of built values, one per marker.

TEST(Amf0RoundTrip, EveryMarker) {
  std::vector<Value> values;
  values.push_back(Value::make_number(-1234.5));
  values.push_back(Value::make_number(std::numeric_limits<double>::infinity()));
  values.push_back(Value::make_boolean(true));
  values.push_back(Value::make_boolean(false));
  values.push_back(Value::make_string("str"));
  values.push_back(Value::make_object({{"a", Value::make_number(1)}}));
  values.push_back(Value::make_null());
  values.push_back(Value::make_undefined());
  Value ref = typed(Marker::Reference);
  ref.reference = 0xabcd;
  values.push_back(ref);
  values.push_back(Value::make_ecma_array({{"k", Value::make_string("v")}}));
  values.push_back(Value::make_strict_array({Value::make_number(1), Value::make_null()}));
  Value date = typed(Marker::Date);
  date.number = 1.5e12;
  date.timezone = 120;
  values.push_back(date);
  Value ls = typed(Marker::LongString);
  ls.string = "x";
  values.push_back(ls);
  values.push_back(typed(Marker::Unsupported));
  Value xml = typed(Marker::XmlDocument);
  xml.string = "<x/>";
  values.push_back(xml);
  Value to = typed(Marker::TypedObject);
  to.string = "flex.messaging.io.ArrayCollection";
  to.properties.emplace_back("source", Value::make_strict_array());
  values.push_back(to);
  for (const auto& v : values) {
    SCOPED_TRACE(v.to_string());
    Buf b = enc(v);
    EXPECT_EQ(b[0], uint8_t(v.type));
    Value back = dec1(b);
    EXPECT_EQ(back, v);
    EXPECT_EQ(enc(back), b);
  }
  // And all of them in one buffer.
  Buf all = enc_all(values);
  std::vector<Value> back;
  ASSERT_TRUE(decode_all(all.data(), all.size(), back, Limits(), nullptr));
  EXPECT_EQ(back, values);

  // A built AvmPlus value writes its string raw after 0x11; it decodes as
  // the AMF3 value that is (integer 127 here) and re-encodes the same.
  Value avm = typed(Marker::AvmPlus);
  avm.string = std::string("\x04\x7f", 2);
  Buf b = enc(avm);
  EXPECT_EQ(b, (Buf{0x11, 0x04, 0x7f}));
  Value n = dec1(b);
  EXPECT_EQ(n, Value::make_number(127));
  EXPECT_EQ(enc(n), b);
}

TEST(Amf0RoundTrip, LongStringPromotion) {
  std::string big(70000, 'z');
  Value v = Value::make_string(big);
  EXPECT_EQ(v.type, Marker::LongString);
  EXPECT_EQ(dec1(enc(v)), v);
  // A String too long for the 16-bit length is written as a LongString.
  Value s = typed(Marker::String);
  s.string = big;
  Buf b = enc(s);
  EXPECT_EQ(b[0], uint8_t(Marker::LongString));
  EXPECT_EQ(b.size(), 1 + 4 + big.size());
  EXPECT_EQ(Value::make_string(std::string(65535, 'a')).type, Marker::String);
}

TEST(Amf0RoundTrip, NonCanonicalBooleanDecodesTrue) {
  // The spec: 0 is false, anything else true.
  Value v = dec1(Buf{0x01, 0x02});
  EXPECT_TRUE(v.boolean);
  EXPECT_EQ(enc(v), (Buf{0x01, 0x01}));  // normalised: the one non-exact case
}

TEST(Amf0RoundTrip, EmptyKeyPropertyBeforeEnd) {
  // An empty key followed by a value (not the end marker) is a property.
  Buf b{0x03};
  put_key(b, "");
  b.push_back(0x05);
  put_end(b);
  Value v = dec1(b);
  ASSERT_EQ(v.properties.size(), 1u);
  EXPECT_EQ(v.properties[0].first, "");
  EXPECT_EQ(enc(v), b);
}

// ---------------------------------------------------------------------------
// Malformed input.

TEST(Amf0Malformed, ReservedAndUnknownMarkers) {
  for (uint8_t m : {uint8_t(0x04), uint8_t(0x0e)}) {
    Failure f = dec_fail(Buf{m});
    EXPECT_EQ(f.code, GRTMP_ERROR_MALFORMED);
    EXPECT_NE(f.message.find("reserved"), std::string::npos) << f.message;
  }
  EXPECT_NE(dec_fail(Buf{0x04}).message.find("movieclip"), std::string::npos);
  EXPECT_NE(dec_fail(Buf{0x0e}).message.find("recordset"), std::string::npos);
  for (int m = 0x12; m <= 0xff; m++) {
    Failure f = dec_fail(Buf{uint8_t(m)});
    EXPECT_EQ(f.code, GRTMP_ERROR_MALFORMED);
    EXPECT_NE(f.message.find("unknown AMF0 marker"), std::string::npos);
  }
  // Inside an object, the offset points at the bad marker.
  Buf b{0x03};
  put_key(b, "k");
  b.push_back(0x04);
  put_end(b);
  Failure f = dec_fail(b);
  EXPECT_NE(f.message.find("offset 4"), std::string::npos) << f.message;
}

TEST(Amf0Malformed, ObjectEndOnlyInsideObjects) {
  EXPECT_EQ(dec_fail(Buf{0x09}).code, GRTMP_ERROR_MALFORMED);
  // In a strict array.
  Buf a{0x0a};
  put_u32(a, 1);
  a.push_back(0x09);
  EXPECT_EQ(dec_fail(a).code, GRTMP_ERROR_MALFORMED);
  // As a property value (non-empty key).
  Buf o{0x03};
  put_key(o, "k");
  o.push_back(0x09);
  EXPECT_EQ(dec_fail(o).code, GRTMP_ERROR_MALFORMED);
  // Valid: closing object, ECMA array and typed object.
  for (uint8_t m : {uint8_t(0x03), uint8_t(0x08), uint8_t(0x10)}) {
    Buf b{m};
    if (m == 0x08) put_u32(b, 0);
    if (m == 0x10) put_key(b, "C");
    put_end(b);
    EXPECT_FALSE(dec_fail(b).failed);
  }
}

TEST(Amf0Malformed, MissingObjectEnd) {
  Buf b{0x03};
  put_key(b, "a");
  b.push_back(0x05);
  Failure f = dec_fail(b);  // ends without 00 00 09
  EXPECT_EQ(f.code, GRTMP_ERROR_MALFORMED);
  EXPECT_NE(f.message.find("truncated"), std::string::npos) << f.message;
  // ECMA array: the count does not end it.
  Buf e{0x08};
  put_u32(e, 1);
  put_key(e, "a");
  e.push_back(0x05);
  EXPECT_EQ(dec_fail(e).code, GRTMP_ERROR_MALFORMED);
}

TEST(Amf0Malformed, StringLongerThanBuffer) {
  Buf s{0x02, 0x00, 0x64, 'a', 'b', 'c'};  // claims 100 bytes
  Failure f = dec_fail(s);
  EXPECT_EQ(f.code, GRTMP_ERROR_MALFORMED);
  EXPECT_NE(f.message.find("claims 100 bytes"), std::string::npos) << f.message;
  Buf l{0x0c};
  put_u32(l, 1000);
  l.push_back('x');
  EXPECT_EQ(dec_fail(l).code, GRTMP_ERROR_MALFORMED);
  Buf x{0x0f};
  put_u32(x, 1000);
  EXPECT_EQ(dec_fail(x).code, GRTMP_ERROR_MALFORMED);
  Buf k{0x03, 0xff, 0xff, 'a'};  // property name longer than the buffer
  EXPECT_EQ(dec_fail(k).code, GRTMP_ERROR_MALFORMED);
}

TEST(Amf0Malformed, StrictArrayCountBeyondBuffer) {
  Buf a{0x0a};
  put_u32(a, 1000);  // within max_elements, but only 2 bytes follow
  a.push_back(0x05);
  a.push_back(0x05);
  Failure f = dec_fail(a);
  EXPECT_EQ(f.code, GRTMP_ERROR_MALFORMED);
  EXPECT_NE(f.message.find("1000"), std::string::npos);
}

TEST(Amf0Malformed, AvmPlusInsideContainerDecodes) {
  Buf b{0x03};
  put_key(b, "a");
  b.push_back(0x11);
  b.push_back(0x01);  // AMF3 null
  put_key(b, "b");
  b.push_back(0x05);  // AMF0 again
  put_end(b);
  Value v = dec1(b);
  ASSERT_EQ(v.type, Marker::Object);
  ASSERT_EQ(v.properties.size(), 2u);
  EXPECT_EQ(v.properties[0].second.type, Marker::Null);
  EXPECT_TRUE(v.properties[0].second.amf3);
  EXPECT_EQ(v.properties[1].second.type, Marker::Null);
  EXPECT_FALSE(v.properties[1].second.amf3);
  EXPECT_EQ(enc(v), b);
}

TEST(Amf0Malformed, DecodeOffsetChecks) {
  Buf b{0x05};
  size_t off = 2;
  Value v;
  GError* err = nullptr;
  EXPECT_FALSE(decode(b.data(), b.size(), off, v, Limits(), &err));
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->code, GRTMP_ERROR_MALFORMED);
  g_clear_error(&err);
  off = 1;  // at the end: nothing to decode
  EXPECT_FALSE(decode(b.data(), b.size(), off, v, Limits(), &err));
  g_clear_error(&err);
  // A failing decode leaves offset and value untouched; a NULL GError** is fine.
  Buf bad{0x03, 0x00};
  off = 0;
  v = Value::make_number(7);
  EXPECT_FALSE(decode(bad.data(), bad.size(), off, v, Limits(), nullptr));
  EXPECT_EQ(off, 0u);
  EXPECT_EQ(v, Value::make_number(7));
  // Empty buffer: decode_all yields nothing.
  std::vector<Value> vs{Value::make_null()};
  EXPECT_TRUE(decode_all(nullptr, 0, vs, Limits(), nullptr));
  EXPECT_TRUE(vs.empty());
}

// Every proper prefix of a valid vector fails cleanly (or, for a sequence,
// succeeds only where a value ends).
TEST(Amf0Malformed, TruncationAtEveryOffset) {
  std::vector<std::string> files = golden_files("amf0");
  for (const auto& f : golden_files("command")) files.push_back(f);
  for (const auto& f : files) {
    SCOPED_TRACE(f);
    Buf b = read_golden(f);
    size_t skip = f.find("amf3_envelope") != std::string::npos ? 1 : 0;
    b.erase(b.begin(), b.begin() + skip);
    // The offsets where a top-level value ends.
    std::vector<size_t> boundaries{0};
    for (size_t off = 0; off < b.size();) {
      Value v;
      ASSERT_TRUE(decode(b.data(), b.size(), off, v, Limits(), nullptr));
      boundaries.push_back(off);
    }
    for (size_t cut = 0; cut < b.size(); cut++) {
      Buf prefix(b.begin(), b.begin() + cut);
      std::vector<Value> vs;
      GError* err = nullptr;
      bool ok = decode_all(prefix.data(), prefix.size(), vs, Limits(), &err);
      bool at_boundary =
          std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
      EXPECT_EQ(ok, at_boundary) << "cut at " << cut << ": " << (err ? err->message : "");
      if (!ok) {
        ASSERT_NE(err, nullptr);
        EXPECT_EQ(err->code, GRTMP_ERROR_MALFORMED) << err->message;
      }
      g_clear_error(&err);
    }
  }
}

// ---------------------------------------------------------------------------
// Limits.

namespace {
Buf nested_objects(size_t depth) {
  Buf b;
  for (size_t i = 0; i < depth; i++) {
    b.push_back(0x03);
    put_key(b, "a");
  }
  b.push_back(0x05);
  for (size_t i = 0; i < depth; i++) put_end(b);
  return b;
}
Buf nested_arrays(size_t depth) {
  Buf b;
  for (size_t i = 0; i < depth; i++) {
    b.push_back(0x0a);
    put_u32(b, 1);
  }
  b.push_back(0x05);
  return b;
}
}  // namespace

TEST(Amf0Limits, DepthExactlyAtLimit) {
  Limits l;
  EXPECT_FALSE(dec_fail(nested_objects(l.max_depth), l).failed);
  Failure f = dec_fail(nested_objects(l.max_depth + 1), l);
  EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(f.message.find("max_depth"), std::string::npos) << f.message;
  l.max_depth = 3;
  EXPECT_FALSE(dec_fail(nested_arrays(3), l).failed);
  EXPECT_EQ(dec_fail(nested_arrays(4), l).code, GRTMP_ERROR_LIMIT);
  // Mixed containers count together.
  Buf m{0x0a};
  put_u32(m, 1);
  m.push_back(0x08);
  put_u32(m, 0);
  put_key(m, "x");
  m.push_back(0x10);
  put_key(m, "T");
  put_key(m, "o");
  m.push_back(0x03);
  put_end(m);
  put_end(m);
  put_end(m);
  EXPECT_EQ(dec_fail(m, l).code, GRTMP_ERROR_LIMIT);  // depth 4
  l.max_depth = 4;
  EXPECT_FALSE(dec_fail(m, l).failed);
  // max_depth 0: scalars only.
  l.max_depth = 0;
  EXPECT_FALSE(dec_fail(Buf{0x05}, l).failed);
  EXPECT_EQ(dec_fail(nested_objects(1), l).code, GRTMP_ERROR_LIMIT);
}

TEST(Amf0Limits, HundredThousandDeepFailsFast) {
  Buf objs = nested_objects(100000);
  Buf arrs = nested_arrays(100000);
  Buf ecma;
  for (int i = 0; i < 100000; i++) {
    ecma.push_back(0x08);
    put_u32(ecma, 1);
    put_key(ecma, "k");
  }
  auto t0 = std::chrono::steady_clock::now();
  for (const Buf* b : {&objs, &arrs, &ecma}) {
    Failure f = dec_fail(*b);
    EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
    EXPECT_NE(f.message.find("max_depth (64)"), std::string::npos) << f.message;
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count();
  EXPECT_LT(ms, 2000);  // generous: valgrind / sanitizer runs
}

TEST(Amf0Limits, StrictArrayClaimingFourBillionElements) {
  Buf a{0x0a};
  put_u32(a, 0xffffffffu);
  a.push_back(0x05);
  auto t0 = std::chrono::steady_clock::now();
  Failure f = dec_fail(a);
  EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(f.message.find("max_elements"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("4294967295"), std::string::npos) << f.message;
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0)
                .count(),
            500);
  // Even with max_elements raised to the maximum it fails (count > bytes
  // left) without allocating for the declared count.
  Limits big;
  big.max_elements = 0xffffffffu;
  EXPECT_EQ(dec_fail(a, big).code, GRTMP_ERROR_MALFORMED);
}

TEST(Amf0Limits, ElementsPerContainer) {
  Limits l;
  l.max_elements = 3;
  auto object_with = [](uint8_t marker, int n) {
    Buf b{marker};
    if (marker == 0x08) put_u32(b, 0);
    if (marker == 0x10) put_key(b, "T");
    for (int i = 0; i < n; i++) {
      put_key(b, "k" + std::to_string(i));
      b.push_back(0x05);
    }
    put_end(b);
    return b;
  };
  for (uint8_t m : {uint8_t(0x03), uint8_t(0x08), uint8_t(0x10)}) {
    EXPECT_FALSE(dec_fail(object_with(m, 3), l).failed);
    Failure f = dec_fail(object_with(m, 4), l);
    EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
    EXPECT_NE(f.message.find("max_elements"), std::string::npos) << f.message;
  }
  Buf a{0x0a};
  put_u32(a, 4);
  for (int i = 0; i < 4; i++) a.push_back(0x05);
  EXPECT_EQ(dec_fail(a, l).code, GRTMP_ERROR_LIMIT);
  a[4] = 3;
  a.pop_back();
  EXPECT_FALSE(dec_fail(a, l).failed);
  // An ECMA array's declared count is advisory: a huge count is not a limit
  // violation by itself.
  Buf e{0x08};
  put_u32(e, 0xffffffffu);
  put_end(e);
  EXPECT_FALSE(dec_fail(e, l).failed);
}

TEST(Amf0Limits, StringLength) {
  Limits l;
  l.max_string = 4;
  EXPECT_FALSE(dec_fail(Buf{0x02, 0x00, 0x04, 'a', 'b', 'c', 'd'}, l).failed);
  Failure f = dec_fail(Buf{0x02, 0x00, 0x05, 'a', 'b', 'c', 'd', 'e'}, l);
  EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(f.message.find("max_string"), std::string::npos) << f.message;
  Buf ls{0x0c};
  put_u32(ls, 5);
  for (int i = 0; i < 5; i++) ls.push_back('x');
  EXPECT_EQ(dec_fail(ls, l).code, GRTMP_ERROR_LIMIT);
  ls[0] = 0x0f;  // XML document
  EXPECT_EQ(dec_fail(ls, l).code, GRTMP_ERROR_LIMIT);
  // Property names and class names too.
  Buf o{0x03};
  put_key(o, "longkey");
  o.push_back(0x05);
  put_end(o);
  EXPECT_EQ(dec_fail(o, l).code, GRTMP_ERROR_LIMIT);
  Buf t{0x10};
  put_key(t, "LongClass");
  put_end(t);
  EXPECT_EQ(dec_fail(t, l).code, GRTMP_ERROR_LIMIT);
  // A 4 GB long string fails on the limit with the default limits.
  Buf huge{0x0c};
  put_u32(huge, 0xffffffffu);
  Failure h = dec_fail(huge);
  EXPECT_EQ(h.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(h.message.find("max_string"), std::string::npos);
}

TEST(Amf0Limits, TotalValues) {
  Limits l;
  l.max_total_values = 4;
  Buf four{0x05, 0x05, 0x05, 0x05};
  EXPECT_FALSE(dec_fail(four, l).failed);
  four.push_back(0x05);
  Failure f = dec_fail(four, l);
  EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(f.message.find("max_total_values"), std::string::npos) << f.message;
  // Nested values count: an array of 4 is 5 values.
  Buf a{0x0a};
  put_u32(a, 4);
  for (int i = 0; i < 4; i++) a.push_back(0x05);
  EXPECT_EQ(dec_fail(a, l).code, GRTMP_ERROR_LIMIT);
  // decode() counts per call.
  size_t off = 0;
  Value v;
  for (int i = 0; i < 5; i++) EXPECT_TRUE(decode(four.data(), four.size(), off, v, l, nullptr));
}

// ---------------------------------------------------------------------------
// Random input: never crash; whatever decodes re-encodes to something that
// decodes to the same value.

namespace {
void check_random_buffer(const Buf& b, const Limits& limits) {
  std::vector<Value> vs;
  GError* err = nullptr;
  if (decode_all(b.data(), b.size(), vs, limits, &err)) {
    EXPECT_EQ(err, nullptr);
    Buf again = enc_all(vs);
    std::vector<Value> vs2;
    ASSERT_TRUE(decode_all(again.data(), again.size(), vs2, limits, nullptr));
    EXPECT_EQ(vs, vs2);
  } else {
    ASSERT_NE(err, nullptr);
    EXPECT_EQ(err->domain, GRTMP_ERROR);
    g_error_free(err);
  }
}

Value random_value(std::mt19937& rng, int depth) {
  std::uniform_int_distribution<int> pick(0, depth > 3 ? 9 : 14);
  std::uniform_int_distribution<int> small(0, 5);
  auto str = [&] {
    std::string s(size_t(small(rng)), 'a');
    for (auto& c : s) c = char(rng() & 0xff);
    return s;
  };
  switch (pick(rng)) {
    case 0: return Value::make_number(double(int32_t(rng())) / 7);
    case 1: return Value::make_boolean(rng() & 1);
    case 2: return Value::make_string(str());
    case 3: return Value::make_null();
    case 4: return Value::make_undefined();
    case 5: { Value r = typed(Marker::Reference); r.reference = uint16_t(rng()); return r; }
    case 6: { Value d = typed(Marker::Date); d.number = double(rng()); d.timezone = int16_t(rng()); return d; }
    case 7: { Value l = typed(Marker::LongString); l.string = str(); return l; }
    case 8: { Value x = typed(Marker::XmlDocument); x.string = str(); return x; }
    case 9: return typed(Marker::Unsupported);
    case 10:
    case 11: {
      Value o = pick(rng) & 1 ? Value::make_object() : Value::make_ecma_array();
      int n = small(rng);
      for (int i = 0; i < n; i++) o.properties.emplace_back(str(), random_value(rng, depth + 1));
      o.ecma_count = o.type == Marker::EcmaArray ? uint32_t(rng() % 10) : 0;
      return o;
    }
    case 12: {
      Value t = typed(Marker::TypedObject);
      t.string = str();
      t.properties.emplace_back("x", random_value(rng, depth + 1));
      return t;
    }
    default: {
      Value a = Value::make_strict_array();
      int n = small(rng);
      for (int i = 0; i < n; i++) a.elements.push_back(random_value(rng, depth + 1));
      return a;
    }
  }
}
}  // namespace

TEST(Amf0Property, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  Limits l;
  l.max_depth = 16;
  for (int iter = 0; iter < 30000; iter++) {
    Buf b(rng() % 48);
    for (auto& x : b) {
      // Bias towards valid markers and small lengths so decoding goes deep.
      uint32_t r = rng();
      x = (r & 3) == 0 ? uint8_t(r >> 8) : uint8_t((r >> 8) % 0x13);
    }
    check_random_buffer(b, l);
  }
}

TEST(Amf0Property, MutatedGoldenVectorsNeverCrash) {
  std::mt19937 rng(777);
  std::vector<Buf> seeds;
  for (const auto& f : golden_files("amf0")) seeds.push_back(read_golden(f));
  for (const auto& f : golden_files("command")) seeds.push_back(read_golden(f));
  for (int iter = 0; iter < 20000; iter++) {
    Buf b = seeds[rng() % seeds.size()];
    if (b.empty()) continue;
    int flips = 1 + rng() % 4;
    for (int i = 0; i < flips; i++) b[rng() % b.size()] = uint8_t(rng());
    if (rng() % 4 == 0) b.resize(rng() % (b.size() + 1));
    check_random_buffer(b, Limits());
  }
}

TEST(Amf0Property, RandomValuesRoundTrip) {
  std::mt19937 rng(4242);
  for (int iter = 0; iter < 3000; iter++) {
    Value v = random_value(rng, 0);
    Buf b = enc(v);
    Value back = dec1(b);
    ASSERT_EQ(back, v) << v.to_string();
    ASSERT_EQ(enc(back), b);
  }
}

// ---------------------------------------------------------------------------
// Value helpers.

TEST(Amf0Value, GetAndTypedGetters) {
  Value o = Value::make_object({{"s", Value::make_string("x")},
                                {"n", Value::make_number(2)},
                                {"b", Value::make_boolean(true)},
                                {"s", Value::make_string("second")}});
  EXPECT_EQ(o.get_string("s"), "x");  // first match
  EXPECT_EQ(o.get_number("n"), 2.0);
  EXPECT_EQ(o.get_boolean("b"), true);
  EXPECT_EQ(o.get_string("n"), std::nullopt);  // wrong type
  EXPECT_EQ(o.get_number("s"), std::nullopt);
  EXPECT_EQ(o.get_boolean("s"), std::nullopt);
  EXPECT_EQ(o.get("missing"), nullptr);
  EXPECT_EQ(Value::make_number(1).get("s"), nullptr);
  EXPECT_EQ(Value::make_strict_array().get("s"), nullptr);
  // LongString counts as a string.
  Value ls = typed(Marker::LongString);
  ls.string = "long";
  o.set("ls", ls);
  EXPECT_EQ(o.get_string("ls"), "long");
  // Mutable get.
  o.get("n")->number = 5;
  EXPECT_EQ(o.get_number("n"), 5.0);
}

TEST(Amf0Value, Set) {
  Value o = Value::make_object();
  o.set("a", Value::make_number(1));
  o.set("b", Value::make_number(2));
  o.set("a", Value::make_string("x"));  // replaces in place
  ASSERT_EQ(o.properties.size(), 2u);
  EXPECT_EQ(o.properties[0].first, "a");
  EXPECT_EQ(o.get_string("a"), "x");
  Value& ref = o.set("c", Value::make_null());
  ref = Value::make_boolean(false);
  EXPECT_EQ(o.get_boolean("c"), false);
  // A default (Null) value becomes an object.
  Value n;
  n.set("k", Value::make_number(1));
  EXPECT_EQ(n.type, Marker::Object);
  EXPECT_EQ(n.get_number("k"), 1.0);
  // A built ECMA array keeps its count in step; a decoded one whose count
  // disagreed keeps the wire count.
  Value e = Value::make_ecma_array({{"x", Value::make_null()}});
  EXPECT_EQ(e.ecma_count, 1u);
  e.set("y", Value::make_null());
  EXPECT_EQ(e.ecma_count, 2u);
  e.set("y", Value::make_number(1));
  EXPECT_EQ(e.ecma_count, 2u);
  Value z = dec1(read_golden("amf0/ecma_array_count_zero.bin"));
  z.set("more", Value::make_null());
  EXPECT_EQ(z.ecma_count, 0u);
}

TEST(Amf0Value, Equality) {
  EXPECT_EQ(Value::make_number(1), Value::make_number(1));
  EXPECT_NE(Value::make_number(1), Value::make_number(2));
  EXPECT_EQ(Value::make_number(NAN), Value::make_number(NAN));
  EXPECT_NE(Value::make_string("a"), Value::make_number(0));
  Value ls = typed(Marker::LongString);
  ls.string = "a";
  EXPECT_NE(Value::make_string("a"), ls);  // the type matters
  EXPECT_EQ(Value::make_null(), Value());
  EXPECT_NE(Value::make_null(), Value::make_undefined());
  EXPECT_NE(Value::make_object({{"a", Value::make_null()}}),
            Value::make_object({{"b", Value::make_null()}}));
  EXPECT_NE(Value::make_object({{"a", Value::make_null()}, {"b", Value::make_null()}}),
            Value::make_object({{"b", Value::make_null()}, {"a", Value::make_null()}}));
  Value e1 = Value::make_ecma_array();
  Value e2 = Value::make_ecma_array();
  e2.ecma_count = 3;
  EXPECT_NE(e1, e2);
  Value d1 = typed(Marker::Date), d2 = typed(Marker::Date);
  d2.timezone = 1;
  EXPECT_NE(d1, d2);
  EXPECT_NE(Value::make_strict_array({Value::make_null()}), Value::make_strict_array());
}

TEST(Amf0Value, ToString) {
  EXPECT_EQ(Value::make_number(1.5).to_string(), "1.5");
  EXPECT_EQ(Value::make_number(30).to_string(), "30");
  EXPECT_EQ(Value::make_boolean(true).to_string(), "true");
  EXPECT_EQ(Value::make_string("a\"b\n").to_string(), "\"a\\\"b\\n\"");
  EXPECT_EQ(Value::make_null().to_string(), "null");
  EXPECT_EQ(Value::make_undefined().to_string(), "undefined");
  Value o = Value::make_object({{"app", Value::make_string("live")},
                                {"list", Value::make_strict_array({Value::make_number(1),
                                                                   Value::make_null()})}});
  EXPECT_EQ(o.to_string(), "{app: \"live\", list: [1, null]}");
  EXPECT_EQ(Value::make_ecma_array({{"w", Value::make_number(2)}}).to_string(), "ecma[1]{w: 2}");
  EXPECT_EQ(dec1(read_golden("amf0/typed_object.bin")).to_string(), "Point{x: 1, y: 2}");
  EXPECT_EQ(dec1(read_golden("amf0/reference.bin")).to_string(), "ref(1)");
  EXPECT_EQ(dec1(read_golden("amf0/avmplus.bin")).to_string(), "\"foo\"");
  Value avm = typed(Marker::AvmPlus);
  avm.string = "abc";
  EXPECT_EQ(avm.to_string(), "amf3(3 bytes)");
  EXPECT_EQ(Value::make_number(NAN).to_string(), "NaN");
  std::string big = Value::make_string(std::string(1000, 'x')).to_string();
  EXPECT_LT(big.size(), 300u);
  EXPECT_NE(big.find("1000 bytes"), std::string::npos);
}

TEST(Amf0Value, EncodeToBytes) {
  grtmp::Bytes b = encode_to_bytes({Value::make_string("a"), Value::make_null()});
  ASSERT_EQ(b.size(), 5u);
  EXPECT_EQ(std::memcmp(b.data(), "\x02\x00\x01" "a\x05", 5), 0);
}

// ---------------------------------------------------------------------------
// Encoding sizes the buffer first (encoded_size, then writes through a
// pointer): appending, every marker, and encode_to_bytes agree with it.

TEST(Amf0Encode, AppendsAfterExistingBytes) {
  Value o = Value::make_object({{"k", Value::make_string("v")},
                                {"n", Value::make_strict_array({Value::make_number(2)})}});
  ByteWriter w;
  w.u8(0xaa);
  w.u16(0xbbcc);
  encode(o, w);
  Buf want{0xaa, 0xbb, 0xcc};
  Buf body = enc(o);
  want.insert(want.end(), body.begin(), body.end());
  EXPECT_EQ(w.buffer(), want);
  // encode_all appends too, and equals the values encoded one by one.
  std::vector<Value> vs{Value::make_string("x"), o, Value::make_null()};
  encode_all(vs, w);
  for (const auto& v : vs) {
    Buf b = enc(v);
    want.insert(want.end(), b.begin(), b.end());
  }
  EXPECT_EQ(w.buffer(), want);
  grtmp::Bytes bytes = encode_to_bytes(vs);
  EXPECT_EQ(Buf(bytes.data(), bytes.data() + bytes.size()), enc_all(vs));
  // Nothing to encode: an empty but valid Bytes, and no bytes appended.
  grtmp::Bytes none = encode_to_bytes({});
  EXPECT_TRUE(bool(none));
  EXPECT_EQ(none.size(), 0u);
  const size_t before = w.size();
  encode_all({}, w);
  EXPECT_EQ(w.size(), before);
}

TEST(Amf0Encode, LongKeysAndClassNamesAreCut) {
  // A key or class name over 65535 bytes cannot be expressed: cut, and the
  // length agrees with the bytes written.
  const std::string big(70000, 'k');
  Value o = Value::make_object();
  o.properties.emplace_back(big, Value::make_null());
  Buf b = enc(o);
  ASSERT_EQ(b.size(), 1 + 2 + 65535 + 1 + 3);
  Value back = dec1(b);
  ASSERT_EQ(back.properties.size(), 1u);
  EXPECT_EQ(back.properties[0].first, big.substr(0, 65535));
  Value to = typed(Marker::TypedObject);
  to.string = big;
  b = enc(to);
  ASSERT_EQ(b.size(), 1 + 2 + 65535 + 3);
  EXPECT_EQ(dec1(b).string, big.substr(0, 65535));
}

TEST(Amf0Encode, MarkersThatAreNoValueBecomeNull) {
  // Prints a warning for each: object end and the reserved markers.
  for (Marker m : {Marker::ObjectEnd, Marker::MovieClip, Marker::RecordSet}) {
    Value o = Value::make_object({{"a", typed(m)}, {"b", Value::make_number(1)}});
    Buf b = enc(o);
    Buf want{0x03};
    put_key(want, "a");
    want.push_back(0x05);
    put_key(want, "b");
    Buf num = enc(Value::make_number(1));
    want.insert(want.end(), num.begin(), num.end());
    put_end(want);
    EXPECT_EQ(b, want);
  }
}

// ---------------------------------------------------------------------------
// Reserving container vectors: by a declared count within the buffer's
// budget, else by looking ahead. The decoded values must not depend on it,
// and no count can make the decoder reserve more than the buffer could fill.

namespace {

// Slots reserved in the whole tree, in bytes.
size_t reserved_bytes(const Value& v) {
  size_t n = v.properties.capacity() * sizeof(Property) + v.elements.capacity() * sizeof(Value);
  for (const auto& [k, val] : v.properties) n += reserved_bytes(val);
  for (const auto& e : v.elements) n += reserved_bytes(e);
  return n;
}

}  // namespace

TEST(Amf0Reserve, EcmaCountTooSmallTooLargeOrZero) {
  // Containers in between, so the look-ahead has to resume after each.
  auto ecma = [](uint32_t declared) {
    Buf b{0x08};
    put_u32(b, declared);
    for (int i = 0; i < 40; i++) {
      put_key(b, std::to_string(i));
      switch (i % 4) {
        case 0:
          b.insert(b.end(), {0x00, 0x40, 0x00, 0, 0, 0, 0, 0, 0});  // 2.0
          break;
        case 1:
          b.push_back(0x03);  // {"x": null}
          put_key(b, "x");
          b.push_back(0x05);
          put_end(b);
          break;
        case 2:
          b.push_back(0x0a);  // [true, "s"]
          put_u32(b, 2);
          b.insert(b.end(), {0x01, 0x01, 0x02, 0x00, 0x01, 's'});
          break;
        default:
          b.insert(b.end(), {0x02, 0x00, 0x02, 'h', 'i'});
      }
    }
    put_end(b);
    return b;
  };
  Value want = dec1(ecma(40));
  ASSERT_EQ(want.properties.size(), 40u);
  EXPECT_EQ(want.properties.capacity(), 40u);  // the honest count, exactly
  for (uint32_t declared : {0u, 1u, 3u, 39u, 41u, 1000u, 0xffffffffu}) {
    SCOPED_TRACE(declared);
    Buf b = ecma(declared);
    Value v = dec1(b);
    EXPECT_EQ(v.ecma_count, declared);
    EXPECT_EQ(v.properties, want.properties);
    EXPECT_EQ(enc(v), b);  // the declared count re-encodes as it was
    EXPECT_LE(v.properties.capacity(), std::max<size_t>(2 * 40, declared <= b.size() / 3 ? declared : 0));
  }
}

TEST(Amf0Reserve, ManyPropertiesBetweenContainersStayLinear) {
  // 20000 properties alternating a number and an empty object: the
  // look-ahead runs after every container and the vector grows by doubling.
  Buf b{0x03};
  const int n = 20000;
  for (int i = 0; i < n; i++) {
    put_key(b, std::to_string(i));
    if (i % 2) {
      b.push_back(0x03);
      put_end(b);
    } else {
      b.insert(b.end(), {0x00, 0, 0, 0, 0, 0, 0, 0, 0});
    }
  }
  put_end(b);
  auto t0 = std::chrono::steady_clock::now();
  Value v = dec1(b);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
                .count();
  ASSERT_EQ(v.properties.size(), size_t(n));
  EXPECT_LE(v.properties.capacity(), size_t(2 * n));
  EXPECT_EQ(enc(v), b);
  EXPECT_LT(ms, 2000);  // quadratic re-reserving would take far longer
}

TEST(Amf0Reserve, LyingCountsReserveNoMoreThanTheBufferCouldFill) {
  // 60 nested ECMA arrays and strict arrays, each declaring as many members
  // as the whole buffer could hold, each holding one. Honest buffers of this
  // length could fill at most len/3 properties or len elements.
  for (uint32_t claim : {0u, 1u, 2u, 3u}) {
    SCOPED_TRACE(claim);
    const int depth = 60;
    Buf b;
    for (int i = 0; i < depth; i++) {
      if (i % 2) {
        b.push_back(0x0a);
        put_u32(b, 1);  // strict array counts must be honest: exactly one
      } else {
        b.push_back(0x08);
        put_u32(b, 0);  // patched below
        put_key(b, "a");
      }
    }
    b.push_back(0x05);
    for (int i = depth - 1; i >= 0; i--)
      if (i % 2 == 0) put_end(b);
    // The declared ECMA counts: 0, the most the buffer could hold, more than
    // that, or 2^32-1.
    const uint32_t declared = claim == 0 ? 0 : claim == 1 ? uint32_t(b.size() / 3)
                              : claim == 2 ? uint32_t(b.size())
                                           : 0xffffffffu;
    for (size_t i = 0, at = 0; i < size_t(depth); i++) {
      if (i % 2 == 0) {
        b[at + 1] = uint8_t(declared >> 24);
        b[at + 2] = uint8_t(declared >> 16);
        b[at + 3] = uint8_t(declared >> 8);
        b[at + 4] = uint8_t(declared);
        at += 1 + 4 + 2 + 1;
      } else {
        at += 1 + 4;
      }
    }
    Value v = dec1(b);
    EXPECT_EQ(enc(v), b);
    EXPECT_LE(reserved_bytes(v), b.size() / 3 * sizeof(Property) + 2 * depth * sizeof(Property));
  }
}

// ---------------------------------------------------------------------------
// AMF3 after an AvmPlus marker (0x11): one AMF3 value per marker, decoded
// into the AMF0 model; the wire bytes come back on an unchanged re-encode.

namespace {
// 0x11 followed by `amf3`.
Buf a3(std::initializer_list<uint8_t> amf3) {
  Buf b{0x11};
  b.insert(b.end(), amf3);
  return b;
}
// AMF3 UTF-8-vr inline string.
void put_a3s(Buf& b, const std::string& s) {
  EXPECT_LT(s.size(), 64u);
  b.push_back(uint8_t((s.size() << 1) | 1));
  b.insert(b.end(), s.begin(), s.end());
}
// Decodes `b` (one value), checks the byte-exact re-encode and returns it.
Value a3dec(const Buf& b, const Limits& l = Limits()) {
  Value v = dec1(b, l);
  EXPECT_TRUE(v.amf3);
  EXPECT_EQ(enc(v), b);
  return v;
}
}  // namespace

TEST(Amf3Decode, Scalars) {
  EXPECT_EQ(a3dec(a3({0x00})).type, Marker::Undefined);
  EXPECT_EQ(a3dec(a3({0x01})).type, Marker::Null);
  EXPECT_EQ(a3dec(a3({0x02})), Value::make_boolean(false));
  EXPECT_EQ(a3dec(a3({0x03})), Value::make_boolean(true));
  EXPECT_EQ(a3dec(a3({0x05, 0xc0, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18})),
            Value::make_number(-3.141592653589793));
  Value s = a3dec(a3({0x06, 0x0b, 'h', 0xc3, 0xa9, 'l', 'o'}));
  EXPECT_EQ(s.type, Marker::String);
  EXPECT_EQ(s.string, "h\xc3\xa9lo");
  EXPECT_EQ(a3dec(a3({0x06, 0x01})), Value::make_string(""));
  Value x = a3dec(a3({0x07, 0x09, '<', 'a', '/', '>'}));  // XMLDocument
  EXPECT_EQ(x.type, Marker::XmlDocument);
  EXPECT_EQ(x.string, "<a/>");
  Value x2 = a3dec(a3({0x0b, 0x09, '<', 'b', '/', '>'}));  // E4X XML
  EXPECT_EQ(x2.type, Marker::XmlDocument);
  EXPECT_EQ(x2.string, "<b/>");
  // Date: U29 flag 1, then ms since the epoch (1700000000000).
  Value d = a3dec(a3({0x08, 0x01, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00}));
  EXPECT_EQ(d.type, Marker::Date);
  EXPECT_EQ(d.number, 1700000000000.0);
  EXPECT_EQ(d.timezone, 0);
  // A long AMF3 string becomes a LongString, so it could encode as AMF0.
  Buf big{0x11, 0x06, 0x80 | (140000 * 2 + 1) >> 14, 0x80 | (((140000 * 2 + 1) >> 7) & 0x7f),
          (140000 * 2 + 1) & 0x7f};
  big.resize(big.size() + 140000, 'z');
  Value l = a3dec(big);
  EXPECT_EQ(l.type, Marker::LongString);
  EXPECT_EQ(l.string.size(), 140000u);
}

TEST(Amf3Decode, IntegersU29SignExtended) {
  struct {
    Buf b;
    double v;
  } cases[] = {
      {a3({0x04, 0x00}), 0},
      {a3({0x04, 0x7f}), 127},
      {a3({0x04, 0x81, 0x00}), 128},
      {a3({0x04, 0xff, 0x7f}), 16383},
      {a3({0x04, 0x81, 0x80, 0x00}), 16384},
      {a3({0x04, 0xff, 0xff, 0x7f}), 2097151},
      {a3({0x04, 0x80, 0xc0, 0x80, 0x00}), 2097152},
      {a3({0x04, 0xbf, 0xff, 0xff, 0xff}), 268435455},   // 2^28-1, the largest
      {a3({0x04, 0xc0, 0x80, 0x80, 0x00}), -268435456},  // -2^28, the smallest
      {a3({0x04, 0xff, 0xff, 0xff, 0xff}), -1},
      {a3({0x04, 0xff, 0xff, 0xff, 0xfe}), -2},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.v);
    EXPECT_EQ(a3dec(c.b), Value::make_number(c.v));
  }
}

TEST(Amf3Decode, Arrays) {
  // Dense only: a strict array.
  Value s = a3dec(a3({0x09, 0x07, 0x01, 0x04, 0x01, 0x06, 0x03, 'a', 0x01}));
  EXPECT_EQ(s, Value::make_strict_array({Value::make_number(1), Value::make_string("a"),
                                         Value::make_null()}));
  EXPECT_EQ(a3dec(a3({0x09, 0x01, 0x01})), Value::make_strict_array());
  // Associative part: an ECMA array, dense members keyed by index after it.
  Value e = a3dec(a3({0x09, 0x05, 0x03, 'k', 0x06, 0x03, 'v', 0x01, 0x04, 0x07, 0x02}));
  ASSERT_EQ(e.type, Marker::EcmaArray);
  EXPECT_EQ(e.ecma_count, 3u);
  ASSERT_EQ(e.properties.size(), 3u);
  EXPECT_EQ(e.get_string("k"), "v");
  EXPECT_EQ(e.properties[1].first, "0");
  EXPECT_EQ(e.get_number("0"), 7.0);
  EXPECT_EQ(e.properties[2].first, "1");
  EXPECT_EQ(e.get_boolean("1"), false);
  // Only the dense part is still to come when the buffer is checked for it.
  Value m = a3dec(a3({0x09, 0x03, 0x03, 'a', 0x01, 0x03, 'b', 0x01, 0x03, 'c', 0x01, 0x01, 0x02}));
  EXPECT_EQ(m.ecma_count, 4u);
  EXPECT_EQ(m.get_boolean("0"), false);
}

TEST(Amf3Decode, ObjectsAndTraits) {
  // Typed, sealed (not dynamic): class "P", members a and b.
  Buf t = a3({0x0a, 0x23, 0x03, 'P', 0x03, 'a', 0x03, 'b', 0x04, 0x01, 0x02});
  Value v = a3dec(t);
  ASSERT_EQ(v.type, Marker::TypedObject);
  EXPECT_EQ(v.string, "P");
  ASSERT_EQ(v.properties.size(), 2u);
  EXPECT_EQ(v.get_number("a"), 1.0);
  EXPECT_EQ(v.get_boolean("b"), false);
  // An array of two objects, the second by traits reference (#0), with a
  // dynamic member named by string reference.
  Buf r = a3({0x09, 0x05, 0x01,                                   // [ , ]
              0x0a, 0x1b, 0x01, 0x03, 'x', 0x04, 0x01, 0x03, 'y', 0x04, 0x02, 0x01,
              0x0a, 0x01, 0x04, 0x03, 0x00, 0x04, 0x04, 0x01});
  // #0 traits: anonymous, dynamic, sealed [x]; strings: "x" #0, "y" #1.
  // The second object: traits ref 0 (0x01), x = 3, dynamic "x" (ref 0) = 4.
  Value a = a3dec(r);
  ASSERT_EQ(a.type, Marker::StrictArray);
  ASSERT_EQ(a.elements.size(), 2u);
  EXPECT_EQ(a.elements[0], Value::make_object({{"x", Value::make_number(1)},
                                               {"y", Value::make_number(2)}}));
  EXPECT_EQ(a.elements[1], Value::make_object({{"x", Value::make_number(3)},
                                               {"x", Value::make_number(4)}}));
}

TEST(Amf3Decode, References) {
  // String reference as a value: ["ab", "ab"]; the empty string is never in
  // the table, so ref 0 after "" and "ab" is "ab".
  Value s = a3dec(a3({0x09, 0x07, 0x01, 0x06, 0x01, 0x06, 0x05, 'a', 'b', 0x06, 0x00}));
  EXPECT_EQ(s, Value::make_strict_array({Value::make_string(""), Value::make_string("ab"),
                                         Value::make_string("ab")}));
  // Object reference: [{k: 1}, ref #1] (#0 is the array itself), also a
  // date and an XML by reference (they are in the object table too).
  Value o = a3dec(a3({0x09, 0x0d, 0x01, 0x0a, 0x0b, 0x01, 0x03, 'k', 0x04, 0x01, 0x01,
                      0x0a, 0x02, 0x08, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x04,
                      0x07, 0x03, 'x', 0x0b, 0x06}));
  ASSERT_EQ(o.elements.size(), 6u);
  EXPECT_EQ(o.elements[1], o.elements[0]);
  EXPECT_EQ(o.elements[0], Value::make_object({{"k", Value::make_number(1)}}));
  EXPECT_EQ(o.elements[3], o.elements[2]);
  EXPECT_EQ(o.elements[2].type, Marker::Date);
  EXPECT_EQ(o.elements[4].type, Marker::XmlDocument);
  EXPECT_EQ(o.elements[4].string, "x");
  EXPECT_EQ(o.elements[5], o.elements[4]);  // 0x0b 0x06: XML by ref #3
  // A reference deep inside: [[{a: 1}], ref #2] copies the inner object.
  Value d = a3dec(a3({0x09, 0x05, 0x01, 0x09, 0x03, 0x01, 0x0a, 0x0b, 0x01, 0x03, 'a', 0x04,
                      0x01, 0x01, 0x0a, 0x04}));
  EXPECT_EQ(d.elements[1], d.elements[0].elements[0]);
}

TEST(Amf3Decode, BadReferences) {
  struct {
    Buf b;
    int code;
    const char* what;
  } cases[] = {
      {a3({0x06, 0x00}), GRTMP_ERROR_MALFORMED, "string #0"},
      {a3({0x0a, 0x00}), GRTMP_ERROR_MALFORMED, "object #0"},
      {a3({0x08, 0x02}), GRTMP_ERROR_MALFORMED, "object #1"},
      {a3({0x0a, 0x01}), GRTMP_ERROR_MALFORMED, "traits #0"},
      // The array referring to itself: a cycle.
      {a3({0x09, 0x03, 0x01, 0x09, 0x00}), GRTMP_ERROR_UNSUPPORTED, "cycle"},
      {a3({0x0a, 0x0b, 0x01, 0x03, 's', 0x0a, 0x00, 0x01}), GRTMP_ERROR_UNSUPPORTED, "cycle"},
  };
  for (const auto& c : cases) {
    Failure f = dec_fail(c.b);
    EXPECT_EQ(f.code, c.code) << f.message;
    EXPECT_NE(f.message.find(c.what), std::string::npos) << f.message;
  }
  // Tables belong to one switch: the second 0x11 cannot refer to the
  // first one's "foo".
  Buf two{0x11, 0x06, 0x07, 'f', 'o', 'o', 0x11, 0x06, 0x00};
  Failure f = dec_fail(two);
  EXPECT_EQ(f.code, GRTMP_ERROR_MALFORMED);
  EXPECT_NE(f.message.find("offset 8"), std::string::npos) << f.message;  // the U29
}

TEST(Amf3Decode, UnsupportedMarkers) {
  for (uint8_t m : {0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11}) {
    SCOPED_TRACE(int(m));
    Failure f = dec_fail(Buf{0x11, m, 0x03, 0x00});
    EXPECT_EQ(f.code, GRTMP_ERROR_UNSUPPORTED);
    EXPECT_NE(f.message.find("offset 1"), std::string::npos) << f.message;
  }
  EXPECT_NE(dec_fail(Buf{0x11, 0x0c, 0x03, 0x00}).message.find("byte array"), std::string::npos);
  EXPECT_NE(dec_fail(Buf{0x11, 0x11, 0x01}).message.find("dictionary"), std::string::npos);
  // Externalizable traits: the class decides the body.
  Buf ext = a3({0x0a, 0x07});
  put_a3s(ext, "flex.messaging.io.ArrayCollection");
  ext.push_back(0x09);
  Failure f = dec_fail(ext);
  EXPECT_EQ(f.code, GRTMP_ERROR_UNSUPPORTED);
  EXPECT_NE(f.message.find("externalizable"), std::string::npos) << f.message;
  EXPECT_NE(f.message.find("ArrayCollection"), std::string::npos) << f.message;
  // Past the last AMF3 marker: malformed.
  Failure u = dec_fail(Buf{0x11, 0x12});
  EXPECT_EQ(u.code, GRTMP_ERROR_MALFORMED);
  EXPECT_NE(u.message.find("0x12"), std::string::npos) << u.message;
}

TEST(Amf3Decode, Truncated) {
  for (const Buf& b : {Buf{0x11}, a3({0x04, 0x80}), a3({0x04, 0xff, 0xff, 0xff}),
                       a3({0x05, 0, 0}), a3({0x06, 0x07, 'a'}), a3({0x08, 0x01, 0}),
                       a3({0x09, 0x05, 0x01, 0x01}), a3({0x09, 0x01}),
                       a3({0x0a, 0x0b, 0x01, 0x03, 'a'}), a3({0x0a, 0x13, 0x01, 0x03}),
                       a3({0x0a, 0x13, 0x01, 0x03, 'a'})}) {
    SCOPED_TRACE(b.size());
    Failure f = dec_fail(b);
    EXPECT_EQ(f.code, GRTMP_ERROR_MALFORMED) << f.message;
  }
  // A count the buffer cannot hold fails before reserving anything.
  Failure f = dec_fail(a3({0x09, 0xbf, 0xff, 0xff, 0xff, 0x01}));
  EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);  // 2^27 elements: max_elements first
  Limits l;
  l.max_elements = 0xffffffffu;
  Failure g = dec_fail(a3({0x09, 0xbf, 0xff, 0xff, 0xff, 0x01}), l);
  EXPECT_EQ(g.code, GRTMP_ERROR_MALFORMED);
  EXPECT_NE(g.message.find("bytes remain"), std::string::npos) << g.message;
}

TEST(Amf3Decode, NestedInAnAmf0CommandArgument) {
  // "cmd", 2, null, {info: 0x11 {code: "ok", n: [1]}}: AMF0 around AMF3.
  Buf b{0x02, 0x00, 0x03, 'c', 'm', 'd', 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x03};
  put_key(b, "info");
  b.insert(b.end(), {0x11, 0x0a, 0x0b, 0x01, 0x09, 'c', 'o', 'd', 'e', 0x06, 0x05, 'o', 'k',
                     0x03, 'n', 0x09, 0x03, 0x01, 0x04, 0x01, 0x01});
  put_key(b, "after");
  b.push_back(0x01);
  b.push_back(0x01);
  put_end(b);
  std::vector<Value> vs;
  GError* err = nullptr;
  ASSERT_TRUE(decode_all(b.data(), b.size(), vs, Limits(), &err)) << err->message;
  ASSERT_EQ(vs.size(), 4u);
  const Value* info = vs[3].get("info");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->get_string("code"), "ok");
  ASSERT_NE(info->get("n"), nullptr);
  EXPECT_EQ(*info->get("n"), Value::make_strict_array({Value::make_number(1)}));
  EXPECT_EQ(vs[3].get_boolean("after"), true);
  EXPECT_EQ(enc_all(vs), b);
}

TEST(Amf3Decode, ChangedValueEncodesAsAmf0) {
  Buf b = a3({0x0a, 0x0b, 0x01, 0x03, 'a', 0x04, 0x05, 0x01});
  Value v = a3dec(b);
  Value copy = v;
  EXPECT_EQ(enc(copy), b);  // copies share the source
  v.set("b", Value::make_null());
  Buf e = enc(v);
  EXPECT_EQ(e[0], uint8_t(Marker::Object));
  EXPECT_EQ(dec1(e), v);
  copy.properties[0].second.number = 6;
  EXPECT_EQ(dec1(enc(copy)).get_number("a"), 6.0);
}

TEST(Amf3Limits, DepthElementsStringsValues) {
  Limits l;
  l.max_depth = 3;
  // An AMF3 array at AMF0 depth 2 is the third container.
  Buf ok{0x0a, 0, 0, 0, 1, 0x0a, 0, 0, 0, 1, 0x11, 0x09, 0x03, 0x01, 0x01};
  EXPECT_FALSE(dec_fail(ok, l).failed);
  Buf deep = a3({0x09, 0x03, 0x01, 0x09, 0x03, 0x01, 0x09, 0x03, 0x01, 0x0a, 0x0b, 0x01, 0x01});
  Failure f = dec_fail(deep, l);
  EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(f.message.find("max_depth"), std::string::npos) << f.message;
  // A reference copy counts its depth: [[[]], ref #1] fits 3, [[[]], [ref #1]] not.
  EXPECT_FALSE(dec_fail(a3({0x09, 0x05, 0x01, 0x09, 0x03, 0x01, 0x09, 0x01, 0x01, 0x09, 0x02}),
                        l).failed);
  Failure r = dec_fail(a3({0x09, 0x05, 0x01, 0x09, 0x03, 0x01, 0x09, 0x01, 0x01, 0x09, 0x03,
                           0x01, 0x09, 0x02}),
                       l);
  EXPECT_EQ(r.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(r.message.find("max_depth"), std::string::npos) << r.message;

  Limits e;
  e.max_elements = 2;
  EXPECT_FALSE(dec_fail(a3({0x09, 0x05, 0x01, 0x01, 0x01}), e).failed);
  for (const Buf& b : {a3({0x09, 0x07, 0x01, 0x01, 0x01, 0x01}),
                       a3({0x09, 0x03, 0x03, 'a', 0x01, 0x03, 'b', 0x01, 0x01, 0x01}),
                       a3({0x0a, 0x33, 0x01, 0x03, 'a', 0x03, 'b', 0x03, 'c', 1, 1, 1}),
                       a3({0x0a, 0x0b, 0x01, 0x03, 'a', 1, 0x03, 'b', 1, 0x03, 'c', 1, 0x01})}) {
    Failure g = dec_fail(b, e);
    EXPECT_EQ(g.code, GRTMP_ERROR_LIMIT) << g.message;
    EXPECT_NE(g.message.find("max_elements"), std::string::npos) << g.message;
  }

  Limits s;
  s.max_string = 3;
  EXPECT_FALSE(dec_fail(a3({0x06, 0x07, 'a', 'b', 'c'}), s).failed);
  for (const Buf& b : {a3({0x06, 0x09, 'a', 'b', 'c', 'd'}), a3({0x07, 0x09, 'a', 'b', 'c', 'd'}),
                       a3({0x0a, 0x0b, 0x01, 0x09, 'a', 'b', 'c', 'd', 0x01, 0x01}),
                       a3({0x0a, 0x03, 0x09, 'a', 'b', 'c', 'd'})}) {
    Failure g = dec_fail(b, s);
    EXPECT_EQ(g.code, GRTMP_ERROR_LIMIT) << g.message;
    EXPECT_NE(g.message.find("max_string"), std::string::npos) << g.message;
    EXPECT_NE(g.message.find("AMF3"), std::string::npos) << g.message;
  }

  Limits t;
  t.max_total_values = 3;
  EXPECT_FALSE(dec_fail(a3({0x09, 0x05, 0x01, 0x01, 0x01}), t).failed);
  EXPECT_EQ(dec_fail(a3({0x09, 0x07, 0x01, 0x01, 0x01, 0x01}), t).code, GRTMP_ERROR_LIMIT);
  // [[null], ref #1]: the copy is two more values.
  Failure c = dec_fail(a3({0x09, 0x05, 0x01, 0x09, 0x03, 0x01, 0x01, 0x09, 0x02}), t);
  EXPECT_EQ(c.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(c.message.find("max_total_values"), std::string::npos) << c.message;
}

TEST(Amf3Limits, ReferencesCannotExplode) {
  // One array of 2000 references to an earlier array of 1000 nulls: two
  // million values from 5 kB.
  Buf x{0x11, 0x09};
  const uint32_t n = 2000;
  x.push_back(uint8_t(0x80 | ((n * 2 + 1) >> 7)));
  x.push_back(uint8_t((n * 2 + 1) & 0x7f));
  x.push_back(0x01);
  // Element 0: an array of 1000 nulls (#1); the rest refer to it.
  x.insert(x.end(), {0x09, 0x8f, 0x51, 0x01});  // 1000 dense
  x.insert(x.end(), 1000, 0x01);
  for (uint32_t i = 1; i < n; i++) x.insert(x.end(), {0x09, 0x02});
  const auto t0 = std::chrono::steady_clock::now();
  Failure f = dec_fail(x);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(f.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(f.message.find("max_amf3_copied"), std::string::npos) << f.message;
  // Strings by reference count their bytes.
  Limits l;
  l.max_amf3_copied = 9;
  Buf s = a3({0x09, 0x07, 0x01, 0x06, 0x0b, 'a', 'b', 'c', 'd', 'e', 0x06, 0x00, 0x06, 0x00});
  Failure g = dec_fail(s, l);
  EXPECT_EQ(g.code, GRTMP_ERROR_LIMIT);
  EXPECT_NE(g.message.find("max_amf3_copied"), std::string::npos) << g.message;
  l.max_amf3_copied = 10;  // two copies of 5 bytes fit
  EXPECT_FALSE(dec_fail(s, l).failed);
}

TEST(Amf3Golden, SwitchObject) {
  Buf b = read_golden("amf0/amf3_switch_object.bin");
  Value v = dec1(b);
  ASSERT_EQ(v.type, Marker::Object);
  ASSERT_TRUE(v.amf3);
  EXPECT_EQ(v.amf3->bytes.size(), b.size() - 1);
  ASSERT_EQ(v.properties.size(), 8u);
  // Sealed members first, then the dynamic ones in wire order.
  const char* keys[] = {"app", "objectEncoding", "tcUrl", "n", "d", "list", "same", "s2"};
  for (size_t i = 0; i < 8; i++) EXPECT_EQ(v.properties[i].first, keys[i]);
  EXPECT_EQ(v.get_string("app"), "live");
  EXPECT_EQ(v.get_number("objectEncoding"), 3.0);
  EXPECT_EQ(v.get_string("tcUrl"), "rtmp://h/live");
  EXPECT_EQ(v.get_number("n"), -1.0);
  EXPECT_EQ(v.get_number("d"), 1.5);
  const Value* list = v.get("list");
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->type, Marker::StrictArray);
  ASSERT_EQ(list->elements.size(), 2u);
  for (const Value& p : list->elements) {
    EXPECT_EQ(p.type, Marker::TypedObject);
    EXPECT_EQ(p.string, "Point");
  }
  EXPECT_EQ(list->elements[0].get_number("x"), 1.0);
  EXPECT_EQ(list->elements[0].get_number("y"), 2.0);
  EXPECT_EQ(list->elements[1].get_number("x"), 3.0);  // by traits reference
  EXPECT_EQ(list->elements[1].get_number("y"), 4.0);
  ASSERT_NE(v.get("same"), nullptr);
  EXPECT_EQ(*v.get("same"), list->elements[0]);  // object reference #2
  EXPECT_EQ(v.get_string("s2"), "live");          // string reference #2
  EXPECT_EQ(enc(v), b);
}

TEST(Amf3Golden, ConnectCommand) {
  Buf b = read_golden("amf0/amf3_connect_command.bin");
  std::vector<Value> vs;
  GError* err = nullptr;
  ASSERT_TRUE(decode_all(b.data(), b.size(), vs, Limits(), &err)) << err->message;
  ASSERT_EQ(vs.size(), 4u);
  EXPECT_EQ(vs[0], Value::make_string("connect"));
  EXPECT_EQ(vs[1], Value::make_number(1));
  const Value& o = vs[2];
  ASSERT_EQ(o.type, Marker::Object);
  EXPECT_TRUE(o.amf3);
  EXPECT_EQ(o.properties.size(), 6u);
  EXPECT_EQ(o.get_string("app"), "live");
  EXPECT_EQ(o.get_string("flashVer"), "WIN 32,0,0,0");
  EXPECT_EQ(o.get_string("tcUrl"), "rtmp://localhost/live");
  EXPECT_EQ(o.get_boolean("fpad"), false);
  EXPECT_EQ(o.get_number("capabilities"), 239.0);
  EXPECT_EQ(o.get_number("objectEncoding"), 3.0);
  ASSERT_EQ(vs[3].type, Marker::Object);
  EXPECT_FALSE(vs[3].amf3);
  EXPECT_EQ(vs[3].get_string("user"), "live");
  EXPECT_TRUE(vs[3].get("user")->amf3);
  EXPECT_EQ(enc_all(vs), b);
}

TEST(Amf3Property, RandomBytesAfterSwitchNeverCrash) {
  std::mt19937 rng(1234);
  const Buf seeds[] = {read_golden("amf0/amf3_switch_object.bin"),
                       read_golden("amf0/amf3_connect_command.bin")};
  for (int i = 0; i < 20000; i++) {
    Buf b;
    if (i % 2) {
      b = seeds[i % 4 / 2];
      for (int k = 0; k < 1 + int(rng() % 4); k++) b[rng() % b.size()] = uint8_t(rng());
    } else {
      b.push_back(0x11);
      const size_t n = rng() % 24;
      for (size_t k = 0; k < n; k++) b.push_back(uint8_t(rng() % 20));
    }
    std::vector<Value> vs;
    if (decode_all(b.data(), b.size(), vs, Limits(), nullptr)) {
      // Same length; not always the same bytes (an AMF0 boolean after the
      // AMF3 value may be non-canonical), but the same values.
      Buf e = enc_all(vs);
      EXPECT_EQ(e.size(), b.size());
      std::vector<Value> back;
      ASSERT_TRUE(decode_all(e.data(), e.size(), back, Limits(), nullptr));
      EXPECT_EQ(back, vs);
    }
  }
}
