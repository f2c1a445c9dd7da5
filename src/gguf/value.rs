//! GGUF metadata values: the 13 value types and their in-memory form.

use std::fmt;

/// A GGUF metadata value type, by its id in the file (`gguf_type` in `gguf.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    /// An unsigned 8-bit integer.
    U8 = 0,
    /// A signed 8-bit integer.
    I8 = 1,
    /// An unsigned 16-bit integer.
    U16 = 2,
    /// A signed 16-bit integer.
    I16 = 3,
    /// An unsigned 32-bit integer.
    U32 = 4,
    /// A signed 32-bit integer.
    I32 = 5,
    /// A 32-bit float.
    F32 = 6,
    /// A boolean (one byte, 0 or 1).
    Bool = 7,
    /// A UTF-8 string (length-prefixed).
    String = 8,
    /// An array.
    Array = 9,
    /// An unsigned 64-bit integer.
    U64 = 10,
    /// A signed 64-bit integer.
    I64 = 11,
    /// A 64-bit float.
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

    /// The value type with this id, if GGUF defines one.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.get(id as usize).copied()
    }

    /// The id of the value type in the file.
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

/// One metadata value.
///
/// Arrays come in two forms. [`Value::Packed`] holds an [`Array`]: numbers and
/// booleans in their own size, strings as `String`s, nested arrays as arrays.
/// It is what the reader produces for every array, and what [`GgufWriter`]
/// stores. [`Value::Array`] is an array given element by element (32 bytes per
/// element), convenient to build by hand: [`GgufWriter::add_kv`] checks it and
/// stores it packed. The two compare equal when they hold the same elements, and
/// print and serialize the same.
///
/// [`GgufWriter`]: super::GgufWriter
/// [`GgufWriter::add_kv`]: super::GgufWriter::add_kv
#[derive(Clone, Debug)]
pub enum Value {
    /// An unsigned 8-bit integer.
    U8(u8),
    /// A signed 8-bit integer.
    I8(i8),
    /// An unsigned 16-bit integer.
    U16(u16),
    /// A signed 16-bit integer.
    I16(i16),
    /// An unsigned 32-bit integer.
    U32(u32),
    /// A signed 32-bit integer.
    I32(i32),
    /// A 32-bit float.
    F32(f32),
    /// A boolean (one byte, 0 or 1).
    Bool(bool),
    /// A UTF-8 string (length-prefixed).
    String(String),
    /// An array given element by element. It carries its element type, so that
    /// an empty array keeps it; every element of `Array(t, items)` has type `t`
    /// (nested arrays, of type [`ValueType::Array`], may be either form).
    Array(ValueType, Vec<Value>),
    /// An unsigned 64-bit integer.
    U64(u64),
    /// A signed 64-bit integer.
    I64(i64),
    /// A 64-bit float.
    F64(f64),
    /// An array stored compactly: what the reader gives for every array.
    Packed(Array),
}

/// A GGUF array, each element type in its own compact form. An empty array
/// keeps its element type through its variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// Elements of type `u8`: unsigned 8-bit integers.
    U8(Vec<u8>),
    /// Elements of type `i8`: signed 8-bit integers.
    I8(Vec<i8>),
    /// Elements of type `u16`: unsigned 16-bit integers.
    U16(Vec<u16>),
    /// Elements of type `i16`: signed 16-bit integers.
    I16(Vec<i16>),
    /// Elements of type `u32`: unsigned 32-bit integers.
    U32(Vec<u32>),
    /// Elements of type `i32`: signed 32-bit integers.
    I32(Vec<i32>),
    /// Elements of type `f32`: 32-bit floats.
    F32(Vec<f32>),
    /// Elements of type `bool`: boolean (one byte, 0 or 1)s.
    Bool(Vec<bool>),
    /// Elements of type `string`: UTF-8 string (length-prefixed)s.
    String(Vec<String>),
    /// Arrays of arrays: each inner array has its own element type (the file
    /// gives each one its own), and the element type of this one is
    /// [`ValueType::Array`].
    Array(Vec<Array>),
    /// Elements of type `u64`: unsigned 64-bit integers.
    U64(Vec<u64>),
    /// Elements of type `i64`: signed 64-bit integers.
    I64(Vec<i64>),
    /// Elements of type `f64`: 64-bit floats.
    F64(Vec<f64>),
}

