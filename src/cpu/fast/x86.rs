//! x86-64 building blocks shared by the kernels: reading block fields,
//! widening bytes to f32 lanes, and storing f32 lanes as the output type.
//!
//! A kernel is written once over [`Isa`]: the few steps where AVX-512 does
//! better than AVX2 (writing the output, applying sign bits) go through it,
//! everything else is AVX2 code that both levels run. [`kernel!`] then
//! compiles the kernel twice, as `avx2` (for AVX2 + F16C) and `avx512` (the
//! same plus AVX-512 F/BW/VL/DQ, where the compiler also gets 32 vector
//! registers and EVEX encodings). Every function on the way carries its
//! level's features, closures included: none relies on being inlined into
//! one that does.
//!
//! Every function here requires AVX2 and F16C; the kernels that call them are
//! compiled for those features and only run where the CPU has them. Those
//! that only compute on values are safe `#[target_feature]` functions; those
//! that read or write through a pointer are `unsafe`, with their bounds
//! stated under `# Safety`. The output writers ([`Out`]) check their bounds
//! with debug assertions, which the tests run.
//!
//! Kernels take `const NT: bool`: with it, they write the output with
//! non-temporal stores (the output must then be 16-byte aligned), for outputs
//! too large to stay in cache; without it, with ordinary stores.

use std::arch::x86_64::*;

use crate::cpu::OutElem;
use crate::types::OutType;

/// An instruction-set level's way of doing the steps where AVX-512 does
/// better than AVX2: writing the output, and sign bits.
///
/// # Safety
/// The methods need the features of their level (they are `unsafe` for that
/// alone); kernels call them from functions compiled with those features
/// ([`kernel!`]).
pub trait Isa {
    /// The level's [`Out`].
    type Out<O: OutElem, const NT: bool>: Out;
    /// A writer of `out`, which the kernel fills with exactly `n` values, in
    /// order (panics if `out` does not hold `n`).
    ///
    /// # Safety
    /// The CPU has the level's features, and with `NT`, `out` is 16-byte
    /// aligned.
    unsafe fn out<O: OutElem, const NT: bool>(out: &mut [O], n: usize) -> Self::Out<O, NT>;
    /// The 32 bits of `bits` as 32 bytes, in order: 0xFF where the bit is set.
    unsafe fn bits_to_bytes(bits: u32) -> __m256i;
    /// `x` negated, as signed bytes, where the bit of `signs` of the same
    /// index is set: the lattice formats' signs. `db * (-g)` is `-(db * g)`
    /// exactly (rounding is symmetric), so the sign can be applied to the
    /// integer before the product.
    unsafe fn apply_signs(x: __m256i, signs: u32) -> __m256i;
}

