//! The fast path (SIMD kernels, threads, non-temporal stores) against the scalar
//! reference, to the bit: every type, every output type, every instruction-set
//! level this CPU has (forced one by one), with and without streaming stores,
//! on random valid blocks in counts that are not multiples of any vector width,
//! stage or thread chunk, into outputs at every 16-byte offset from a cache
//! line (the AVX-512 writer joins lines across them) and at odd alignments.

use gguf_dequant::cpu::{self, Level, OutElem};
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::GgmlType;
use half::{bf16, f16};

trait Bits: OutElem {
    fn bits(self) -> u32;
    fn is_nan(self) -> bool;
}
impl Bits for f32 {
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
}
impl Bits for f16 {
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
    fn is_nan(self) -> bool {
        f16::is_nan(self)
    }
}
impl Bits for bf16 {
    fn bits(self) -> u32 {
        self.to_bits() as u32
    }
    fn is_nan(self) -> bool {
        bf16::is_nan(self)
    }
}

/// How NaN outputs compare.
#[derive(Clone, Copy)]
enum Nans {
    /// To the bit, as every other value (the conversions of the plain types
    /// keep payloads, as `half` does).
    Exact,
    /// Any NaN matches any NaN: the contract for decoded values (the README:
    /// a NaN's sign and payload are left to the hardware).
    Any,
}

fn assert_same<O: Bits>(what: &str, got: &[O], want: &[O], nans: Nans) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let same = |g: O, w: O| match nans {
        Nans::Any if w.is_nan() => g.is_nan(),
        _ => g.bits() == w.bits(),
    };
    if let Some(i) = (0..got.len()).find(|&i| !same(got[i], want[i])) {
        panic!(
            "{what}: element {i} of {} is {:#x}, the reference gives {:#x}",
            got.len(),
            got[i].bits(),
            want[i].bits()
        );
    }
}

/// Decodes `src` on every available level, streaming and not, into an output
/// that starts `offset` bytes past a 64-byte boundary (a multiple of the
/// element size), and compares with the reference.
fn check<O: Bits>(ty: GgmlType, src: &[u8], offset: usize) {
    check_as::<O>(ty, src, offset, Nans::Exact)
}

/// [`check`], comparing NaNs as `nans` says.
fn check_as<O: Bits>(ty: GgmlType, src: &[u8], offset: usize, nans: Nans) {
    let n = src.len() / ty.block_bytes() * ty.block_elems();
    let size = std::mem::size_of::<O>();
    assert_eq!(offset % size, 0);
    let mut want = vec![O::default(); n];
    cpu::dequantize_reference(ty, src, &mut want).unwrap();
    for level in Level::available() {
        for streaming in [false, true] {
            let mut buf = vec![O::from_f32(f32::NAN); n + 128 / size];
            let start = buf.as_ptr().align_offset(64) + offset / size;
            // the values around the output must stay as they were
            let canary = |buf: &[O]| {
                let around = buf[..start].iter().chain(&buf[start + n..]);
                around.map(|v| v.bits()).collect::<Vec<_>>()
            };
            let before = canary(&buf);
            let got = &mut buf[start..start + n];
            cpu::dequantize_with(level, streaming, ty, src, got).unwrap();
            let what = format!(
                "{ty} -> {:?}, {} blocks, level {}, streaming {streaming}, offset {offset}",
                O::OUT,
                src.len() / ty.block_bytes(),
                level.name()
            );
            assert_same(&what, &buf[start..start + n], &want, nans);
            assert!(canary(&buf) == before, "{what}: wrote outside the output");
        }
    }
    let mut got = vec![O::default(); n];
    cpu::dequantize(ty, src, &mut got).unwrap();
    assert_same(&format!("{ty} -> {:?} default", O::OUT), &got, &want, nans);
}

fn check_type(ty: GgmlType) {
    let mut rng = Rng(0x5eed ^ ty.id() as u64);
    let qk = ty.block_elems();
    // block counts around the kernels' widths (8, 16, 32 elements), the stage
    // (2048 elements) and the thread chunk (65536 elements)
    let mut counts = vec![1, 2, 3, 5, 17, 2048 / qk + 1, 65536 / qk + 3];
    if qk == 1 {
        counts.extend([7, 9, 15, 31, 33, 2047, 2049, 65536 + 2048 + 13]);
    }
    for (i, &count) in counts.iter().enumerate() {
        let src = random_blocks(ty, count, &mut rng);
        // every 16-byte phase (streamed directly), and one that is not
        // 16-byte aligned (streamed through a stage)
        for phase in [0, 16, 32, 48] {
            check::<f32>(ty, &src, phase);
            check::<f16>(ty, &src, phase);
            check::<bf16>(ty, &src, phase);
        }
        let odd = [4, 8, 12][i % 3];
        check::<f32>(ty, &src, odd);
        check::<f16>(ty, &src, odd / 2);
        check::<bf16>(ty, &src, odd - 2);
    }
}

