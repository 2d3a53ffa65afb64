// AMF0 decoder and encoder (AMF0 specification, Adobe, 2006).
//
// Decoding is recursive over containers, but the depth is checked before
// every descent, so the stack use is bounded by Limits::max_depth (keep it
// modest: encoding, comparing and destroying a Value recurse too).
// Declared counts are never trusted for allocation: a strict array that
// claims 2^32-1 elements fails on the max_elements limit before anything is
// read, and no container reserves by its declared count.
//
// Byte-exact round trip: the decoded Value keeps the marker (String vs
// LongString), the ECMA array's declared count, the Date's time zone and the
// raw bytes after an AvmPlus marker, so encode(decode(x)) == x for every
// vector this decoder accepts.
//
// AvmPlus (0x11): the value that follows is AMF3, whose length is unknown
// without an AMF3 parser. At the top level the decoder keeps everything from
// after the marker to the end of the buffer in Value::string and consumes
// it; inside an AMF0 container that is impossible (the container's end
// could not be found), so it is reported as GRTMP_ERROR_UNSUPPORTED.
#include "grtmp/amf0.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include "grtmp/error.h"

namespace grtmp::amf0 {

namespace {

const char* marker_name(uint8_t m) {
  switch (static_cast<Marker>(m)) {
    case Marker::Number:
      return "number";
    case Marker::Boolean:
      return "boolean";
    case Marker::String:
      return "string";
    case Marker::Object:
      return "object";
    case Marker::MovieClip:
      return "movieclip";
    case Marker::Null:
      return "null";
    case Marker::Undefined:
      return "undefined";
    case Marker::Reference:
      return "reference";
    case Marker::EcmaArray:
      return "ecma-array";
    case Marker::ObjectEnd:
      return "object-end";
    case Marker::StrictArray:
      return "strict-array";
    case Marker::Date:
      return "date";
    case Marker::LongString:
      return "long-string";
    case Marker::Unsupported:
      return "unsupported";
    case Marker::RecordSet:
      return "recordset";
    case Marker::XmlDocument:
      return "xml-document";
    case Marker::TypedObject:
      return "typed-object";
    case Marker::AvmPlus:
      return "avmplus";
  }
  return "unknown";
}

class Decoder {
 public:
  Decoder(const uint8_t* data, size_t len, const Limits& limits, GError** error)
      : base_(data), len_(len), limits_(limits), error_(error) {}