/// Runs `$body` with `$v` bound to the vector of any variant of `Array`.
macro_rules! each_array {
    ($a:expr, $v:ident => $body:expr) => {
        match $a {
            Array::U8($v) => $body,
            Array::I8($v) => $body,
            Array::U16($v) => $body,
            Array::I16($v) => $body,
            Array::U32($v) => $body,
            Array::I32($v) => $body,
            Array::F32($v) => $body,
            Array::Bool($v) => $body,
            Array::String($v) => $body,
            Array::Array($v) => $body,
            Array::U64($v) => $body,
            Array::I64($v) => $body,
            Array::F64($v) => $body,
        }
    };
}

macro_rules! array_from_vec {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<Vec<$t>> for Array {
            fn from(v: Vec<$t>) -> Self {
                Array::$variant(v)
            }
        }
    )*};
}
array_from_vec!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32,
    f32 => F32, bool => Bool, String => String, Array => Array, u64 => U64, i64 => I64,
    f64 => F64);

impl From<Array> for Value {
    fn from(a: Array) -> Self {
        Value::Packed(a)
    }
}

impl Array {
    /// An empty array of element type `ty`.
    pub fn empty(ty: ValueType) -> Array {
        match ty {
            ValueType::U8 => Array::U8(Vec::new()),
            ValueType::I8 => Array::I8(Vec::new()),
            ValueType::U16 => Array::U16(Vec::new()),
            ValueType::I16 => Array::I16(Vec::new()),
            ValueType::U32 => Array::U32(Vec::new()),
            ValueType::I32 => Array::I32(Vec::new()),
            ValueType::F32 => Array::F32(Vec::new()),
            ValueType::Bool => Array::Bool(Vec::new()),
            ValueType::String => Array::String(Vec::new()),
            ValueType::Array => Array::Array(Vec::new()),
            ValueType::U64 => Array::U64(Vec::new()),
            ValueType::I64 => Array::I64(Vec::new()),
            ValueType::F64 => Array::F64(Vec::new()),
        }
    }

    /// Packs an array given element by element, checking that every element
    /// has type `ty` (nested ones recursively); the error names the first that
    /// does not.
    pub fn from_values(ty: ValueType, items: Vec<Value>) -> std::result::Result<Array, String> {
        let mismatch =
            |i: usize, v: &Value| format!("array of {ty} holds a {} at index {i}", v.type_name());
        macro_rules! pack {
            ($variant:ident) => {{
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.into_iter().enumerate() {
                    match v {
                        Value::$variant(x) => out.push(x),
                        other => return Err(mismatch(i, &other)),
                    }
                }
                Array::$variant(out)
            }};
        }
        Ok(match ty {
            ValueType::U8 => pack!(U8),
            ValueType::I8 => pack!(I8),
            ValueType::U16 => pack!(U16),
            ValueType::I16 => pack!(I16),
            ValueType::U32 => pack!(U32),
            ValueType::I32 => pack!(I32),
            ValueType::F32 => pack!(F32),
            ValueType::Bool => pack!(Bool),
            ValueType::String => pack!(String),
            ValueType::U64 => pack!(U64),
            ValueType::I64 => pack!(I64),
            ValueType::F64 => pack!(F64),
            ValueType::Array => {
                let mut out = Vec::with_capacity(items.len());
                for (i, v) in items.into_iter().enumerate() {
                    match v {
                        Value::Array(t, inner) => out.push(Array::from_values(t, inner)?),
                        Value::Packed(a) => out.push(a),
                        other => return Err(mismatch(i, &other)),
                    }
                }
                Array::Array(out)
            }
        })
    }