/// A kernel's output, written 32 values at a time, in order, as the output
/// type: as they are, or rounded to nearest even into f16 or bf16 as `half`
/// does. `d`, `d0`, `d1` and `m` hold the same value in every lane. Every
/// level computes the same products in the same order (no fused
/// multiply-add), so every level writes the same bits.
///
/// # Safety
/// Every method needs the features of the writer's level, and the values
/// given, over all calls, must not be more than the `n` promised to
/// [`Isa::out`]: the writer stores them through a raw pointer into the output
/// (checked by debug assertions only). [`Out::finish`] comes last, after
/// exactly `n` values.
pub trait Out {
    /// 32 values given as f32 lanes.
    unsafe fn f32x32(&mut self, v: [__m256; 4]);
    /// 32 values of a 16-bit output (f16 or bf16, not f32) given as their
    /// bits: values 0-15 in `a`, 16-31 in `b`. The fill limit's: nothing to
    /// round.
    unsafe fn bits16x32(&mut self, a: __m256i, b: __m256i);
    /// 32 signed bytes times `d`: `x[j] as f32 * d`.
    unsafe fn i8x32_mul(&mut self, x: __m256i, d: __m256);
    /// 32 signed bytes, the first 16 times `d0`, the others times `d1`.
    unsafe fn i8x16x2_mul(&mut self, x: __m256i, d0: __m256, d1: __m256);
    /// 32 unsigned bytes as `x * d + m`, multiplied then added (q4_1 and
    /// q5_1's order).
    unsafe fn u8x32_mul_add(&mut self, x: __m256i, d: __m256, m: __m256);
    /// 32 unsigned bytes as `d * x - m`, multiplied then subtracted (the
    /// k-quants' order).
    unsafe fn u8x32_mul_sub(&mut self, x: __m256i, d: __m256, m: __m256);
    /// 32 values `values[idx[j]] as f32 * d`: `idx` holds 32 bytes below 16,
    /// `values` a 4-bit format's code book, 16 signed bytes, in each 128-bit
    /// half. A block (or sub-block) of such a format has only 16 distinct
    /// values: a writer may compute those and look them up.
    unsafe fn i4x32_mul(&mut self, idx: __m256i, values: __m256i, d: __m256);
    /// 32 values `idx[j] * d + m`, `idx` 32 bytes below 16 (q4_1's order).
    unsafe fn u4x32_mul_add(&mut self, idx: __m256i, d: __m256, m: __m256);
    /// 32 values `d * idx[j] - m`, `idx` 32 bytes below 16 (q4_K's order).
    unsafe fn u4x32_mul_sub(&mut self, idx: __m256i, d: __m256, m: __m256);
    /// 32 values `values[idx[j]] as f32` times `d0` for the first 16, `d1`
    /// for the others: `idx` 32 bytes below 8, `values` a code book of 8
    /// signed bytes at the start of each 128-bit half (q3_K's codes).
    unsafe fn i3x16x2_mul(&mut self, idx: __m256i, values: __m256i, d0: __m256, d1: __m256);
    /// 32 values `d0 * idx[j] - m0` for the first 16, `d1 * idx[j] - m1` for
    /// the others, `idx` 32 bytes below 8 (q2_K's codes and order).
    unsafe fn u3x16x2_mul_sub(
        &mut self,
        idx: __m256i,
        d0: __m256,
        m0: __m256,
        d1: __m256,
        m1: __m256,
    );
    /// 32 lattice values `±grid[j] as f32 * d`: the grid bytes, negated where
    /// bit `j` of `signs` is set ([`Isa::apply_signs`]). Every grid byte is
    /// one of at most 8 magnitudes, `mags[(grid[j] >> shift) & 7]` (`mags`:
    /// unsigned bytes at the start of each 128-bit half, `shift` below 6): a
    /// writer may compute the 16 signed values once and look them up.
    unsafe fn signed_grid_x32_mul(
        &mut self,
        grid: __m256i,
        signs: u32,
        mags: __m256i,
        shift: i32,
        d: __m256,
    );
    /// [`Out::signed_grid_x32_mul`], the first 16 values times `d0`, the
    /// others times `d1`, with at most 4 magnitudes,
    /// `mags[(grid[j] >> shift) & 3]`.
    unsafe fn signed_grid_x16x2_mul(
        &mut self,
        grid: __m256i,
        signs: u32,
        mags: __m256i,
        shift: i32,
        d0: __m256,
        d1: __m256,
    );
    /// 32 values `d * (g as f32 + deltas[l])`, added then multiplied (the iq1
    /// formats' order): `g` the signed bytes of `rows[l]`, each -1, 0 or 1,
    /// the `deltas` one magnitude with either sign, `d` `d0` for the first 16
    /// values and `d1` for the others.
    unsafe fn ternary_x32(&mut self, rows: [u64; 4], deltas: [f32; 4], d0: __m256, d1: __m256);
    /// 32 values `d` where bit `j` of `bits` is set, `-d` (negated exactly)
    /// where it is clear (q1_0's).
    unsafe fn signs_x32(&mut self, bits: u32, d: __m256);
    /// 32 values `(digits[j] - 1) as f32 * d`, `digits` 32 bytes 0, 1 or 2
    /// (tq1_0's base-3 digits).
    unsafe fn ternary_digits_x32_mul(&mut self, digits: __m256i, d: __m256);
    /// Writes what is still held back; the kernel's last call.
    unsafe fn finish(self);
}

/// AVX2 with F16C: 8 lanes at a time.
pub struct Avx2;

