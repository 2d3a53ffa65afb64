// AMF0 (Action Message Format 0) values, decoder and encoder.
//
// Every marker of the AMF0 specification decodes; the type is preserved so
// a decoded value re-encodes byte-exact (a LongString stays a LongString, an
// ECMA array keeps its declared count). Limits bound nesting depth, element
// counts and string lengths; each violation is a GRTMP_ERROR_LIMIT error
// naming the limit.
//
// AMF3 after an AvmPlus marker (0x11, as type-17 commands from Flash clients
// with objectEncoding 3 send it) decodes too, one AMF3 value per marker, into
// the same Value model (an AMF3 object becomes an Object, an integer a
// Number, ...); see amf0.cpp for the mapping. AMF3 is never encoded: a value
// built or changed by the caller encodes as AMF0.
#pragma once

#include <glib.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grtmp/bytes.h"

namespace grtmp::amf0 {

enum class Marker : uint8_t {
  Number = 0x00,
  Boolean = 0x01,
  String = 0x02,
  Object = 0x03,
  MovieClip = 0x04,  // reserved by the spec; decoded as an error
  Null = 0x05,
  Undefined = 0x06,
  Reference = 0x07,
  EcmaArray = 0x08,
  ObjectEnd = 0x09,
  StrictArray = 0x0a,
  Date = 0x0b,
  LongString = 0x0c,
  Unsupported = 0x0d,
  RecordSet = 0x0e,  // reserved by the spec; decoded as an error
  XmlDocument = 0x0f,
  TypedObject = 0x10,
  AvmPlus = 0x11,  // switch to AMF3 for one value: decoded into the AMF0 types above,
                   // so no decoded Value has this type (a built one encodes as 0x11
                   // followed by Value::string, raw)
};

struct Value;
struct Amf3Source;
using Property = std::pair<std::string, Value>;

struct Value {
  Marker type = Marker::Null;
  double number = 0;            // Number; Date (ms since epoch)
  bool boolean = false;         // Boolean
  int16_t timezone = 0;         // Date (reserved, kept for byte-exact round trip)
  uint16_t reference = 0;       // Reference (index of an earlier complex value)
  std::string string;           // String, LongString, XmlDocument, TypedObject class name,
                                // AvmPlus (built only): raw bytes written after the marker
  std::vector<Property> properties;  // Object, EcmaArray, TypedObject (in wire order)
  std::vector<Value> elements;       // StrictArray
  uint32_t ecma_count = 0;           // EcmaArray: the declared count as on the wire
  // Set on a value decoded from AMF3 (after 0x11): its wire bytes and the
  // value as decoded. While the value still equals what was decoded, encode
  // writes those bytes again (byte-exact round trip); once changed, it
  // encodes as AMF0. Ignored by operator==.
  std::shared_ptr<const Amf3Source> amf3;

  static Value make_number(double v);
  static Value make_boolean(bool v);
  static Value make_string(std::string_view v);  // LongString when longer than 65535
  static Value make_null();
  static Value make_undefined();
  static Value make_object(std::vector<Property> props = {});
  static Value make_ecma_array(std::vector<Property> props = {});
  static Value make_strict_array(std::vector<Value> elems = {});

  bool is_null_or_undefined() const { return type == Marker::Null || type == Marker::Undefined; }
  bool is_string() const { return type == Marker::String || type == Marker::LongString; }
  bool is_number() const { return type == Marker::Number; }
  bool is_object_like() const {
    return type == Marker::Object || type == Marker::EcmaArray || type == Marker::TypedObject;
  }

  // Property lookup on Object / EcmaArray / TypedObject (first match), else nullptr.
  const Value* get(std::string_view key) const;
  Value* get(std::string_view key);
  std::optional<std::string_view> get_string(std::string_view key) const;
  std::optional<double> get_number(std::string_view key) const;
  std::optional<bool> get_boolean(std::string_view key) const;
  // Appends (or replaces) a property on an object-like value. A value that
  // is not object-like (e.g. a default-built Null) becomes an empty Object
  // first. On a built EcmaArray the declared count follows the contents.
  Value& set(std::string_view key, Value v);

  bool operator==(const Value& o) const;
  // Human-readable one-line rendering for logs and tests.
  std::string to_string() const;
};

// What an AMF3-decoded value came from (see Value::amf3).
struct Amf3Source {
  std::string bytes;  // the AMF3 value after the 0x11 marker, as on the wire
  Value decoded;      // the value as decoded (its own amf3 is empty)
};

struct Limits {
  uint32_t max_depth = 64;           // nested objects/arrays
  uint32_t max_elements = 65536;     // properties or elements in one container
  uint32_t max_string = 1u << 20;    // bytes in one string (LongString / XML too)
  uint32_t max_total_values = 1u << 20;  // values in one decode call
  // AMF3 references (string, object and traits) copy what they refer to
  // into the tree, so a few bytes can stand for a lot of data: this bounds
  // the copies in one decode call, counting 16 per copied value plus the
  // bytes of copied strings and keys.
  uint32_t max_amf3_copied = 1u << 20;
};

// Decodes one value at `offset`, advancing it. Errors: GRTMP_ERROR_MALFORMED
// (truncated, bad marker, bad AMF3 reference), GRTMP_ERROR_LIMIT (a limit
// above), GRTMP_ERROR_UNSUPPORTED (AMF3 byte arrays, vectors, dictionaries,
// externalizable objects and cyclic references, which the model cannot hold).
bool decode(const uint8_t* data, size_t len, size_t& offset, Value& out, const Limits& limits,
            GError** error);
// Decodes values until the end of the buffer.
bool decode_all(const uint8_t* data, size_t len, std::vector<Value>& out, const Limits& limits,
                GError** error);

void encode(const Value& v, ByteWriter& out);
void encode_all(const std::vector<Value>& values, ByteWriter& out);
// Convenience: AMF0-encode a sequence of values into a new Bytes.
Bytes encode_to_bytes(const std::vector<Value>& values);

}  // namespace grtmp::amf0