  // Decodes one value at `off`. `depth` is the number of containers that
  // enclose the value.
  bool value(size_t& off, Value& out, uint32_t depth) {
    if (++total_ > limits_.max_total_values)
      return limit("AMF0 value count exceeds max_total_values (%u) at offset %zu",
                   limits_.max_total_values, off);
    if (off >= len_) return truncated(off, "value marker");
    const size_t start = off;
    const uint8_t m = base_[off++];
    out.type = static_cast<Marker>(m);
    switch (static_cast<Marker>(m)) {
      case Marker::Number:
        return f64(off, out.number, "number");
      case Marker::Boolean:
        // The spec: 0 is false, anything else true. encode writes 0 or 1, so
        // a non-canonical true byte is the one thing that does not round
        // trip byte-exact.
        if (len_ - off < 1) return truncated(off, "boolean");
        out.boolean = base_[off++] != 0;
        return true;
      case Marker::String:
        return short_string(off, out.string, "string");
      case Marker::LongString:
        return long_string(off, out.string, "long string");
      case Marker::XmlDocument:
        return long_string(off, out.string, "XML document");
      case Marker::Null:
      case Marker::Undefined:
      case Marker::Unsupported:
        return true;
      case Marker::Reference: {
        if (len_ - off < 2) return truncated(off, "reference index");
        out.reference = uint16_t((base_[off] << 8) | base_[off + 1]);
        off += 2;
        return true;
      }
      case Marker::Date: {
        if (!f64(off, out.number, "date")) return false;
        if (len_ - off < 2) return truncated(off, "date time zone");
        out.timezone = int16_t(uint16_t((base_[off] << 8) | base_[off + 1]));
        off += 2;
        return true;
      }
      case Marker::Object:
        if (!enter(start, depth)) return false;
        return properties(off, out, depth + 1);
      case Marker::TypedObject:
        if (!enter(start, depth)) return false;
        if (!short_string(off, out.string, "typed object class name")) return false;
        return properties(off, out, depth + 1);
      case Marker::EcmaArray: {
        if (!enter(start, depth)) return false;
        if (len_ - off < 4) return truncated(off, "ECMA array count");
        out.ecma_count = load_u32(base_ + off);  // advisory: read until object end
        off += 4;
        return properties(off, out, depth + 1);
      }
      case Marker::StrictArray: {
        if (!enter(start, depth)) return false;
        if (len_ - off < 4) return truncated(off, "strict array count");
        const uint32_t count = load_u32(base_ + off);
        if (count > limits_.max_elements)
          return limit(
              "AMF0 strict array at offset %zu declares %u elements, exceeds "
              "max_elements (%u)",
              start, count, limits_.max_elements);
        off += 4;
        // Every element takes at least one byte: a count larger than what is
        // left cannot be satisfied.
        if (count > len_ - off)
          return malformed(
              "AMF0 strict array at offset %zu declares %u elements but only %zu "
              "bytes remain",
              start, count, len_ - off);
        for (uint32_t i = 0; i < count; i++) {
          out.elements.emplace_back();
          if (!value(off, out.elements.back(), depth + 1)) return false;
        }
        return true;
      }
      case Marker::ObjectEnd:
        return malformed(
            "AMF0 object-end marker at offset %zu where a value was expected "
            "(only valid after an empty key inside an object)",
            start);
      case Marker::AvmPlus:
        if (depth > 0)
          return fail(GRTMP_ERROR_UNSUPPORTED,
                      "AMF0 avmplus (AMF3) marker at offset %zu inside a container: its length "
                      "is unknown without an AMF3 decoder",
                      start);
        out.string.assign(reinterpret_cast<const char*>(base_ + off), len_ - off);
        off = len_;
        return true;
      case Marker::MovieClip:
      case Marker::RecordSet:
        return malformed("AMF0 marker 0x%02x (%s) at offset %zu is reserved by the spec", m,
                         marker_name(m), start);
    }
    return malformed("unknown AMF0 marker 0x%02x at offset %zu", m, start);
  }

 private:
  // Properties of an Object / EcmaArray / TypedObject, up to and including
  // the object end (empty key + 0x09).
  bool properties(size_t& off, Value& out, uint32_t depth) {
    for (;;) {
      const size_t key_off = off;
      std::string key;
      if (!short_string(off, key, "property name")) return false;
      if (key.empty()) {
        if (off >= len_) return truncated(off, "object end marker");
        if (base_[off] == static_cast<uint8_t>(Marker::ObjectEnd)) {
          off++;
          return true;
        }
        // An empty key followed by a real value: unusual but representable.
      }
      if (out.properties.size() >= limits_.max_elements)
        return limit("AMF0 %s has more than max_elements (%u) properties at offset %zu",
                     marker_name(uint8_t(out.type)), limits_.max_elements, key_off);
      out.properties.emplace_back(std::move(key), Value());
      if (!value(off, out.properties.back().second, depth)) return false;
    }
  }

  bool enter(size_t start, uint32_t depth) {
    if (depth + 1 > limits_.max_depth)
      return limit("AMF0 nesting depth exceeds max_depth (%u) at offset %zu", limits_.max_depth,
                   start);
    return true;
  }

  bool f64(size_t& off, double& v, const char* what) {
    if (len_ - off < 8) return truncated(off, what);
    uint64_t bits = (uint64_t(load_u32(base_ + off)) << 32) | load_u32(base_ + off + 4);
    std::memcpy(&v, &bits, sizeof v);
    off += 8;
    return true;
  }

  bool short_string(size_t& off, std::string& s, const char* what) {
    if (len_ - off < 2) return truncated(off, what);
    const size_t n = (size_t(base_[off]) << 8) | base_[off + 1];
    return string_body(off, 2, n, s, what);
  }

  bool long_string(size_t& off, std::string& s, const char* what) {
    if (len_ - off < 4) return truncated(off, what);
    const size_t n = load_u32(base_ + off);
    return string_body(off, 4, n, s, what);
  }