/// One test per format of the list (`src/formats.rs`), named after it.
macro_rules! per_type {
    ($( $file:ident { $( $ty:ident => $name:ident : $parts:literal $(/ $tail:ident)? ),+ } )*) => {
        mod each_type {
            use gguf_dequant::GgmlType;
            $( $( #[test] fn $name() { super::check_type(GgmlType::$ty); } )+ )*
        }
    };
}
gguf_dequant::for_each_format!(per_type);

/// Every f16 and bf16 bit pattern (NaNs, infinities, subnormals included), and
/// f32 patterns from every class (rounding ties at every position of every
/// exponent among them), through the plain kernels into every output type:
/// the conversions must be `half`'s, NaN payloads included.
#[test]
fn plain_types_convert_every_bit_pattern_as_half_does() {
    let halves: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
    let mut rng = Rng(99);
    let mut singles: Vec<u32> = (0..1 << 16).map(|_| rng.next_u64() as u32).collect();
    // around f16/bf16 rounding edges, overflow, subnormals, zeros, NaNs, infinities
    for base in [
        0x0000_0000u32,
        0x3380_0000, // 2^-24: smallest f16 subnormal
        0x3880_0000, // 2^-14: smallest f16 normal
        0x477f_e000, // 65504: largest f16
        0x477f_f000, // halfway to f16 overflow
        0x7f7f_8000, // bf16 overflow edge
        0x7f80_0000,
        0x7f80_0001,
        0x7fc0_0000,
        0x0000_8000,
        0x0001_8000,
    ] {
        for delta in 0..64u32 {
            for sign in [0, 0x8000_0000] {
                singles.push(base.wrapping_add(delta) ^ sign);
                singles.push(base.wrapping_sub(delta) ^ sign);
            }
        }
    }
    // ties at every rounding position of every exponent (f16's normal and
    // subnormal ones, bf16's), the kept lowest bit clear and set: one bit set
    // at position k, alone or with the one above it
    for e in 0..=255u32 {
        for k in 0..22 {
            for sign in [0, 0x8000_0000] {
                singles.push(sign | e << 23 | 1 << k);
                singles.push(sign | e << 23 | 3 << k);
            }
        }
    }
    let singles: Vec<u8> = singles.iter().flat_map(|b| b.to_le_bytes()).collect();
    for (ty, src) in [
        (GgmlType::F16, &halves),
        (GgmlType::BF16, &halves),
        (GgmlType::F32, &singles),
    ] {
        for offset in [0, 16, 4] {
            check::<f32>(ty, src, offset);
            check::<f16>(ty, src, offset / 2);
            check::<bf16>(ty, src, offset / 2);
        }
    }
}

/// Quantized kernels' values through the writers' conversions: blocks whose
/// f16 scale (their first two bytes) is NaN (quiet or signalling, either
/// sign), infinite, the largest f16, an f16 subnormal or zero, between
/// ordinary blocks, so that NaN, infinite, huge and tiny values sit in the
/// same vectors as ordinary ones. Every output type, every level, as the
/// reference: to the bit, but for NaNs, which must be NaN where the
/// reference's are (their sign is the hardware's: the lattice kernels apply a
/// weight's sign before the product, the reference after it). The 16-bit
/// writers round vectors without a NaN on a fast path: this fails when its
/// check for NaNs is removed (a NaN's rounding carries into its exponent).
#[test]
fn special_scales_decode_as_the_reference() {
    // NaNs whose payload fills the mantissa (0x7fff, 0xffff: an f32 whose
    // rounding to bf16 carries out of the mantissa) or not, infinities, the
    // largest f16, subnormals, zero, one
    let specials: [u16; 13] = [
        0x7fff, 0xffff, 0x7e00, 0x7c01, 0xfe01, 0x7c00, 0xfc00, 0x7bff, 0xfbff, 0x0001, 0x83ff,
        0x0000, 0x3c00,
    ];
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::IQ4_NL,
        GgmlType::IQ4_XS,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ2_S,
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
        GgmlType::IQ1_S,
        GgmlType::Q1_0,
    ] {
        let mut rng = Rng(0x5ca1e ^ ty.id() as u64);
        let mut src = random_blocks(ty, 3 * specials.len() + 1, &mut rng);
        for (i, block) in src.chunks_exact_mut(ty.block_bytes()).enumerate() {
            if i % 3 == 1 {
                block[..2].copy_from_slice(&specials[i / 3].to_le_bytes());
            }
        }
        let mut want = vec![0f32; src.len() / ty.block_bytes() * ty.block_elems()];
        cpu::dequantize_reference(ty, &src, &mut want).unwrap();
        assert!(
            want.iter().any(|v| v.is_nan()),
            "{ty}: no NaN among the values"
        );
        assert!(want.iter().any(|v| v.is_infinite()), "{ty}: no infinity");
        for offset in [0, 16, 4] {
            check_as::<f32>(ty, &src, offset, Nans::Any);
            check_as::<f16>(ty, &src, offset / 2, Nans::Any);
            check_as::<bf16>(ty, &src, offset / 2, Nans::Any);
        }
    }
}

#[test]
fn unavailable_levels_are_errors() {
    for level in Level::ALL {
        let mut out = vec![0f32; 32];
        let r = cpu::dequantize_with(level, false, GgmlType::Q4_0, &[0u8; 18], &mut out);
        assert_eq!(r.is_ok(), level.is_available(), "{level:?}");
    }
}

/// f16 into f16 and bf16 into bf16 copy the bits, every pattern (signalling
/// NaNs stay signalling), on the reference and at every level.
#[test]
fn same_type_output_is_a_bit_exact_copy() {
    let halves: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
    let want: Vec<u16> = (0..=u16::MAX).collect();
    for level in Level::available() {
        for streaming in [false, true] {
            let mut h = vec![f16::ZERO; want.len()];
            cpu::dequantize_with(level, streaming, GgmlType::F16, &halves, &mut h).unwrap();
            assert!(
                h.iter().map(|v| v.to_bits()).eq(want.iter().copied()),
                "f16 {level:?}"
            );
            let mut b = vec![bf16::ZERO; want.len()];
            cpu::dequantize_with(level, streaming, GgmlType::BF16, &halves, &mut b).unwrap();
            assert!(
                b.iter().map(|v| v.to_bits()).eq(want.iter().copied()),
                "bf16 {level:?}"
            );
        }
    }
    let mut h = vec![f16::ZERO; want.len()];
    cpu::dequantize_reference(GgmlType::F16, &halves, &mut h).unwrap();
    assert!(h.iter().map(|v| v.to_bits()).eq(want.iter().copied()));
    // a signalling NaN: quiet bit clear, payload set
    assert_eq!(h[0x7c01].to_bits(), 0x7c01);
}

/// The fill limit (`cpu::fill_limit`, the benchmarks' yardstick) writes every
/// value of its output and nothing around it, into every output type, at every
/// level, streaming and not, at every phase: a fill that skipped values would
/// measure less than a decoder must do. (Its values are meaningless, but
/// never NaN: the output starts as NaNs.)
#[test]
fn the_fill_limit_writes_every_value_and_only_those() {
    fn check_fill<O: Bits>(ty: GgmlType, src: &[u8], offset: usize) {
        let n = src.len() / ty.block_bytes() * ty.block_elems();
        let size = std::mem::size_of::<O>();
        for level in Level::available() {
            for streaming in [false, true] {
                let mut buf = vec![O::from_f32(f32::NAN); n + 128 / size];
                let start = buf.as_ptr().align_offset(64) + offset / size;
                cpu::fill_limit(level, streaming, ty, src, &mut buf[start..start + n]).unwrap();
                let what = format!(
                    "{ty} -> {:?}, {n} values, level {}, streaming {streaming}, offset {offset}",
                    O::OUT,
                    level.name()
                );
                let written = &buf[start..start + n];
                if let Some(i) = written.iter().position(|v| v.is_nan()) {
                    panic!("{what}: value {i} was not written");
                }
                let around = buf[..start].iter().chain(&buf[start + n..]);
                assert!(around.clone().all(|v| v.is_nan()), "{what}: wrote outside");
            }
        }
    }
    let mut rng = Rng(0xf111);
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_K,
        GgmlType::F16,
        GgmlType::TQ2_0,
    ] {
        let qk = ty.block_elems();
        for count in [1, 3, 17, 2048 / qk + 1, 65536 / qk + 3] {
            let src = random_blocks(ty, count, &mut rng);
            for offset in [0, 16, 4] {
                check_fill::<f32>(ty, &src, offset);
                check_fill::<f16>(ty, &src, offset / 2);
                check_fill::<bf16>(ty, &src, offset / 2);
            }
        }
    }
}
