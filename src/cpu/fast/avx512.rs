//! AVX-512 (F, BW, VL, DQ): the [`Isa`] steps 16 lanes at a time, sign bits
//! applied straight from mask registers, and the output streamed in whole
//! 64-byte lines, one store each, whatever its alignment.
//!
//! Every function here requires AVX2, F16C and AVX-512 F/BW/VL/DQ; the
//! kernels that call them are compiled for those features ([`kernel!`])
//! and only run where the CPU has them. The writer ([`Avx512Out`]) checks
//! its bounds with debug assertions, which the tests run. Results are the AVX2 ones to the bit:
//! the same products in the same order, only more of them per instruction.
//!
//! [`kernel!`]: super::x86::kernel

use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::x86::{signs_ps, ternary_ps, u8x16x2_mul_sub, Isa, Out};
use crate::cpu::OutElem;
use crate::types::OutType;

/// AVX-512: 16 lanes at a time.
pub struct Avx512;

impl Isa for Avx512 {
    type Out<O: OutElem, const NT: bool> = Avx512Out<O, NT>;

    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn out<O: OutElem, const NT: bool>(out: &mut [O], n: usize) -> Avx512Out<O, NT> {
        assert_eq!(out.len(), n);
        Avx512Out::new(out)
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn bits_to_bytes(bits: u32) -> __m256i {
        _mm256_movm_epi8(bits)
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn apply_signs(x: __m256i, signs: u32) -> __m256i {
        // 0 - x in the lanes whose bit is set, x in the others
        _mm256_mask_sub_epi8(x, signs, _mm256_setzero_si256(), x)
    }
}

/// [`Avx512`]'s output: a stream of 64-byte lines.
///
/// Streamed (`NT`), each line is one non-temporal store, which needs it
/// aligned to 64 bytes, while outputs (and chunks of them) start anywhere:
/// a `Vec`'s buffer is typically 16 bytes past a line. So the values are
/// stored `shift` bytes late: each aligned line is the previous 64 bytes'
/// last `shift` bytes followed by the new ones' first `64 - shift`, put
/// together in a register (`carry`, one permutation). The bytes before the
/// first boundary and after the last go in ordinary masked stores: those
/// lines are shared with whoever writes next to this output, and a line
/// written both ways would be flushed and read back.
pub struct Avx512Out<O, const NT: bool> {
    /// Without `NT` or with `shift == 0`, where the next line goes; else the
    /// start of the output until the first line, then the next aligned line.
    y: *mut u8,
    /// One past the output's last byte (for the debug assertions).
    end: *mut u8,
    /// The output's offset past a line boundary, in bytes (a multiple of 4).
    shift: usize,
    /// The last 64 bytes given, of which the last `shift` are not yet written.
    carry: __m512i,
    /// The permutation that joins `carry` and new bytes into an aligned line.
    join: __m512i,
    /// Whether no line has been given yet.
    first: bool,
    out: PhantomData<O>,
}

impl<O: OutElem, const NT: bool> Avx512Out<O, NT> {
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    fn new(out: &mut [O]) -> Self {
        let std::ops::Range { start, end } = out.as_mut_ptr_range();
        let (y, end) = (start.cast::<u8>(), end.cast::<u8>());
        let shift = if NT { y as usize % 64 } else { 0 };
        debug_assert!(shift % 4 == 0, "streamed outputs are 4-byte aligned");
        // lane j of a line: lane 16 - k + j of the carry for j < k, else lane
        // j - k of the new bytes (k = shift / 4), i.e. index 16 - k + j of
        // the two side by side
        let lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        let join = _mm512_add_epi32(lanes, _mm512_set1_epi32(16 - (shift / 4) as i32));
        Avx512Out {
            y,
            end,
            shift,
            carry: _mm512_setzero_si512(),
            join,
            first: true,
            out: PhantomData,
        }
    }

    /// The next 64 bytes of output.
    ///
    /// # Safety
    /// The bytes given, these included, are not more than the output holds
    /// (the contract of [`Out`]'s methods, in bytes).
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn line(&mut self, v: __m512i) {
        if !NT {
            debug_assert!(
                self.y.wrapping_add(64) <= self.end,
                "more values than the output holds"
            );
            // SAFETY: `y` is where these 64 bytes go, inside the output (the
            // contract); an unaligned store.
            unsafe {
                _mm512_storeu_si512(self.y.cast(), v);
                self.y = self.y.add(64);
            }
        } else if self.shift == 0 {
            debug_assert!(
                self.y.wrapping_add(64) <= self.end,
                "more values than the output holds"
            );
            // SAFETY: as without `NT`; and `y` is 64-byte aligned, as the
            // streaming store needs: the output starts on a line (`shift` is
            // 0) and `y` moves by 64.
            unsafe {
                _mm512_stream_si512(self.y.cast(), v);
                self.y = self.y.add(64);
            }
        } else {
            if self.first {
                // up to the first boundary
                let lanes = (64 - self.shift) / 4;
                debug_assert!(
                    self.y.wrapping_add(64) <= self.end,
                    "more values than the output holds"
                );
                // SAFETY: `y` is the output's start, and these first 64 bytes
                // given are inside it (the contract); the masked store writes
                // only the first `64 - shift`, up to the first line boundary.
                unsafe {
                    _mm512_mask_storeu_epi32(self.y.cast(), (1u16 << lanes) - 1, v);
                    self.y = self.y.add(64 - self.shift);
                }
                self.first = false;
            } else {
                let line = _mm512_permutex2var_epi32(self.carry, self.join, v);
                // the bytes given so far end `shift` bytes past this line
                debug_assert!(
                    self.y.wrapping_add(64 + self.shift) <= self.end,
                    "more values than the output holds"
                );
                // SAFETY: this line ends `shift` bytes before the end of the
                // bytes given so far, which are inside the output (the
                // contract); `y` is 64-byte aligned, as the streaming store
                // needs: the first boundary, then moved by 64.
                unsafe {
                    _mm512_stream_si512(self.y.cast(), line);
                    self.y = self.y.add(64);
                }
            }
            self.carry = v;
        }
    }

    /// 32 values given as two times 16 f32 lanes.
    ///
    /// # Safety
    /// As for [`Out`]'s methods: these 32 values, with those given before,
    /// are not more than the `n` promised to [`Isa::out`].
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    pub unsafe fn put(&mut self, a: __m512, b: __m512) {
        const { assert!(std::mem::size_of::<O>() == O::OUT.size()) };
        match O::OUT {
            // SAFETY: 32 f32 values are these two lines (the contract).
            OutType::F32 => unsafe {
                self.line(_mm512_castps_si512(a));
                self.line(_mm512_castps_si512(b));
            },
            // rounding to nearest even, signalling NaNs quieted keeping their
            // top payload bits, as half::f16::from_f32 does
            // SAFETY: 32 f16 values are this line (the contract).
            OutType::F16 => unsafe {
                self.line(join_halves(
                    _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(a),
                    _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(b),
                ))
            },
            // SAFETY: 32 bf16 values are this line (the contract).
            OutType::BF16 => unsafe { self.line(join_halves(to_bf16(a), to_bf16(b))) },
        }
    }
}

impl<O: OutElem, const NT: bool> Out for Avx512Out<O, NT> {
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn f32x32(&mut self, [v0, v1, v2, v3]: [__m256; 4]) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.put(join8(v0, v1), join8(v2, v3)) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn bits16x32(&mut self, a: __m256i, b: __m256i) {
        assert!(O::OUT != OutType::F32, "bits16x32 writes a 16-bit output");
        // SAFETY: 32 values of 2 bytes are this line (the contract).
        unsafe { self.line(join_halves(a, b)) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn i8x32_mul(&mut self, x: __m256i, d: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.i8x16x2_mul(x, d, d) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn i8x16x2_mul(&mut self, x: __m256i, d0: __m256, d1: __m256) {
        let [lo, hi] = halves(x);
        // SAFETY: the same 32 values, under this method's contract.
        unsafe {
            self.put(
                _mm512_mul_ps(i8x16_to_ps(lo), repeat8(d0)),
                _mm512_mul_ps(i8x16_to_ps(hi), repeat8(d1)),
            )
        };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn u8x32_mul_add(&mut self, x: __m256i, d: __m256, m: __m256) {
        let (d, m) = (repeat8(d), repeat8(m));
        let [lo, hi] = halves(x).map(|h| _mm512_add_ps(_mm512_mul_ps(u8x16_to_ps(h), d), m));
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.put(lo, hi) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn u8x32_mul_sub(&mut self, x: __m256i, d: __m256, m: __m256) {
        let (d, m) = (repeat8(d), repeat8(m));
        let [lo, hi] = halves(x).map(|h| _mm512_sub_ps(_mm512_mul_ps(d, u8x16_to_ps(h)), m));
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.put(lo, hi) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn i4x32_mul(&mut self, idx: __m256i, values: __m256i, d: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.i8x32_mul(_mm256_shuffle_epi8(values, idx), d) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn u4x32_mul_add(&mut self, idx: __m256i, d: __m256, m: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.u8x32_mul_add(idx, d, m) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn u4x32_mul_sub(&mut self, idx: __m256i, d: __m256, m: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.u8x32_mul_sub(idx, d, m) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn i3x16x2_mul(&mut self, idx: __m256i, values: __m256i, d0: __m256, d1: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.i8x16x2_mul(_mm256_shuffle_epi8(values, idx), d0, d1) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn u3x16x2_mul_sub(
        &mut self,
        idx: __m256i,
        d0: __m256,
        m0: __m256,
        d1: __m256,
        m1: __m256,
    ) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.f32x32(u8x16x2_mul_sub(idx, d0, m0, d1, m1)) };
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn signed_grid_x32_mul(
        &mut self,
        grid: __m256i,
        signs: u32,
        _mags: __m256i,
        _shift: i32,
        d: __m256,
    ) {
        // SAFETY: this function has the features `apply_signs` needs; the
        // same 32 values, under this method's contract.
        unsafe { self.i8x32_mul(Avx512::apply_signs(grid, signs), d) }
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn signed_grid_x16x2_mul(
        &mut self,
        grid: __m256i,
        signs: u32,
        _mags: __m256i,
        _shift: i32,
        d0: __m256,
        d1: __m256,
    ) {
        // SAFETY: this function has the features `apply_signs` needs; the
        // same 32 values, under this method's contract.
        unsafe { self.i8x16x2_mul(Avx512::apply_signs(grid, signs), d0, d1) }
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn ternary_x32(&mut self, rows: [u64; 4], deltas: [f32; 4], d0: __m256, d1: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.f32x32(ternary_ps(rows, deltas, d0, d1)) }
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn ternary_digits_x32_mul(&mut self, digits: __m256i, d: __m256) {
        let x = _mm256_sub_epi8(digits, _mm256_set1_epi8(1));
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.i8x32_mul(x, d) }
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn signs_x32(&mut self, bits: u32, d: __m256) {
        // SAFETY: the same 32 values, under this method's contract.
        unsafe { self.f32x32(signs_ps(bits, d)) }
    }
    #[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
    #[inline]
    unsafe fn finish(self) {
        if NT && self.shift != 0 && !self.first {
            // the carry's last `shift` bytes, from the last boundary on
            let lanes = self.shift / 4;
            debug_assert!(
                self.y.wrapping_add(self.shift) == self.end,
                "fewer values than promised"
            );
            // SAFETY: a line has been given, so `y` is at least `64 - shift`
            // past the output's start, and `at..at + 64` are the last 64 bytes
            // given, inside the output (the contract); the masked store
            // writes only the last `shift` of them, `y..y + shift`.
            unsafe {
                let at = self.y.sub(64 - self.shift);
                _mm512_mask_storeu_epi32(at.cast(), !0u16 << (16 - lanes), self.carry);
            }
        } else {
            debug_assert!(self.y == self.end, "fewer values than promised");
        }
    }
}

/// 8 lanes repeated to 16.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
fn repeat8(v: __m256) -> __m512 {
    _mm512_broadcast_f32x8(v)
}

/// 16 signed bytes to f32 lanes (exact).
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
fn i8x16_to_ps(x: __m128i) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(x))
}

/// 16 unsigned bytes to f32 lanes (exact).
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
fn u8x16_to_ps(x: __m128i) -> __m512 {
    _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(x))
}

/// The two 16-byte halves of `x`.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
fn halves(x: __m256i) -> [__m128i; 2] {
    [_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x)]
}

/// Two 8-lane halves as 16 lanes.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
fn join8(lo: __m256, hi: __m256) -> __m512 {
    _mm512_insertf32x8::<1>(_mm512_castps256_ps512(lo), hi)
}

/// Two 32-byte halves as 64 bytes.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
fn join_halves(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// 16 f32 lanes to bf16 bits, as `half::bf16::from_f32` (see
/// [`super::x86::to_bf16`], the same steps 8 lanes wide). AVX512-BF16's
/// conversion would flush subnormals instead.
#[target_feature(enable = "avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
pub fn to_bf16(v: __m512) -> __m256i {
    let x = _mm512_castps_si512(v);
    let abs = _mm512_and_si512(x, _mm512_set1_epi32(0x7fff_ffff));
    let nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7f80_0000));
    let high = _mm512_srli_epi32::<16>(x);
    let lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
    let bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb);
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(x, bias));
    let quiet = _mm512_or_si512(high, _mm512_set1_epi32(0x40));
    _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet))
}