  bool string_body(size_t& off, size_t hdr, size_t n, std::string& s, const char* what) {
    if (n > limits_.max_string)
      return limit("AMF0 %s at offset %zu is %zu bytes, exceeds max_string (%u)", what, off, n,
                   limits_.max_string);
    if (n > len_ - off - hdr)
      return malformed("AMF0 %s at offset %zu claims %zu bytes but only %zu remain", what, off, n,
                       len_ - off - hdr);
    s.assign(reinterpret_cast<const char*>(base_ + off + hdr), n);
    off += hdr + n;
    return true;
  }

  bool truncated(size_t off, const char* what) {
    return malformed("AMF0 data truncated at offset %zu (reading %s, buffer is %zu bytes)", off,
                     what, len_);
  }

  bool malformed(const char* fmt, ...) G_GNUC_PRINTF(2, 3) {
    va_list ap;
    va_start(ap, fmt);
    vfail(GRTMP_ERROR_MALFORMED, fmt, ap);
    va_end(ap);
    return false;
  }
  bool limit(const char* fmt, ...) G_GNUC_PRINTF(2, 3) {
    va_list ap;
    va_start(ap, fmt);
    vfail(GRTMP_ERROR_LIMIT, fmt, ap);
    va_end(ap);
    return false;
  }
  bool fail(int code, const char* fmt, ...) G_GNUC_PRINTF(3, 4) {
    va_list ap;
    va_start(ap, fmt);
    vfail(code, fmt, ap);
    va_end(ap);
    return false;
  }
  void vfail(int code, const char* fmt, va_list ap) G_GNUC_PRINTF(3, 0) {
    if (!error_) return;
    gchar* msg = g_strdup_vprintf(fmt, ap);
    g_set_error_literal(error_, GRTMP_ERROR, code, msg);
    g_free(msg);
  }

  const uint8_t* base_;
  size_t len_;
  const Limits& limits_;
  GError** error_;
  uint32_t total_ = 0;
};

void encode_short_key(std::string_view s, ByteWriter& out) {
  // Keys are UTF-8 with a 16-bit length; a longer key cannot be expressed
  // and is cut at 65535 bytes.
  const size_t n = std::min<size_t>(s.size(), 0xffff);
  out.u16(uint16_t(n));
  out.raw(s.data(), n);
}

void encode_long(std::string_view s, ByteWriter& out) {
  out.u32(uint32_t(std::min<size_t>(s.size(), 0xffffffffu)));
  out.raw(s.data(), std::min<size_t>(s.size(), 0xffffffffu));
}

void encode_properties(const std::vector<Property>& props, ByteWriter& out) {
  for (const auto& [k, v] : props) {
    encode_short_key(k, out);
    encode(v, out);
  }
  out.u16(0);
  out.u8(uint8_t(Marker::ObjectEnd));
}

void append_number(std::string& s, double v) {
  if (std::isnan(v)) {
    s += "NaN";
    return;
  }
  if (std::isinf(v)) {
    s += v < 0 ? "-Infinity" : "Infinity";
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}

void append_quoted(std::string& s, std::string_view v) {
  constexpr size_t kMax = 200;
  s += '"';
  size_t n = std::min(v.size(), kMax);
  for (size_t i = 0; i < n; i++) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    switch (c) {
      case '"':
        s += "\\\"";
        break;
      case '\\':
        s += "\\\\";
        break;
      case '\n':
        s += "\\n";
        break;
      case '\r':
        s += "\\r";
        break;
      case '\t':
        s += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char b[8];
          std::snprintf(b, sizeof b, "\\x%02x", c);
          s += b;
        } else {
          s += char(c);
        }
    }
  }
  s += '"';
  if (v.size() > kMax) s += "...(" + std::to_string(v.size()) + " bytes)";
}

void append_value(std::string& s, const Value& v);

void append_properties(std::string& s, const std::vector<Property>& props) {
  s += '{';
  bool first = true;
  for (const auto& [k, val] : props) {
    if (!first) s += ", ";
    first = false;
    s += k;
    s += ": ";
    append_value(s, val);
  }
  s += '}';
}

void append_value(std::string& s, const Value& v) {
  switch (v.type) {
    case Marker::Number:
      append_number(s, v.number);
      break;
    case Marker::Boolean:
      s += v.boolean ? "true" : "false";
      break;
    case Marker::String:
      append_quoted(s, v.string);
      break;
    case Marker::LongString:
      s += "long:";
      append_quoted(s, v.string);
      break;
    case Marker::XmlDocument:
      s += "xml:";
      append_quoted(s, v.string);
      break;
    case Marker::Null:
      s += "null";
      break;
    case Marker::Undefined:
      s += "undefined";
      break;
    case Marker::Unsupported:
      s += "unsupported";
      break;
    case Marker::Reference:
      s += "ref(" + std::to_string(v.reference) + ")";
      break;
    case Marker::Date:
      s += "date(";
      append_number(s, v.number);
      s += ", tz " + std::to_string(v.timezone) + ")";
      break;
    case Marker::Object:
      append_properties(s, v.properties);
      break;
    case Marker::TypedObject:
      s += v.string;
      append_properties(s, v.properties);
      break;
    case Marker::EcmaArray:
      s += "ecma[" + std::to_string(v.ecma_count) + "]";
      append_properties(s, v.properties);
      break;
    case Marker::StrictArray: {
      s += '[';
      for (size_t i = 0; i < v.elements.size(); i++) {
        if (i) s += ", ";
        append_value(s, v.elements[i]);
      }
      s += ']';
      break;
    }
    case Marker::AvmPlus:
      s += "amf3(" + std::to_string(v.string.size()) + " bytes)";
      break;
    case Marker::ObjectEnd:
      s += "object-end";
      break;
    case Marker::MovieClip:
      s += "movieclip";
      break;
    case Marker::RecordSet:
      s += "recordset";
      break;
    default:
      s += "marker(" + std::to_string(int(v.type)) + ")";
      break;
  }
}

}  // namespace

