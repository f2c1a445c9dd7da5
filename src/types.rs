//! The one registry of GGML type ids: name, block geometry, and whether we decode it.
//!
//! Every other table in the crate (CPU decoders, CUDA kernels, the CLI's listings)
//! is keyed by [`GgmlType`], so adding a format starts here.

use std::fmt;
use std::str::FromStr;

/// A GGML storage type, by its id in `ggml.h`. Non-exhaustive: ggml keeps
/// adding types, and this list follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
#[allow(non_camel_case_types)]
#[non_exhaustive]
pub enum GgmlType {
    /// 32-bit IEEE float, one value a block.
    F32 = 0,
    /// 16-bit IEEE float.
    F16 = 1,
    /// 32 4-bit values and an f16 scale.
    Q4_0 = 2,
    /// 32 4-bit values, an f16 scale and an f16 minimum.
    Q4_1 = 3,
    /// 32 5-bit values and an f16 scale.
    Q5_0 = 6,
    /// 32 5-bit values, an f16 scale and an f16 minimum.
    Q5_1 = 7,
    /// 32 8-bit values and an f16 scale.
    Q8_0 = 8,
    /// 32 8-bit values, an f16 scale and their f16 sum (ggml has no dequantizer for it).
    Q8_1 = 9,
    /// K-quant: 256 2-bit values in 16 groups with 4-bit scales and minimums.
    Q2_K = 10,
    /// K-quant: 256 3-bit values in 16 groups with 6-bit scales.
    Q3_K = 11,
    /// K-quant: 256 4-bit values in 8 groups with 6-bit scales and minimums.
    Q4_K = 12,
    /// K-quant: 256 5-bit values in 8 groups with 6-bit scales and minimums.
    Q5_K = 13,
    /// K-quant: 256 6-bit values in 16 groups with 8-bit scales.
    Q6_K = 14,
    /// K-quant: 256 8-bit values, an f32 scale and group sums (ggml has no dequantizer for it).
    Q8_K = 15,
    /// I-quant: 2.06 bits a weight, an E8-lattice codebook.
    IQ2_XXS = 16,
    /// I-quant: 2.31 bits a weight, an E8-lattice codebook with scales.
    IQ2_XS = 17,
    /// I-quant: 3.06 bits a weight, a codebook of 4-value grids.
    IQ3_XXS = 18,
    /// I-quant: 1.56 bits a weight.
    IQ1_S = 19,
    /// I-quant: 32 4-bit indices into a non-linear table, an f16 scale.
    IQ4_NL = 20,
    /// I-quant: 3.44 bits a weight.
    IQ3_S = 21,
    /// I-quant: 2.5 bits a weight.
    IQ2_S = 22,
    /// I-quant: 256 4-bit non-linear values with 6-bit group scales.
    IQ4_XS = 23,
    /// 8-bit signed integer (ggml has no dequantizer for it).
    I8 = 24,
    /// 16-bit signed integer (ggml has no dequantizer for it).
    I16 = 25,
    /// 32-bit signed integer (ggml has no dequantizer for it).
    I32 = 26,
    /// 64-bit signed integer (ggml has no dequantizer for it).
    I64 = 27,
    /// 64-bit IEEE float (ggml has no dequantizer for it).
    F64 = 28,
    /// I-quant: 1.75 bits a weight.
    IQ1_M = 29,
    /// bfloat16.
    BF16 = 30,
    /// Ternary: 1.69 bits a weight, values -1, 0, 1 and an f16 scale.
    TQ1_0 = 34,
    /// Ternary: 2.06 bits a weight, values -1, 0, 1 and an f16 scale.
    TQ2_0 = 35,
    /// OCP microscaling FP4 (E2M1) with an E8M0 scale per 32 values.
    MXFP4 = 39,
    /// NVIDIA FP4 (E2M1) with an unsigned E4M3 scale per 16 values.
    NVFP4 = 40,
    /// 128 sign bits and an f16 scale: each value the scale or its negation.
    Q1_0 = 41,
    /// 64 2-bit codes `c` and an f16 scale `d`: `(c - 1) * d`.
    Q2_0 = 42,
}

/// Static facts about one type.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    /// The type.
    pub ty: GgmlType,
    /// ggml's `type_name` (e.g. `"q4_K"`).
    pub name: &'static str,
    /// Elements per block (`blck_size`).
    pub block_elems: usize,
    /// Bytes per block (`type_size`).
    pub block_bytes: usize,
    /// Whether ggml defines a conversion to f32 for it, and so do we: whether
    /// it is in the list of formats (`src/formats.rs`).
    pub dequantizable: bool,
}

