// AMF0 (Action Message Format 0) values, decoder and encoder.
//
// Every marker of the AMF0 specification decodes; the type is preserved so
// a decoded value re-encodes byte-exact (a LongString stays a LongString, an
// ECMA array keeps its declared count). Limits bound nesting depth, element
// counts and string lengths; each violation is a GRTMP_ERROR_LIMIT error
// naming the limit.
#pragma once

#include <glib.h>

#include <cstdint>
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
  AvmPlus = 0x11,  // switch to AMF3: the rest of the value is AMF3, kept raw
};

struct Value;
using Property = std::pair<std::string, Value>;

struct Value {
  Marker type = Marker::Null;
  double number = 0;            // Number; Date (ms since epoch)
  bool boolean = false;         // Boolean
  int16_t timezone = 0;         // Date (reserved, kept for byte-exact round trip)
  uint16_t reference = 0;       // Reference (index of an earlier complex value)
  std::string string;           // String, LongString, XmlDocument, TypedObject class name,
                                // AvmPlus: the raw AMF3 bytes after the marker
                                // (AMF3 lengths are unknown without an AMF3 parser, so a
                                // top-level AvmPlus takes the rest of the buffer; inside
                                // a container it is GRTMP_ERROR_UNSUPPORTED)
  std::vector<Property> properties;  // Object, EcmaArray, TypedObject (in wire order)
  std::vector<Value> elements;       // StrictArray
  uint32_t ecma_count = 0;           // EcmaArray: the declared count as on the wire

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

struct Limits {
  uint32_t max_depth = 64;           // nested objects/arrays
  uint32_t max_elements = 65536;     // properties or elements in one container
  uint32_t max_string = 1u << 20;    // bytes in one string (LongString / XML too)
  uint32_t max_total_values = 1u << 20;  // values in one decode call
};

// Decodes one value at `offset`, advancing it. Errors: GRTMP_ERROR_MALFORMED
// (truncated, bad marker), GRTMP_ERROR_LIMIT (a limit above).
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