// ---- Value ----

Value Value::make_number(double v) {
  Value r;
  r.type = Marker::Number;
  r.number = v;
  return r;
}

Value Value::make_boolean(bool v) {
  Value r;
  r.type = Marker::Boolean;
  r.boolean = v;
  return r;
}

Value Value::make_string(std::string_view v) {
  Value r;
  r.type = v.size() > 0xffff ? Marker::LongString : Marker::String;
  r.string.assign(v);
  return r;
}

Value Value::make_null() { return Value(); }

Value Value::make_undefined() {
  Value r;
  r.type = Marker::Undefined;
  return r;
}

Value Value::make_object(std::vector<Property> props) {
  Value r;
  r.type = Marker::Object;
  r.properties = std::move(props);
  return r;
}

Value Value::make_ecma_array(std::vector<Property> props) {
  Value r;
  r.type = Marker::EcmaArray;
  r.ecma_count = uint32_t(props.size());
  r.properties = std::move(props);
  return r;
}

Value Value::make_strict_array(std::vector<Value> elems) {
  Value r;
  r.type = Marker::StrictArray;
  r.elements = std::move(elems);
  return r;
}

const Value* Value::get(std::string_view key) const {
  if (!is_object_like()) return nullptr;
  for (const auto& p : properties)
    if (p.first == key) return &p.second;
  return nullptr;
}

Value* Value::get(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->get(key));
}

std::optional<std::string_view> Value::get_string(std::string_view key) const {
  const Value* v = get(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string_view(v->string);
}

std::optional<double> Value::get_number(std::string_view key) const {
  const Value* v = get(key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->number;
}

std::optional<bool> Value::get_boolean(std::string_view key) const {
  const Value* v = get(key);
  if (!v || v->type != Marker::Boolean) return std::nullopt;
  return v->boolean;
}

Value& Value::set(std::string_view key, Value v) {
  if (!is_object_like()) {
    // Setting a property turns a non-container (typically a default-built
    // Null) into an empty Object first.
    *this = make_object();
  }
  if (Value* existing = get(key)) {
    *existing = std::move(v);
    return *existing;
  }
  // Keep a built ECMA array's declared count in step with its contents; a
  // decoded one whose count already disagreed is left as it was on the wire.
  if (type == Marker::EcmaArray && ecma_count == properties.size()) ecma_count++;
  properties.emplace_back(std::string(key), std::move(v));
  return properties.back().second;
}

bool Value::operator==(const Value& o) const {
  if (type != o.type) return false;
  switch (type) {
    case Marker::Number:
      return number == o.number || (std::isnan(number) && std::isnan(o.number));
    case Marker::Boolean:
      return boolean == o.boolean;
    case Marker::String:
    case Marker::LongString:
    case Marker::XmlDocument:
    case Marker::AvmPlus:
      return string == o.string;
    case Marker::Reference:
      return reference == o.reference;
    case Marker::Date:
      return (number == o.number || (std::isnan(number) && std::isnan(o.number))) &&
             timezone == o.timezone;
    case Marker::Object:
      return properties == o.properties;
    case Marker::TypedObject:
      return string == o.string && properties == o.properties;
    case Marker::EcmaArray:
      return ecma_count == o.ecma_count && properties == o.properties;
    case Marker::StrictArray:
      return elements == o.elements;
    default:
      return true;  // Null, Undefined, Unsupported, ...
  }
}

std::string Value::to_string() const {
  std::string s;
  append_value(s, *this);
  return s;
}

// ---- decoding ----

bool decode(const uint8_t* data, size_t len, size_t& offset, Value& out, const Limits& limits,
            GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  if (offset > len) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                "AMF0 decode offset %zu is past the end of the %zu-byte buffer", offset, len);
    return false;
  }
  Decoder d(data, len, limits, error);
  size_t off = offset;
  Value v;
  if (!d.value(off, v, 0)) return false;
  out = std::move(v);
  offset = off;
  return true;
}