/// Whether `ty` is in the list of formats.
const fn listed(ty: GgmlType) -> bool {
    macro_rules! in_list {
        ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
            matches!(ty, $( $( GgmlType::$ty )|+ )|*)
        };
    }
    crate::for_each_format!(in_list)
}

macro_rules! registry {
    ($( $ty:ident => $name:literal, $elems:literal, $bytes:literal; )*) => {
        /// Every type ggml defines, in id order.
        pub const TYPES: &[TypeInfo] = &[
            $( TypeInfo { ty: GgmlType::$ty, name: $name, block_elems: $elems, block_bytes: $bytes, dequantizable: listed(GgmlType::$ty) }, )*
        ];

        impl GgmlType {
            /// The type with this id, if ggml defines one (removed ids 4, 5, 31-33, 36-38 are `None`).
            pub fn from_id(id: u32) -> Option<Self> {
                match id {
                    $( x if x == GgmlType::$ty as u32 => Some(GgmlType::$ty), )*
                    _ => None,
                }
            }

            /// The static facts of this type.
            pub const fn info(self) -> &'static TypeInfo {
                match self {
                    $( GgmlType::$ty => {
                        const I: TypeInfo = TypeInfo { ty: GgmlType::$ty, name: $name, block_elems: $elems, block_bytes: $bytes, dequantizable: listed(GgmlType::$ty) };
                        &I
                    } )*
                }
            }
        }
    };
}

registry! {
    F32     => "f32",      1,   4;
    F16     => "f16",      1,   2;
    Q4_0    => "q4_0",    32,  18;
    Q4_1    => "q4_1",    32,  20;
    Q5_0    => "q5_0",    32,  22;
    Q5_1    => "q5_1",    32,  24;
    Q8_0    => "q8_0",    32,  34;
    Q8_1    => "q8_1",    32,  36;
    Q2_K    => "q2_K",   256,  84;
    Q3_K    => "q3_K",   256, 110;
    Q4_K    => "q4_K",   256, 144;
    Q5_K    => "q5_K",   256, 176;
    Q6_K    => "q6_K",   256, 210;
    Q8_K    => "q8_K",   256, 292;
    IQ2_XXS => "iq2_xxs", 256,  66;
    IQ2_XS  => "iq2_xs", 256,  74;
    IQ3_XXS => "iq3_xxs", 256,  98;
    IQ1_S   => "iq1_s",  256,  50;
    IQ4_NL  => "iq4_nl",  32,  18;
    IQ3_S   => "iq3_s",  256, 110;
    IQ2_S   => "iq2_s",  256,  82;
    IQ4_XS  => "iq4_xs", 256, 136;
    I8      => "i8",       1,   1;
    I16     => "i16",      1,   2;
    I32     => "i32",      1,   4;
    I64     => "i64",      1,   8;
    F64     => "f64",      1,   8;
    IQ1_M   => "iq1_m",  256,  56;
    BF16    => "bf16",     1,   2;
    TQ1_0   => "tq1_0",  256,  54;
    TQ2_0   => "tq2_0",  256,  66;
    MXFP4   => "mxfp4",   32,  17;
    NVFP4   => "nvfp4",   64,  36;
    Q1_0    => "q1_0",   128,  18;
    Q2_0    => "q2_0",    64,  18;
}