    /// The type of the elements.
    pub fn item_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::Array(_) => ValueType::Array,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    /// Elements in the array.
    pub fn len(&self) -> usize {
        each_array!(self, v => v.len())
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a [`Value`] (a string or a nested array is cloned).
    pub fn get(&self, i: usize) -> Option<Value> {
        Some(match self {
            Array::U8(v) => Value::U8(*v.get(i)?),
            Array::I8(v) => Value::I8(*v.get(i)?),
            Array::U16(v) => Value::U16(*v.get(i)?),
            Array::I16(v) => Value::I16(*v.get(i)?),
            Array::U32(v) => Value::U32(*v.get(i)?),
            Array::I32(v) => Value::I32(*v.get(i)?),
            Array::F32(v) => Value::F32(*v.get(i)?),
            Array::Bool(v) => Value::Bool(*v.get(i)?),
            Array::String(v) => Value::String(v.get(i)?.clone()),
            Array::Array(v) => Value::Packed(v.get(i)?.clone()),
            Array::U64(v) => Value::U64(*v.get(i)?),
            Array::I64(v) => Value::I64(*v.get(i)?),
            Array::F64(v) => Value::F64(*v.get(i)?),
        })
    }

    /// The elements as [`Value`]s, each made by [`Array::get`].
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Value> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("index below the length"))
    }

    /// How deep arrays nest in this one: 1 for an array of anything else.
    pub fn depth(&self) -> usize {
        match self {
            Array::Array(v) => 1 + v.iter().map(Array::depth).max().unwrap_or(0),
            _ => 1,
        }
    }

    /// The bytes this array holds on the heap (its vectors' capacities, its
    /// strings' and nested arrays' own), for checking the memory bound.
    pub fn heap_bytes(&self) -> usize {
        fn vec_bytes<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        match self {
            Array::String(v) => vec_bytes(v) + v.iter().map(String::capacity).sum::<usize>(),
            Array::Array(v) => vec_bytes(v) + v.iter().map(Array::heap_bytes).sum::<usize>(),
            _ => each_array!(self, v => vec_bytes(v)),
        }
    }

    /// Whether this array holds exactly `items`, of type `ty`.
    fn eq_values(&self, ty: ValueType, items: &[Value]) -> bool {
        macro_rules! same {
            ($v:expr, $variant:ident) => {
                items
                    .iter()
                    .zip($v)
                    .all(|(x, y)| matches!(x, Value::$variant(x) if x == y))
            };
        }
        if self.item_type() != ty || self.len() != items.len() {
            return false;
        }
        match self {
            Array::U8(v) => same!(v, U8),
            Array::I8(v) => same!(v, I8),
            Array::U16(v) => same!(v, U16),
            Array::I16(v) => same!(v, I16),
            Array::U32(v) => same!(v, U32),
            Array::I32(v) => same!(v, I32),
            Array::F32(v) => same!(v, F32),
            Array::Bool(v) => same!(v, Bool),
            Array::String(v) => same!(v, String),
            Array::U64(v) => same!(v, U64),
            Array::I64(v) => same!(v, I64),
            Array::F64(v) => same!(v, F64),
            Array::Array(v) => items.iter().zip(v).all(|(x, y)| match x {
                Value::Array(t, inner) => y.eq_values(*t, inner),
                Value::Packed(a) => a == y,
                _ => false,
            }),
        }
    }

    /// Writes element `i` (below the length) as `Display` does.
    fn fmt_item(&self, i: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Array::String(v) => fmt_string(&v[i], f),
            Array::Array(v) => write!(f, "{}", v[i]),
            Array::U8(v) => write!(f, "{}", v[i]),
            Array::I8(v) => write!(f, "{}", v[i]),
            Array::U16(v) => write!(f, "{}", v[i]),
            Array::I16(v) => write!(f, "{}", v[i]),
            Array::U32(v) => write!(f, "{}", v[i]),
            Array::I32(v) => write!(f, "{}", v[i]),
            Array::F32(v) => write!(f, "{}", v[i]),
            Array::Bool(v) => write!(f, "{}", v[i]),
            Array::U64(v) => write!(f, "{}", v[i]),
            Array::I64(v) => write!(f, "{}", v[i]),
            Array::F64(v) => write!(f, "{}", v[i]),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        use Value as V;
        match (self, other) {
            (V::U8(a), V::U8(b)) => a == b,
            (V::I8(a), V::I8(b)) => a == b,
            (V::U16(a), V::U16(b)) => a == b,
            (V::I16(a), V::I16(b)) => a == b,
            (V::U32(a), V::U32(b)) => a == b,
            (V::I32(a), V::I32(b)) => a == b,
            (V::F32(a), V::F32(b)) => a == b,
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::String(a), V::String(b)) => a == b,
            (V::U64(a), V::U64(b)) => a == b,
            (V::I64(a), V::I64(b)) => a == b,
            (V::F64(a), V::F64(b)) => a == b,
            (V::Array(t, a), V::Array(u, b)) => t == u && a == b,
            (V::Packed(a), V::Packed(b)) => a == b,
            (V::Array(t, items), V::Packed(a)) | (V::Packed(a), V::Array(t, items)) => {
                a.eq_values(*t, items)
            }
            _ => false,
        }
    }
}