impl Isa for Avx2 {
    type Out<O: OutElem, const NT: bool> = Avx2Out<O, NT>;

    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn out<O: OutElem, const NT: bool>(out: &mut [O], n: usize) -> Avx2Out<O, NT> {
        assert_eq!(out.len(), n);
        debug_assert!(
            !NT || (out.as_ptr() as usize).is_multiple_of(16),
            "streamed outputs are 16-byte aligned"
        );
        let std::ops::Range { start, end } = out.as_mut_ptr_range();
        Avx2Out { y: start, end }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn bits_to_bytes(bits: u32) -> __m256i {
        // byte j takes byte j / 8 of `bits`, then tests bit j % 8 of it
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_set_epi64x(
                0x0303_0303_0303_0303,
                0x0202_0202_0202_0202,
                0x0101_0101_0101_0101,
                0,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn apply_signs(x: __m256i, signs: u32) -> __m256i {
        // SAFETY: this function has the features `bits_to_bytes` needs.
        let m = unsafe { Self::bits_to_bytes(signs) };
        _mm256_sub_epi8(_mm256_xor_si256(x, m), m)
    }
}

/// [`Avx2`]'s output: 8 lanes per store, 16 bytes per non-temporal store.
pub struct Avx2Out<O, const NT: bool> {
    /// Where the next value goes.
    y: *mut O,
    /// One past the output's last value (for the debug assertions).
    end: *mut O,
}

impl<O: OutElem, const NT: bool> Out for Avx2Out<O, NT> {
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn f32x32(&mut self, v: [__m256; 4]) {
        debug_assert!(
            self.y.wrapping_add(32) <= self.end,
            "more values than the output holds"
        );
        // SAFETY (for the stores): `y..y + 32` is inside the output: the values
        // given, these included, are at most the `n` it holds (the trait's
        // contract). With `NT`, `y` is 16-byte aligned: the output is
        // (`Isa::out`'s contract), and `y` moves by 32 values, a multiple of 16
        // bytes.
        if O::OUT == OutType::BF16 {
            // two vectors to one 32-byte store (for f16, F16C's conversion is
            // one instruction, and joining its halves measured slower here)
            let [v0, v1, v2, v3] = v;
            // SAFETY: see above; 16 values of 2 bytes at `y` and at `y + 16`.
            unsafe {
                store32::<NT>(self.y.cast(), to_bf16x16(v0, v1));
                store32::<NT>(self.y.add(16).cast(), to_bf16x16(v2, v3));
            }
        } else {
            for (i, v) in v.into_iter().enumerate() {
                // SAFETY: see above; 8 values at `y + 8 i`.
                unsafe { store8::<O, NT>(self.y.add(8 * i), v) };
            }
        }
        // SAFETY: as above, `y + 32` is at most one past the output's end.
        self.y = unsafe { self.y.add(32) };
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn bits16x32(&mut self, a: __m256i, b: __m256i) {
        assert!(O::OUT != OutType::F32, "bits16x32 writes a 16-bit output");
        debug_assert!(
            self.y.wrapping_add(32) <= self.end,
            "more values than the output holds"
        );
        // SAFETY: `y..y + 32` is inside the output, 16-byte aligned with
        // `NT`, as in `f32x32`; 16 values of 2 bytes at `y` and `y + 16`.
        unsafe {
            store32::<NT>(self.y.cast(), a);
            store32::<NT>(self.y.add(16).cast(), b);
            self.y = self.y.add(32);
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn i8x32_mul(&mut self, x: __m256i, d: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.i8x16x2_mul(x, d, d) };
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn i8x16x2_mul(&mut self, x: __m256i, d0: __m256, d1: __m256) {
        let [q0, q1, q2, q3] = quarters(x);
        // SAFETY: the same 32 values, under this method's contract.
        unsafe {
            self.f32x32([
                _mm256_mul_ps(i8x8_to_ps(q0), d0),
                _mm256_mul_ps(i8x8_to_ps(q1), d0),
                _mm256_mul_ps(i8x8_to_ps(q2), d1),
                _mm256_mul_ps(i8x8_to_ps(q3), d1),
            ])
        };
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn u8x32_mul_add(&mut self, x: __m256i, d: __m256, m: __m256) {
        let v = quarters(x).map(|q| _mm256_add_ps(_mm256_mul_ps(u8x8_to_ps(q), d), m));
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.f32x32(v) };
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn u8x32_mul_sub(&mut self, x: __m256i, d: __m256, m: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.f32x32(u8x16x2_mul_sub(x, d, m, d, m)) };
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn i4x32_mul(&mut self, idx: __m256i, values: __m256i, d: __m256) {
        if O::OUT != OutType::BF16 {
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.i8x32_mul(_mm256_shuffle_epi8(values, idx), d) }
        } else {
            let book = _mm256_castsi256_si128(values);
            let t0 = _mm256_mul_ps(i8x8_to_ps(book), d);
            let t1 = _mm256_mul_ps(i8x8_to_ps(_mm_srli_si128::<8>(book)), d);
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(idx, t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn u4x32_mul_add(&mut self, idx: __m256i, d: __m256, m: __m256) {
        if O::OUT != OutType::BF16 {
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.u8x32_mul_add(idx, d, m) }
        } else {
            let [k0, k1] = nibble_values();
            let t0 = _mm256_add_ps(_mm256_mul_ps(k0, d), m);
            let t1 = _mm256_add_ps(_mm256_mul_ps(k1, d), m);
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(idx, t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn u4x32_mul_sub(&mut self, idx: __m256i, d: __m256, m: __m256) {
        if O::OUT != OutType::BF16 {
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.u8x32_mul_sub(idx, d, m) }
        } else {
            let [k0, k1] = nibble_values();
            let t0 = _mm256_sub_ps(_mm256_mul_ps(d, k0), m);
            let t1 = _mm256_sub_ps(_mm256_mul_ps(d, k1), m);
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(idx, t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn i3x16x2_mul(&mut self, idx: __m256i, values: __m256i, d0: __m256, d1: __m256) {
        if O::OUT != OutType::BF16 {
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.i8x16x2_mul(_mm256_shuffle_epi8(values, idx), d0, d1) }
        } else {
            let book = i8x8_to_ps(_mm256_castsi256_si128(values));
            let (t0, t1) = (_mm256_mul_ps(book, d0), _mm256_mul_ps(book, d1));
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(second_half_from_8(idx), t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn u3x16x2_mul_sub(
        &mut self,
        idx: __m256i,
        d0: __m256,
        m0: __m256,
        d1: __m256,
        m1: __m256,
    ) {
        if O::OUT != OutType::BF16 {
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.f32x32(u8x16x2_mul_sub(idx, d0, m0, d1, m1)) }
        } else {
            let [k, _] = nibble_values();
            let t0 = _mm256_sub_ps(_mm256_mul_ps(d0, k), m0);
            let t1 = _mm256_sub_ps(_mm256_mul_ps(d1, k), m1);
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(second_half_from_8(idx), t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn signed_grid_x32_mul(
        &mut self,
        grid: __m256i,
        signs: u32,
        mags: __m256i,
        shift: i32,
        d: __m256,
    ) {
        let mag = magnitude_indices(grid, mags, shift, 7);
        if O::OUT != OutType::BF16 {
            // SAFETY: this function has the features `apply_signs` needs; the
            // same 32 values, under this method's contract.
            unsafe { self.i8x32_mul(Avx2::apply_signs(grid, signs), d) }
        } else {
            // SAFETY: this function has the features `bits_to_bytes` needs.
            let negative = unsafe { Avx2::bits_to_bytes(signs) };
            // the negated magnitudes at 8-15
            let idx = _mm256_or_si256(mag, _mm256_and_si256(negative, _mm256_set1_epi8(8)));
            let m = u8x8_to_ps(_mm256_castsi256_si128(mags));
            // `(-g) * d` as the other writers compute it (not `-(g * d)`,
            // which differs for a NaN `d`)
            let (t0, t1) = (_mm256_mul_ps(m, d), _mm256_mul_ps(negated(m), d));
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(idx, t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn signed_grid_x16x2_mul(
        &mut self,
        grid: __m256i,
        signs: u32,
        mags: __m256i,
        shift: i32,
        d0: __m256,
        d1: __m256,
    ) {
        let mag = magnitude_indices(grid, mags, shift, 3);
        if O::OUT != OutType::BF16 {
            // SAFETY: this function has the features `apply_signs` needs; the
            // same 32 values, under this method's contract.
            unsafe { self.i8x16x2_mul(Avx2::apply_signs(grid, signs), d0, d1) }
        } else {
            // SAFETY: this function has the features `bits_to_bytes` needs.
            let negative = unsafe { Avx2::bits_to_bytes(signs) };
            // per 8-entry book: the magnitudes at 0-3, negated at 4-7
            let idx = _mm256_or_si256(mag, _mm256_and_si256(negative, _mm256_set1_epi8(4)));
            let m = u8x8_to_ps(_mm256_castsi256_si128(mags));
            let m = _mm256_permute2f128_ps::<0x00>(m, m);
            let book = _mm256_blend_ps::<0xF0>(m, negated(m));
            let (t0, t1) = (_mm256_mul_ps(book, d0), _mm256_mul_ps(book, d1));
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(second_half_from_8(idx), t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn ternary_x32(&mut self, rows: [u64; 4], deltas: [f32; 4], d0: __m256, d1: __m256) {
        debug_assert!(deltas.iter().all(|x| x.abs() == deltas[0].abs()));
        let [r0, r1, r2, r3] = rows.map(|r| r as i64);
        let grid = _mm256_setr_epi64x(r0, r1, r2, r3);
        debug_assert!(
            _mm256_movemask_epi8(_mm256_cmpgt_epi8(
                _mm256_abs_epi8(grid),
                _mm256_set1_epi8(1)
            )) == 0,
            "a ternary grid byte that is not -1, 0 or 1"
        );
        if O::OUT != OutType::BF16 {
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.f32x32(ternary_ps(rows, deltas, d0, d1)) }
        } else {
            // per 8-entry book: grid -1, 0, 1 plus |delta| at 0-2, minus it
            // at 4-6; the rows whose delta is negative (sign bit set) use 4-6
            let [s0, s1, s2, s3] = deltas.map(|x| x.to_bits() as i32 as i64);
            let minus =
                _mm256_cmpgt_epi64(_mm256_setzero_si256(), _mm256_setr_epi64x(s0, s1, s2, s3));
            let idx = _mm256_or_si256(
                _mm256_add_epi8(grid, _mm256_set1_epi8(1)),
                _mm256_and_si256(minus, _mm256_set1_epi8(4)),
            );
            let g = _mm256_setr_ps(-1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 1.0, 0.0);
            let delta = _mm256_set1_ps(deltas[0].abs());
            let shifted = _mm256_add_ps(g, _mm256_blend_ps::<0xF0>(delta, negated(delta)));
            let (t0, t1) = (_mm256_mul_ps(d0, shifted), _mm256_mul_ps(d1, shifted));
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(second_half_from_8(idx), t0, t1) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn ternary_digits_x32_mul(&mut self, digits: __m256i, d: __m256) {
        if O::OUT != OutType::BF16 {
            // a subtraction, not a lookup: the digits' extraction keeps the
            // shuffle units busy already
            let x = _mm256_sub_epi8(digits, _mm256_set1_epi8(1));
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.i8x32_mul(x, d) }
        } else {
            let book = _mm256_broadcastsi128_si256(_mm_setr_epi8(
                -1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ));
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.i4x32_mul(digits, book, d) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn signs_x32(&mut self, bits: u32, d: __m256) {
        if O::OUT != OutType::BF16 {
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.f32x32(signs_ps(bits, d)) }
        } else {
            // SAFETY: this function has the features `bits_to_bytes` needs.
            let set = unsafe { Avx2::bits_to_bytes(bits) };
            let idx = _mm256_and_si256(set, _mm256_set1_epi8(1));
            // the book: -d, d
            let book = _mm256_blend_ps::<0b10>(negated(d), d);
            // SAFETY: the same 32 values, under this method's contract.
            unsafe { self.looked_up(idx, book, book) }
        }
    }
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn finish(self) {
        debug_assert!(self.y == self.end, "fewer values than promised");
    }
}

/// 32 indices below 8, the last 16 moved to 8-15: two 8-entry tables, one
/// per 16 values, as one of 16.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn second_half_from_8(idx: __m256i) -> __m256i {
    _mm256_or_si256(
        idx,
        _mm256_setr_m128i(_mm_setzero_si128(), _mm_set1_epi8(8)),
    )
}

/// The indices `(grid[j] >> shift) & mask` of 32 lattice grid bytes into
/// their magnitudes `mags` (checked in debug builds: a wrong book would write
/// wrong values into bf16 only).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn magnitude_indices(grid: __m256i, mags: __m256i, shift: i32, mask: i8) -> __m256i {
    let shifted = _mm256_srl_epi16(grid, _mm_cvtsi32_si128(shift));
    let idx = _mm256_and_si256(shifted, _mm256_set1_epi8(mask));
    debug_assert!(
        _mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_shuffle_epi8(mags, idx), grid)) == -1,
        "a grid byte that is not its magnitude"
    );
    idx
}

/// `x` with every lane's sign flipped (exact).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn negated(x: __m256) -> __m256 {
    _mm256_xor_ps(x, _mm256_set1_ps(-0.0))
}

/// [`Out::signs_x32`]'s values as f32 lanes: per 8, byte `l` of `bits`
/// spread to lane masks that flip the sign of `d` where a bit is clear.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn signs_ps(bits: u32, d: __m256) -> [__m256; 4] {
    let bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let sign = _mm256_set1_epi32(i32::MIN);
    let d = _mm256_castps_si256(d);
    std::array::from_fn(|l| {
        let byte = _mm256_set1_epi32((bits >> (8 * l)) as i32 & 0xFF);
        let set = _mm256_cmpeq_epi32(_mm256_and_si256(byte, bit), bit);
        _mm256_castsi256_ps(_mm256_xor_si256(d, _mm256_andnot_si256(set, sign)))
    })
}

/// [`Out::ternary_x32`]'s values as f32 lanes: per row of 8, its bytes
/// widened, plus its signed delta, times its half's `d`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn ternary_ps(rows: [u64; 4], deltas: [f32; 4], d0: __m256, d1: __m256) -> [__m256; 4] {
    std::array::from_fn(|l| {
        let g = i8x8_to_ps(_mm_cvtsi64_si128(rows[l] as i64));
        let d = if l < 2 { d0 } else { d1 };
        _mm256_mul_ps(d, _mm256_add_ps(g, _mm256_set1_ps(deltas[l])))
    })
}

/// 32 unsigned bytes as `d0 * x - m0` (the first 16) and `d1 * x - m1` (the
/// others), multiplied then subtracted (the k-quants' order), as f32 lanes.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn u8x16x2_mul_sub(x: __m256i, d0: __m256, m0: __m256, d1: __m256, m1: __m256) -> [__m256; 4] {
    let [q0, q1, q2, q3] = quarters(x);
    let value = |q, d, m| _mm256_sub_ps(_mm256_mul_ps(d, u8x8_to_ps(q)), m);
    [
        value(q0, d0, m0),
        value(q1, d0, m0),
        value(q2, d1, m1),
        value(q3, d1, m1),
    ]
}

impl<O: OutElem, const NT: bool> Avx2Out<O, NT> {
    /// 32 values `table[idx[j]]` of a bf16 output, the table's 16 f32 values
    /// in `t0` (indices 0-7) and `t1` (8-15), `idx` 32 bytes below 16. The
    /// table is rounded once, its values' low and high bytes looked up with
    /// byte shuffles and interleaved: about a dozen operations for 32 values
    /// where rounding each costs that for 8. The values are those rounding
    /// each would give, bit for bit: a lookup only copies them. (For f16,
    /// F16C's one instruction per 8 values is as fast: measured.)
    ///
    /// # Safety
    /// As [`Out::f32x32`]: 32 values under the writer's contract, with the
    /// CPU's AVX2 and F16C.
    #[target_feature(enable = "avx2,f16c")]
    #[inline]
    unsafe fn looked_up(&mut self, idx: __m256i, t0: __m256, t1: __m256) {
        debug_assert!(O::OUT == OutType::BF16);
        debug_assert!(
            self.y.wrapping_add(32) <= self.end,
            "more values than the output holds"
        );
        let table = to_bf16x16(t0, t1);
        // per 128-bit half, the low bytes of its 8 values, then their high
        // bytes; then the quarters as lo(0-7) lo(8-15) hi(0-7) hi(8-15)
        let split = _mm256_shuffle_epi8(
            table,
            _mm256_broadcastsi128_si256(_mm_setr_epi8(
                0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15,
            )),
        );
        let split = _mm256_permute4x64_epi64::<0b11_01_10_00>(split);
        let low_bytes = _mm256_permute2x128_si256::<0x00>(split, split);
        let high_bytes = _mm256_permute2x128_si256::<0x11>(split, split);
        let lo = _mm256_shuffle_epi8(low_bytes, idx);
        let hi = _mm256_shuffle_epi8(high_bytes, idx);
        // within 128-bit halves: values 0-7 | 16-23, then 8-15 | 24-31
        let a = _mm256_unpacklo_epi8(lo, hi);
        let b = _mm256_unpackhi_epi8(lo, hi);
        // SAFETY: `y..y + 32` is inside the output (the contract, checked by
        // the assertion above in debug builds); with `NT`, `y` is 16-byte
        // aligned, as in `f32x32`. 16 values of 2 bytes at `y` and `y + 16`.
        unsafe {
            store32::<NT>(self.y.cast(), _mm256_permute2x128_si256::<0x20>(a, b));
            store32::<NT>(
                self.y.add(16).cast(),
                _mm256_permute2x128_si256::<0x31>(a, b),
            );
            self.y = self.y.add(32);
        }
    }
}

/// The 16 values of a nibble as f32: 0-7, 8-15.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn nibble_values() -> [__m256; 2] {
    [
        _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0),
        _mm256_setr_ps(8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0),
    ]
}

/// Compiles a kernel, written once as `kernel!(file::Type, |src, out| { ... })`
/// with `S` standing for the level ([`Isa`]), `O` for the output type and
/// `NT` for streaming, into the format's [`Simd`] implementation: `avx2` and
/// `avx512`, each compiled with its level's features. `file::Type` is the
/// format's scalar reference (`cpu::file::Type`), whose contract the kernel
/// keeps. The body is pasted into each, rather than called, so that it and
/// the closures in it carry those features: code without them (a generic
/// helper, a closure in one) calls the intrinsics it uses out of line.
///
/// [`Simd`]: super::Simd
macro_rules! kernel {
    ($($path:ident)::+, |$src:ident, $out:ident| $body:block) => {
        impl $crate::cpu::fast::Simd for $crate::cpu::$($path)::+ {
            #[target_feature(enable = "avx2,f16c")]
            unsafe fn avx2<O: $crate::cpu::OutElem, const NT: bool>($src: &[u8], $out: &mut [O]) {
                type S = $crate::cpu::fast::x86::Avx2;
                $body
            }

            #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
            unsafe fn avx512<O: $crate::cpu::OutElem, const NT: bool>(
                $src: &[u8],
                $out: &mut [O],
            ) {
                type S = $crate::cpu::fast::avx512::Avx512;
                $body
            }
        }
    };
}
pub(super) use kernel;

/// The f16 at `p` (any alignment), widened exactly (as `half::f16::to_f32`).
///
/// # Safety
/// `p` is valid for reading 2 bytes, and the CPU has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: `p` is readable for 2 bytes (the contract), with no alignment
    // needed by `read_unaligned`.
    f16_bits_to_f32(u16::from_le(unsafe {
        std::ptr::read_unaligned(p.cast::<u16>())
    }))
}

/// An f16 given by its bits, widened exactly.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
}

/// How far ahead (bytes) kernels that read much input prefetch it when
/// streaming (`NT`): the hardware prefetcher alone leaves the streaming stores
/// waiting on loads (plain types, q8_0).
pub const PREFETCH: usize = 4096;

/// Prefetches the input `PREFETCH` bytes past `p` (never faults, even past the
/// end) into the L2 cache: one thread's copy rate is bound by the misses it
/// keeps in flight, and prefetches to L2 leave the L1's few miss buffers to
/// the loads and the streaming stores (measured on one core: 1.8x a memcpy's
/// rate, against 1.6x prefetching into L1 and 1.5x not prefetching).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn prefetch_ahead(p: *const u8) {
    // SAFETY: a prefetch is a hint: it reads nothing the program sees and
    // never faults, whatever the address (`wrapping_add` makes none invalid).
    // `_mm_prefetch` is a safe function in the newest std, unsafe in older
    // ones still within `rust-version`.
    #[allow(unused_unsafe)]
    unsafe {
        _mm_prefetch::<_MM_HINT_T1>(p.wrapping_add(PREFETCH).cast())
    };
}

/// `DELTA`, negated where `negate` (0 or 1), without a branch: the i-quants'
/// shift signs are random bits, which branch predictors cannot learn.
#[inline(always)]
pub fn signed_delta(delta: f32, negate: u32) -> f32 {
    f32::from_bits(delta.to_bits() ^ (negate << 31))
}

/// 16 bytes at `p` (any alignment).
///
/// # Safety
/// `p` is valid for reading 16 bytes, and the CPU has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub unsafe fn load16(p: *const u8) -> __m128i {
    // SAFETY: `p` is readable for 16 bytes (the contract); an unaligned load.
    unsafe { _mm_loadu_si128(p.cast()) }
}

/// 32 bytes at `p` (any alignment).
///
/// # Safety
/// `p` is valid for reading 32 bytes, and the CPU has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: `p` is readable for 32 bytes (the contract); an unaligned load.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// The low 8 bytes of `x`, as signed integers, to f32 lanes (exact).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn i8x8_to_ps(x: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x))
}

/// The low 8 bytes of `x`, as unsigned integers, to f32 lanes (exact).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn u8x8_to_ps(x: __m128i) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(x))
}

/// The four 8-byte quarters of `x`, in order.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn quarters(x: __m256i) -> [__m128i; 4] {
    let lo = _mm256_castsi256_si128(x);
    let hi = _mm256_extracti128_si256::<1>(x);
    [lo, _mm_srli_si128::<8>(lo), hi, _mm_srli_si128::<8>(hi)]
}

/// The 16 bytes at `p` split into nibbles: 32 values, the low nibbles first
/// (q4_0's order).
///
/// # Safety
/// `p` is valid for reading 16 bytes, and the CPU has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub unsafe fn nibbles32(p: *const u8) -> __m256i {
    // SAFETY: `p` is readable for 16 bytes (the contract).
    let q = unsafe { load16(p) };
    let m4 = _mm_set1_epi8(0xF);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(q), m4);
    _mm256_set_m128i(hi, _mm_and_si128(q, m4))
}

/// Stores 8 f32 lanes as `O`: as they are, or rounded to nearest even into f16
/// or bf16 with `half`'s results, NaNs included. With `NT`, as non-temporal
/// stores of 16 bytes: `y` must then be 16-byte aligned.
///
/// # Safety
/// `y` is valid for writing 8 values of `O`, 16-byte aligned with `NT`, and
/// the CPU has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub unsafe fn store8<O: OutElem, const NT: bool>(y: *mut O, v: __m256) {
    const { assert!(std::mem::size_of::<O>() == O::OUT.size()) };
    match O::OUT {
        // SAFETY: `O` is f32 (its size is checked above), so `y` is writable
        // for 32 bytes, 16-byte aligned (the contract): two aligned halves.
        OutType::F32 if NT => unsafe {
            _mm_stream_ps(y.cast(), _mm256_castps256_ps128(v));
            _mm_stream_ps(y.cast::<f32>().add(4), _mm256_extractf128_ps::<1>(v));
        },
        // SAFETY: `O` is f32: `y` is writable for 32 bytes; an unaligned store.
        OutType::F32 => unsafe { _mm256_storeu_ps(y.cast(), v) },
        // F16C rounds to nearest even (immediate 0) and quiets signalling NaNs
        // keeping their top payload bits, as half::f16::from_f32 does.
        // SAFETY: `O` is 2 bytes: `y` is writable for 16, aligned as `store16`
        // needs (the contract).
        OutType::F16 => unsafe { store16::<NT>(y.cast(), _mm256_cvtps_ph::<0>(v)) },
        // SAFETY: as for f16.
        OutType::BF16 => unsafe { store16::<NT>(y.cast(), to_bf16(v)) },
    }
}

/// Stores 16 bytes, non-temporally (to a 16-byte aligned `y`) with `NT`.
///
/// # Safety
/// `y` is valid for writing 16 bytes, 16-byte aligned with `NT`, and the CPU
/// has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn store16<const NT: bool>(y: *mut __m128i, v: __m128i) {
    if NT {
        // SAFETY: `y` is writable for 16 bytes and 16-byte aligned (the contract).
        unsafe { _mm_stream_si128(y, v) }
    } else {
        // SAFETY: `y` is writable for 16 bytes (the contract); an unaligned store.
        unsafe { _mm_storeu_si128(y, v) }
    }
}

/// Stores 32 bytes, non-temporally (as two 16-byte halves, to a 16-byte
/// aligned `y`) with `NT`.
///
/// # Safety
/// `y` is valid for writing 32 bytes, 16-byte aligned with `NT`, and the CPU
/// has AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn store32<const NT: bool>(y: *mut __m128i, v: __m256i) {
    // SAFETY: `y` is writable for 32 bytes, 16-byte aligned with `NT` (the
    // contract), so each half is what `store16` needs.
    unsafe {
        if NT {
            store16::<NT>(y, _mm256_castsi256_si128(v));
            store16::<NT>(y.add(1), _mm256_extracti128_si256::<1>(v));
        } else {
            _mm256_storeu_si256(y.cast(), v);
        }
    }
}

/// 8 f32 lanes to bf16 bits, as `half::bf16::from_f32`: NaNs keep their top
/// bits and are quieted; everything else rounds to nearest even (overflowing
/// to infinity). AVX512-BF16's instruction would flush subnormals instead.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn to_bf16(v: __m256) -> __m128i {
    let x = _mm256_castps_si256(v);
    let abs = _mm256_and_si256(x, _mm256_set1_epi32(0x7fff_ffff));
    let nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f80_0000));
    let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(x), _mm256_set1_epi32(0x40));
    let r = _mm256_blendv_epi8(round_to_bf16(v), quiet, nan);
    // every lane is below 2^16: pack them into the low 128 bits, in order
    let packed = _mm256_packus_epi32(r, r);
    _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b00_00_10_00>(packed))
}