impl GgmlType {
    /// ggml's id of the type (`enum ggml_type`).
    pub fn id(self) -> u32 {
        self as u32
    }
    /// ggml's name of the type (`"q4_K"`).
    pub fn name(self) -> &'static str {
        self.info().name
    }
    /// Elements per block.
    pub fn block_elems(self) -> usize {
        self.info().block_elems
    }
    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        self.info().block_bytes
    }
    /// Whether this crate decodes the type (every type ggml can convert to float).
    pub fn is_dequantizable(self) -> bool {
        self.info().dequantizable
    }
    /// Storage cost in bits per weight.
    pub fn bits_per_weight(self) -> f64 {
        (self.block_bytes() * 8) as f64 / self.block_elems() as f64
    }
    /// Looks a type up by ggml's name, case-insensitively (`q4_k` finds `q4_K`).
    pub fn from_name(name: &str) -> Option<Self> {
        TYPES
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .map(|t| t.ty)
    }
    /// Every type we can decode, in id order.
    pub fn dequantizable() -> impl Iterator<Item = GgmlType> {
        TYPES.iter().filter(|t| t.dequantizable).map(|t| t.ty)
    }
    /// Bytes taken by `n_elems` elements, or `None` when `n_elems` is not a whole
    /// number of blocks or the product overflows.
    pub fn bytes_for(self, n_elems: u64) -> Option<u64> {
        let qk = self.block_elems() as u64;
        if !n_elems.is_multiple_of(qk) {
            return None;
        }
        (n_elems / qk).checked_mul(self.block_bytes() as u64)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The element type decoded output is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutType {
    /// 32-bit IEEE float: ggml's own dequantized values, to the bit.
    F32,
    /// IEEE half: the f32 value rounded to nearest even.
    F16,
    /// bfloat16: the f32 value rounded to nearest even.
    BF16,
}

impl OutType {
    /// Every output type.
    pub const ALL: [OutType; 3] = [OutType::F32, OutType::F16, OutType::BF16];
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            OutType::F32 => 4,
            OutType::F16 | OutType::BF16 => 2,
        }
    }
    /// The type's short name (`f32`, `f16`, `bf16`).
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::BF16 => "bf16",
        }
    }
    /// The numpy and torch name: `float32`, `float16` or `bfloat16`.
    pub fn long_name(self) -> &'static str {
        match self {
            OutType::F32 => "float32",
            OutType::F16 => "float16",
            OutType::BF16 => "bfloat16",
        }
    }
    /// Every name of an output type that [`OutType::from_name`] takes (in
    /// any ASCII case): the short and the long name of each, and the other
    /// names numpy and torch use (torch's `float` and `half`). The CLI's
    /// `--dtype` and the Python package's `dtype=` both parse by this list.
    pub const NAMES: [(&'static str, OutType); 8] = [
        ("f32", OutType::F32),
        ("float32", OutType::F32),
        ("float", OutType::F32),
        ("f16", OutType::F16),
        ("float16", OutType::F16),
        ("half", OutType::F16),
        ("bf16", OutType::BF16),
        ("bfloat16", OutType::BF16),
    ];
    /// The output type of a name of [`OutType::NAMES`], in any ASCII case.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::NAMES
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map(|(_, t)| t)
    }
    /// The dtype string safetensors uses.
    pub fn safetensors_dtype(self) -> &'static str {
        match self {
            OutType::F32 => "F32",
            OutType::F16 => "F16",
            OutType::BF16 => "BF16",
        }
    }
}

impl fmt::Display for OutType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// [`OutType::from_name`], with an error naming the names it takes.
impl FromStr for OutType {
    type Err = UnknownDtype;
    fn from_str(s: &str) -> Result<Self, UnknownDtype> {
        OutType::from_name(s).ok_or_else(|| UnknownDtype(s.to_string()))
    }
}

/// A dtype name that is none of [`OutType::NAMES`]; its message names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownDtype(pub String);

impl fmt::Display for UnknownDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown dtype {:?}: gguf-dequant decodes into float32, float16 or bfloat16 only \
             (names: ",
            self.0
        )?;
        for (i, (name, _)) in OutType::NAMES.iter().enumerate() {
            f.write_str(if i == 0 { "" } else { ", " })?;
            f.write_str(name)?;
        }
        f.write_str("; any case)")
    }
}

impl std::error::Error for UnknownDtype {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_consistent() {
        for t in TYPES {
            assert_eq!(GgmlType::from_id(t.ty.id()), Some(t.ty));
            assert_eq!(t.ty.info().name, t.name);
            assert_eq!(GgmlType::from_name(t.name), Some(t.ty));
        }
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 43, 1000] {
            assert_eq!(GgmlType::from_id(removed), None, "id {removed}");
        }
        assert_eq!(GgmlType::dequantizable().count(), 28);
        assert!(!GgmlType::Q8_1.is_dequantizable());
        assert!(!GgmlType::Q8_K.is_dequantizable());
        assert!(!GgmlType::I32.is_dequantizable());
    }

    #[test]
    fn out_type_names() {
        for t in OutType::ALL {
            assert_eq!(OutType::from_name(t.name()), Some(t));
            assert_eq!(t.long_name().parse(), Ok(t));
            assert_eq!(t.name().to_uppercase().parse(), Ok(t));
        }
        assert_eq!("Half".parse(), Ok(OutType::F16));
        assert_eq!("float".parse(), Ok(OutType::F32));
        assert_eq!("BFloat16".parse(), Ok(OutType::BF16));
        for bad in ["", "float64", "int8", "q4_0", "f32 ", "f32\0", "bf"] {
            assert_eq!(bad.parse::<OutType>(), Err(UnknownDtype(bad.to_string())));
        }
        let e = "float64".parse::<OutType>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown dtype \"float64\": gguf-dequant decodes into float32, float16 or bfloat16 \
             only (names: f32, float32, float, f16, float16, half, bf16, bfloat16; any case)"
        );
    }

    #[test]
    fn bytes_for_checks_blocks_and_overflow() {
        assert_eq!(GgmlType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(GgmlType::Q4_0.bytes_for(33), None);
        assert_eq!(GgmlType::Q8_K.bytes_for(u64::MAX / 256 * 256), None);
    }
}