/// Array items shown by `Display` before the rest is abbreviated.
const DISPLAY_ITEMS: usize = 8;
/// String characters shown by `Display` before the rest is abbreviated.
const DISPLAY_CHARS: usize = 64;

impl Value {
    /// The value's type as the file stores it.
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
            Value::Array(..) | Value::Packed(_) => ValueType::Array,
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

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if the value is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A packed array (every array the reader gives is one; an element-by-element
    /// [`Value::Array`] is not: [`Array::from_values`] packs it).
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Packed(a) => Some(a),
            _ => None,
        }
    }

    /// The bytes this value holds on the heap (a string's, an array's), for
    /// checking the memory bound.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::String(s) => s.capacity(),
            Value::Packed(a) => a.heap_bytes(),
            Value::Array(_, items) => {
                items.capacity() * std::mem::size_of::<Value>()
                    + items.iter().map(Value::heap_bytes).sum::<usize>()
            }
            _ => 0,
        }
    }

    /// The value as JSON, arrays in full, as its [`serde::Serialize`] writes it:
    /// floats in their shortest decimal form (an f32 0.1 is `0.1`, not
    /// `0.10000000149011612`); NaN and the infinities, which JSON cannot hold,
    /// as the strings `"NaN"`, `"inf"` and `"-inf"`. To write a large value,
    /// serialize it into a writer (`serde_json::to_writer`) instead: this builds
    /// it whole, about 32 bytes per element.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// An f32 as JSON: its shortest decimal form read as an f64.
struct JsonF32(f32);
/// An f64 as JSON.
struct JsonF64(f64);

impl serde::Serialize for JsonF32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use std::io::Write;
        let v = self.0;
        if !v.is_finite() {
            return JsonF64(v.into()).serialize(s);
        }
        // The shortest decimal form of the f32 (at most ~50 characters, without
        // an exponent), read back as an f64: 0.1f32 is written 0.1.
        let mut buf = [0u8; 128];
        let mut c = std::io::Cursor::new(&mut buf[..]);
        let shortest = match write!(c, "{v}") {
            Ok(()) => {
                let n = c.position() as usize;
                std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|t| t.parse::<f64>().ok())
            }
            Err(_) => v.to_string().parse::<f64>().ok(),
        };
        s.serialize_f64(shortest.unwrap_or(v.into()))
    }
}

impl serde::Serialize for JsonF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if v > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(v)
        }
    }
}

/// JSON, element by element as it is written: nothing is built in memory.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Value::U8(v) => s.serialize_u8(*v),
            Value::I8(v) => s.serialize_i8(*v),
            Value::U16(v) => s.serialize_u16(*v),
            Value::I16(v) => s.serialize_i16(*v),
            Value::U32(v) => s.serialize_u32(*v),
            Value::I32(v) => s.serialize_i32(*v),
            Value::U64(v) => s.serialize_u64(*v),
            Value::I64(v) => s.serialize_i64(*v),
            Value::F32(v) => JsonF32(*v).serialize(s),
            Value::F64(v) => JsonF64(*v).serialize(s),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::String(v) => s.serialize_str(v),
            Value::Array(_, items) => s.collect_seq(items),
            Value::Packed(a) => a.serialize(s),
        }
    }
}