bool decode_all(const uint8_t* data, size_t len, std::vector<Value>& out, const Limits& limits,
                GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  // One Decoder so max_total_values bounds the whole call.
  Decoder d(data, len, limits, error);
  std::vector<Value> values;
  size_t off = 0;
  while (off < len) {
    values.emplace_back();
    if (!d.value(off, values.back(), 0)) return false;
  }
  out = std::move(values);
  return true;
}

// ---- encoding ----

void encode(const Value& v, ByteWriter& out) {
  switch (v.type) {
    case Marker::Number:
      out.u8(uint8_t(Marker::Number));
      out.f64(v.number);
      return;
    case Marker::Boolean:
      out.u8(uint8_t(Marker::Boolean));
      out.u8(v.boolean ? 1 : 0);
      return;
    case Marker::String:
      if (v.string.size() > 0xffff) {  // cannot be a short string: promote
        out.u8(uint8_t(Marker::LongString));
        encode_long(v.string, out);
      } else {
        out.u8(uint8_t(Marker::String));
        encode_short_key(v.string, out);
      }
      return;
    case Marker::LongString:
    case Marker::XmlDocument:
      out.u8(uint8_t(v.type));
      encode_long(v.string, out);
      return;
    case Marker::Null:
    case Marker::Undefined:
    case Marker::Unsupported:
      out.u8(uint8_t(v.type));
      return;
    case Marker::Reference:
      out.u8(uint8_t(Marker::Reference));
      out.u16(v.reference);
      return;
    case Marker::Date:
      out.u8(uint8_t(Marker::Date));
      out.f64(v.number);
      out.u16(uint16_t(v.timezone));
      return;
    case Marker::Object:
      out.u8(uint8_t(Marker::Object));
      encode_properties(v.properties, out);
      return;
    case Marker::TypedObject:
      out.u8(uint8_t(Marker::TypedObject));
      encode_short_key(v.string, out);
      encode_properties(v.properties, out);
      return;
    case Marker::EcmaArray:
      out.u8(uint8_t(Marker::EcmaArray));
      out.u32(v.ecma_count);
      encode_properties(v.properties, out);
      return;
    case Marker::StrictArray:
      out.u8(uint8_t(Marker::StrictArray));
      out.u32(uint32_t(v.elements.size()));
      for (const auto& e : v.elements) encode(e, out);
      return;
    case Marker::AvmPlus:
      out.u8(uint8_t(Marker::AvmPlus));
      out.raw(v.string);
      return;
    case Marker::ObjectEnd:
    case Marker::MovieClip:
    case Marker::RecordSet:
      break;
  }
  // Not a value on its own (object end) or reserved: nothing sensible to
  // write; Null keeps the stream decodable.
  g_warning("amf0::encode: cannot encode marker 0x%02x, writing null", unsigned(v.type));
  out.u8(uint8_t(Marker::Null));
}

void encode_all(const std::vector<Value>& values, ByteWriter& out) {
  for (const auto& v : values) encode(v, out);
}

Bytes encode_to_bytes(const std::vector<Value>& values) {
  ByteWriter w;
  encode_all(values, w);
  return w.to_bytes();
}

}  // namespace grtmp::amf0
