//! GGUF metadata values: the 13 value types and their in-memory form.

use std::fmt;

/// A GGUF metadata value type, by its id in the file (`gguf_type` in `gguf.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// Every value type, in id order.
    pub const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.get(id as usize).copied()
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// The short name used in messages and listings (`u32`, `string`, `array`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    /// Bytes of a value of a fixed-size type, `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        Some(match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
            ValueType::U16 | ValueType::I16 => 2,
            ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
            ValueType::U64 | ValueType::I64 | ValueType::F64 => 8,
            ValueType::String | ValueType::Array => return None,
        })
    }

    /// The fewest bytes a value of this type takes in a file: its fixed size, the
    /// u64 length of a string, or an array's u32 element type and u64 length. The
    /// reader bounds every count by `count * min_size <= bytes left` before it
    /// allocates anything for it.
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1) as u64,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value. Arrays carry their element type, so that an empty array
/// keeps it; every element of `Array(t, items)` has type `t`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(ValueType, Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// Array items shown by `Display` before the rest is abbreviated.
const DISPLAY_ITEMS: usize = 8;
/// String characters shown by `Display` before the rest is abbreviated.
const DISPLAY_CHARS: usize = 64;

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The type's short name (`u32`, `string`, `array`...).
    pub fn type_name(&self) -> &'static str {
        self.value_type().name()
    }

    /// The value as a u64 when it is an integer that fits (negative ones do not).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an i64 when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as an f64 when it is a number (integers convert, possibly rounding).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => self
                .as_i64()
                .map(|v| v as f64)
                .or_else(|| self.as_u64().map(|v| v as f64)),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(_, items) => Some(items),
            _ => None,
        }
    }

    /// The value as JSON, arrays in full. Floats are written in their shortest
    /// decimal form (an f32 0.1 is `0.1`, not `0.10000000149011612`); NaN and the
    /// infinities, which JSON cannot hold, become the strings `"NaN"`, `"inf"` and
    /// `"-inf"`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::U8(v) => J::from(*v),
            Value::I8(v) => J::from(*v),
            Value::U16(v) => J::from(*v),
            Value::I16(v) => J::from(*v),
            Value::U32(v) => J::from(*v),
            Value::I32(v) => J::from(*v),
            Value::U64(v) => J::from(*v),
            Value::I64(v) => J::from(*v),
            Value::F32(v) => float_json(f64::from(*v), v.to_string()),
            Value::F64(v) => float_json(*v, v.to_string()),
            Value::Bool(v) => J::Bool(*v),
            Value::String(s) => J::String(s.clone()),
            Value::Array(_, items) => J::Array(items.iter().map(Value::to_json).collect()),
        }
    }
}

/// A float as a JSON number through its shortest decimal form `text`.
fn float_json(v: f64, text: String) -> serde_json::Value {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let shortest = text.parse::<f64>().unwrap_or(v);
    serde_json::Number::from_f64(shortest).map_or(serde_json::Value::Null, Into::into)
}

/// A short human form: strings quoted with control characters escaped (a
/// hostile file cannot send terminal escapes through it) and cut after 64
/// characters, arrays cut after 8 items with the total count.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => {
                let n = s.chars().count();
                if n <= DISPLAY_CHARS {
                    write!(f, "{s:?}")
                } else {
                    let head: String = s.chars().take(DISPLAY_CHARS).collect();
                    write!(f, "{head:?}... ({n} chars)")
                }
            }
            Value::Array(ty, items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().take(DISPLAY_ITEMS).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                if items.len() > DISPLAY_ITEMS {
                    write!(f, ", ... ({} {ty} items)", items.len())?;
                }
                f.write_str("]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for t in ValueType::ALL {
            assert_eq!(ValueType::from_id(t.id()), Some(t));
        }
        assert_eq!(ValueType::from_id(13), None);
        assert_eq!(ValueType::from_id(u32::MAX), None);
    }

    #[test]
    fn display_is_short() {
        let a = Value::Array(ValueType::U32, (0..100).map(Value::U32).collect());
        assert_eq!(
            a.to_string(),
            "[0, 1, 2, 3, 4, 5, 6, 7, ... (100 u32 items)]"
        );
        let s = Value::String("a\u{1b}[31mb".into());
        assert_eq!(s.to_string(), "\"a\\u{1b}[31mb\"");
        let long = Value::String("x".repeat(100));
        assert!(long.to_string().ends_with("... (100 chars)"));
        assert_eq!(Value::F32(0.1).to_string(), "0.1");
    }

    #[test]
    fn json_forms() {
        assert_eq!(Value::F32(0.1).to_json(), serde_json::json!(0.1));
        assert_eq!(Value::F64(f64::NAN).to_json(), serde_json::json!("NaN"));
        assert_eq!(
            Value::F32(f32::NEG_INFINITY).to_json(),
            serde_json::json!("-inf")
        );
        assert_eq!(Value::U64(u64::MAX).to_json(), serde_json::json!(u64::MAX));
        let a = Value::Array(
            ValueType::String,
            vec![Value::String("a".into()), Value::String("b".into())],
        );
        assert_eq!(a.to_json(), serde_json::json!(["a", "b"]));
    }

    #[test]
    fn conversions() {
        assert_eq!(Value::I32(-1).as_u64(), None);
        assert_eq!(Value::I32(7).as_u64(), Some(7));
        assert_eq!(Value::U64(u64::MAX).as_i64(), None);
        assert_eq!(Value::String("x".into()).as_str(), Some("x"));
        assert_eq!(Value::Bool(true).as_u64(), None);
        assert_eq!(Value::Array(ValueType::U8, vec![]).type_name(), "array");
    }
}