/// 16 f32 lanes, `a`'s then `b`'s, to bf16 bits as [`to_bf16`] gives them,
/// in one vector. Decoded values are rarely NaN: lanes are rounded without
/// the NaN fix-up, and a pair with a NaN among them goes through
/// [`to_bf16`] instead (a compare and a branch per 16 values, where the
/// fix-up costs four operations per 8).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub fn to_bf16x16(a: __m256, b: __m256) -> __m256i {
    let unordered = _mm256_cmp_ps::<_CMP_UNORD_Q>(a, b);
    if _mm256_testz_ps(unordered, unordered) == 0 {
        return _mm256_set_m128i(to_bf16(b), to_bf16(a));
    }
    // packing works within 128-bit halves: a0-3 b0-3 | a4-7 b4-7; the
    // permute puts the 64-bit quarters back in order
    let packed = _mm256_packus_epi32(round_to_bf16(a), round_to_bf16(b));
    _mm256_permute4x64_epi64::<0b11_01_10_00>(packed)
}

/// 8 f32 lanes rounded to nearest even to bf16, in the low 16 bits of each
/// 32-bit lane (overflowing to infinity). Right for every lane but NaNs,
/// whose payload the rounding can carry into the exponent or sign.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn round_to_bf16(v: __m256) -> __m256i {
    let x = _mm256_castps_si256(v);
    // adding 0x7fff plus the kept lowest bit carries into the kept bits exactly
    // when the dropped half is above the midpoint, or at it with the kept bits odd
    let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(x), _mm256_set1_epi32(1));
    let bias = _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb);
    _mm256_srli_epi32::<16>(_mm256_add_epi32(x, bias))
}