impl serde::Serialize for Array {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Array::F32(v) => s.collect_seq(v.iter().map(|&x| JsonF32(x))),
            Array::F64(v) => s.collect_seq(v.iter().map(|&x| JsonF64(x))),
            Array::U8(v) => s.collect_seq(v),
            Array::I8(v) => s.collect_seq(v),
            Array::U16(v) => s.collect_seq(v),
            Array::I16(v) => s.collect_seq(v),
            Array::U32(v) => s.collect_seq(v),
            Array::I32(v) => s.collect_seq(v),
            Array::Bool(v) => s.collect_seq(v),
            Array::String(v) => s.collect_seq(v),
            Array::Array(v) => s.collect_seq(v),
            Array::U64(v) => s.collect_seq(v),
            Array::I64(v) => s.collect_seq(v),
        }
    }
}

/// A string as `Display` shows it: quoted, control characters escaped, cut
/// after 64 characters.
fn fmt_string(s: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match s.char_indices().nth(DISPLAY_CHARS) {
        None => write!(f, "{s:?}"),
        Some((cut, _)) => {
            let n = s.chars().count();
            write!(f, "{:?}... ({n} chars)", &s[..cut])
        }
    }
}

/// An array as `Display` shows it: its first 8 items (each written by `item`),
/// then the count.
fn fmt_array(
    f: &mut fmt::Formatter<'_>,
    ty: ValueType,
    len: usize,
    mut item: impl FnMut(usize, &mut fmt::Formatter<'_>) -> fmt::Result,
) -> fmt::Result {
    f.write_str("[")?;
    for i in 0..len.min(DISPLAY_ITEMS) {
        if i > 0 {
            f.write_str(", ")?;
        }
        item(i, f)?;
    }
    if len > DISPLAY_ITEMS {
        write!(f, ", ... ({len} {ty} items)")?;
    }
    f.write_str("]")
}

/// Like a [`Value::Packed`] of it.
impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_array(f, self.item_type(), self.len(), |i, f| self.fmt_item(i, f))
    }
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
            Value::String(s) => fmt_string(s, f),
            Value::Array(ty, items) => {
                fmt_array(f, *ty, items.len(), |i, f| write!(f, "{}", items[i]))
            }
            Value::Packed(a) => a.fmt(f),
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
        assert_eq!(
            Value::Packed(Array::empty(ValueType::F64)).type_name(),
            "array"
        );
        assert_eq!(Array::empty(ValueType::Bool).item_type(), ValueType::Bool);
    }

    #[test]
    fn packed_display_and_json() {
        let a = Value::Packed(Array::U32((0..100).collect()));
        assert_eq!(
            a.to_string(),
            "[0, 1, 2, 3, 4, 5, 6, 7, ... (100 u32 items)]"
        );
        let s = Value::Packed(Array::String(vec!["a\u{1b}".into(), "x".repeat(100)]));
        let shown = s.to_string();
        assert!(shown.starts_with("[\"a\\u{1b}\", \"xxx"), "{shown}");
        assert!(shown.ends_with("... (100 chars)]"), "{shown}");
        let nested = Value::Packed(Array::Array(vec![
            Array::Bool(vec![true]),
            Array::F32(vec![0.1, f32::NAN, f32::INFINITY]),
        ]));
        assert_eq!(nested.to_string(), "[[true], [0.1, NaN, inf]]");
        assert_eq!(
            nested.to_json(),
            serde_json::json!([[true], [0.1, "NaN", "inf"]])
        );
        assert_eq!(
            Value::Packed(Array::F64(vec![f64::NEG_INFINITY, 0.25])).to_json(),
            serde_json::json!(["-inf", 0.25])
        );
        assert_eq!(
            Value::Packed(Array::I8(vec![-1])).to_json(),
            serde_json::json!([-1])
        );
    }
}