/// `dst.copy_from_slice(src)`, writing the 32-byte-aligned middle of `dst`
/// with non-temporal stores (the caller fences).
#[target_feature(enable = "avx2,f16c")]
pub fn stream_copy<O: OutElem>(src: &[O], dst: &mut [O]) {
    assert_eq!(src.len(), dst.len());
    // both `n` bytes long, and distinct (`dst` is borrowed mutably)
    let n = std::mem::size_of_val(src);
    let s = src.as_ptr().cast::<u8>();
    let d = dst.as_mut_ptr().cast::<u8>();
    // `d + head` is 32-byte aligned, unless `head == n` (nothing left to stream)
    let head = d.align_offset(32).min(n);
    // SAFETY: `head <= n`: both slices hold the bytes, and they do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(s, d, head) };
    let mut i = head;
    while i + 64 <= n {
        debug_assert!((d as usize + i).is_multiple_of(32));
        // SAFETY: `i + 64 <= n`: bytes `i..i + 64` are inside both slices;
        // `d + i` is 32-byte aligned (`d + head` is, and `i - head` is a
        // multiple of 32), as the streaming stores need.
        unsafe {
            let a = _mm256_loadu_si256(s.add(i).cast());
            let b = _mm256_loadu_si256(s.add(i + 32).cast());
            _mm256_stream_si256(d.add(i).cast(), a);
            _mm256_stream_si256(d.add(i + 32).cast(), b);
        }
        i += 64;
    }
    if i + 32 <= n {
        debug_assert!((d as usize + i).is_multiple_of(32));
        // SAFETY: as in the loop, for bytes `i..i + 32`.
        unsafe { _mm256_stream_si256(d.add(i).cast(), _mm256_loadu_si256(s.add(i).cast())) };
        i += 32;
    }
    // SAFETY: `i <= n`: the last `n - i` bytes are inside both slices.
    unsafe { std::ptr::copy_nonoverlapping(s.add(i), d.add(i), n - i) };
}
