#![cfg(feature = "cuda")]
//! The PTX nvcc emits for the kernels, run by the interpreter (`src/ptx/`),
//! against the CPU reference: every kernel of both built targets (compute_90,
//! whose SASS the H100 and H200 run, and the newest architecture's, which the
//! fatbin embeds), all three outputs, over the real-weight fixtures of every
//! type and over random blocks (one block, odd counts, grids too small for
//! the tensor, tails of the plain types, arbitrary bytes with NaN/Inf scales).
//!
//! Without nvcc at build time the build has no PTX: these tests then say they
//! did not run, and fail if `GDQ_REQUIRE_PTX=1` (CI sets it).
//!
//! Values must be bit-identical to the reference, except that any NaN matches
//! any NaN: a GPU's f32 arithmetic returns the canonical NaN where x86
//! propagates a payload (docs/GPU.md), and the interpreter does as the GPU.

mod common;

use common::*;
use gguf_dequant::cpu::{self, OutElem};
use gguf_dequant::kernels::KERNELS;
use gguf_dequant::synth::Rng;
use gguf_dequant::{ptx, GgmlType, OutType};
use half::{bf16, f16};

/// The built targets, or none (after saying so) where the build had no nvcc.
fn targets(test: &str) -> Vec<&'static str> {
    let t = ptx::targets();
    if t.is_empty() {
        if std::env::var_os("GDQ_REQUIRE_PTX").is_some_and(|v| v == "1") {
            panic!("{test}: GDQ_REQUIRE_PTX=1 and this build has no PTX (nvcc was not found)");
        }
        eprintln!("{test}: NOT RUN: this build has no PTX (nvcc was not found when it was built)");
    }
    t
}

/// Decodes with the PTX of `arch` (grid capped at `max_grid`) and compares
/// with the CPU reference: bit for bit, NaN matching NaN.
fn check<O: OutElem + Bits>(
    arch: &str,
    ty: GgmlType,
    src: &[u8],
    max_grid: u32,
    what: &str,
) -> usize {
    let n = src.len() / ty.block_bytes() * ty.block_elems();
    let mut want = vec![O::default(); n];
    cpu::dequantize_reference(ty, src, &mut want).unwrap();
    let mut got = vec![O::default(); n];
    ptx::dequantize_with_grid(arch, ty, src, &mut got, max_grid)
        .unwrap_or_else(|e| panic!("sm_{arch} {ty} {what} -> {:?}: {e}", O::OUT));
    assert_same_values(
        &format!("sm_{arch} {ty} {what} -> {:?}, grid <= {max_grid}", O::OUT),
        &got,
        &want,
    );
    // NaNs whose bits differ (the GPU's canonical NaN)
    (0..n).filter(|&i| got[i].bits() != want[i].bits()).count()
}

#[test]
fn every_listed_kernel_is_in_both_modules_and_loads() {
    for arch in targets("every_listed_kernel_is_in_both_modules_and_loads") {
        let m = ptx::builtin(arch).unwrap();
        let mut names: Vec<&str> = m.kernel_names().collect();
        names.sort_unstable();
        let mut listed: Vec<String> = KERNELS
            .iter()
            .flat_map(|k| OutType::ALL.map(|o| k.symbol(o)))
            .collect();
        listed.sort_unstable();
        assert_eq!(names, listed, "sm_{arch}");
        assert_eq!(names.len(), 93, "28 formats and 3 tails x 3 outputs");
        println!("sm_{arch} ({}): {} kernels", m.target, names.len());
    }
}

#[test]
fn every_type_and_output_on_random_blocks() {
    let cases = kernel_cases(&mut Rng(fresh_seed()));
    for arch in targets("every_type_and_output_on_random_blocks") {
        let mut runs = 0;
        for (ty, n_blocks, src) in &cases {
            let what = format!("{n_blocks} blocks");
            for max_grid in [1, 3, u32::MAX] {
                check::<f32>(arch, *ty, src, max_grid, &what);
                check::<f16>(arch, *ty, src, max_grid, &what);
                check::<bf16>(arch, *ty, src, max_grid, &what);
                runs += 3;
            }
        }
        println!("sm_{arch}: {runs} decodes bit-identical to the reference");
    }
}

/// Arbitrary bytes, scales included (NaN, Inf, subnormal, huge).
#[test]
fn every_type_on_arbitrary_bytes() {
    let mut rng = Rng(fresh_seed());
    for arch in targets("every_type_on_arbitrary_bytes") {
        let mut nan_bits = 0;
        for ty in GgmlType::dequantizable() {
            let mut src = vec![0u8; ty.block_bytes() * 301];
            rng.fill(&mut src);
            nan_bits += check::<f32>(arch, ty, &src, u32::MAX, "arbitrary bytes");
            nan_bits += check::<f16>(arch, ty, &src, 2, "arbitrary bytes");
            nan_bits += check::<bf16>(arch, ty, &src, u32::MAX, "arbitrary bytes");
        }
        println!(
            "sm_{arch}: every value the reference's; {nan_bits} NaNs with other bits (canonical)"
        );
    }
}

/// ggml's own output for real weights of every type, in every output.
#[test]
fn real_weights_of_every_type() {
    let all = real_tensors();
    for arch in targets("real_weights_of_every_type") {
        for t in &all {
            let n = t.expected.len();
            let mut f = vec![0f32; n];
            ptx::dequantize(arch, t.ty, &t.quant, &mut f).unwrap();
            assert_bits_eq(&format!("sm_{arch} {} f32", t.name), &f, &t.expected);
            let mut h = vec![f16::ZERO; n];
            ptx::dequantize(arch, t.ty, &t.quant, &mut h).unwrap();
            assert_bits_eq(
                &format!("sm_{arch} {} f16", t.name),
                &h,
                &to_f16(&t.expected),
            );
            let mut b = vec![bf16::ZERO; n];
            ptx::dequantize(arch, t.ty, &t.quant, &mut b).unwrap();
            assert_bits_eq(
                &format!("sm_{arch} {} bf16", t.name),
                &b,
                &to_bf16(&t.expected),
            );
        }
        println!(
            "sm_{arch}: {} real tensors x 3 outputs bit-identical to ggml",
            all.len()
        );
    }
}

/// f16 into f16 and bf16 into bf16 are copies, every bit pattern (signalling
/// NaNs included), through the 8-wide and the one-element kernels.
#[test]
fn same_type_output_is_a_bit_exact_copy() {
    let halves: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
    let want: Vec<u16> = (0..=u16::MAX).collect();
    for arch in targets("same_type_output_is_a_bit_exact_copy") {
        let len = want.len() - 5;
        let mut h = vec![f16::ZERO; len];
        ptx::dequantize(arch, GgmlType::F16, &halves[..2 * len], &mut h).unwrap();
        assert!(h
            .iter()
            .map(|v| v.to_bits())
            .eq(want[..len].iter().copied()));
        let mut b = vec![bf16::ZERO; len];
        ptx::dequantize(arch, GgmlType::BF16, &halves[..2 * len], &mut b).unwrap();
        assert!(b
            .iter()
            .map(|v| v.to_bits())
            .eq(want[..len].iter().copied()));
    }
}

#[test]
fn lengths_and_types_are_checked() {
    for arch in targets("lengths_and_types_are_checked") {
        let mut out = vec![0f32; 32];
        assert!(ptx::dequantize(arch, GgmlType::Q4_0, &[0u8; 17], &mut out).is_err());
        let err =
            ptx::dequantize(arch, GgmlType::Q8_K, &[0u8; 292], &mut vec![0f32; 256]).unwrap_err();
        assert!(err.to_string().contains("q8_K"), "{err}");
    }
    let err = ptx::dequantize("75", GgmlType::Q4_0, &[0u8; 18], &mut [0f32; 32]).unwrap_err();
    assert!(
        err.to_string().contains("compute_75") || err.to_string().contains("no PTX"),
        "{err}"
    );
}

// ---- the interpreter itself, on hand-written PTX (runs without nvcc) ----

use gguf_dequant::ptx::{LaunchConfig, Memory, Module};

/// A module of one kernel `t(out)` whose body is `body` between the
/// parameter load (into %rd0) and `ret`.
fn module(globals: &str, body: &str) -> String {
    format!(
        ".version 8.0\n.target sm_90\n.address_size 64\n{globals}\n\
         .visible .entry t(\n\t.param .u64 t_param_0\n)\n.maxntid 64, 1, 1\n{{\n\
         \t.reg .pred %p<8>;\n\t.reg .b16 %rs<16>;\n\t.reg .b32 %r<32>;\n\t.reg .f32 %f<16>;\n\t.reg .b64 %rd<32>;\n\
         \tld.param.u64 %rd0, [t_param_0];\n{body}\n\tret;\n}}\n"
    )
}

/// Parses `text` and runs its kernel `t` in one thread over a fresh output of
/// `len` bytes: the memory, the output's address and the launch's result.
fn run_one(text: &str, len: usize) -> (Memory, u64, gguf_dequant::Result<()>) {
    let m = Module::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut mem = Memory::new(&m);
    let out = mem.alloc("out", len).unwrap();
    let c = LaunchConfig {
        grid: [1; 3],
        block: [1; 3],
        params: &[out],
    };
    let r = m.launch("t", &mut mem, &c);
    (mem, out, r)
}

/// Runs `body` in one thread and returns what it left in %r9 (stored to the
/// output by the harness).
fn eval(body: &str) -> u32 {
    let text = module("", &format!("{body}\n\tst.global.u32 [%rd0], %r9;"));
    let (mut mem, out, r) = run_one(&text, 4);
    r.unwrap_or_else(|e| panic!("{body}: {e}"));
    u32::from_le_bytes(mem.read_host(out, 4).unwrap().try_into().unwrap())
}

/// Every instruction form the kernels use, at the edges the PTX ISA defines
/// (shift amounts past the width, bit fields past the msb, sub-word
/// conversions, rounding ties, NaN results), against values worked out from
/// the ISA's definitions by hand.
#[test]
fn instruction_forms_follow_the_isa() {
    let cases: &[(&str, u32)] = &[
        // shifts: amounts past the width clamp to it
        ("mov.b32 %r1, 1; shl.b32 %r9, %r1, 32;", 0),
        ("mov.b32 %r1, 3; shl.b32 %r9, %r1, 31;", 0x8000_0000),
        ("mov.b64 %rd1, 1; shl.b64 %rd2, %rd1, 64; cvt.u32.u64 %r9, %rd2;", 0),
        ("mov.b64 %rd1, -1; shr.u64 %rd2, %rd1, 64; cvt.u32.u64 %r9, %rd2;", 0),
        ("mov.b64 %rd1, -1; shr.u64 %rd2, %rd1, 0x100000000; cvt.u32.u64 %r9, %rd2;", 0xffff_ffff),
        ("mov.b32 %r1, 0xffffffff; shr.u32 %r9, %r1, 33;", 0),
        ("mov.b32 %r1, 0x80000000; shr.s32 %r9, %r1, 40;", 0xffff_ffff),
        ("mov.b16 %rs1, 0x8000; shr.s16 %rs2, %rs1, 20; cvt.u32.u16 %r9, %rs2;", 0xffff),
        ("mov.b16 %rs1, 0x8000; shr.u16 %rs2, %rs1, 15; cvt.u32.u16 %r9, %rs2;", 1),
        ("mov.b16 %rs1, 0x00ff; shl.b16 %rs2, %rs1, 12; cvt.u32.u16 %r9, %rs2;", 0xf000),
        ("mov.b64 %rd1, 1; shl.b64 %rd2, %rd1, 63; shr.u64 %rd3, %rd2, 32; cvt.u32.u64 %r9, %rd3;", 0x8000_0000),
        // bit fields
        ("mov.b32 %r1, 0xf0f0f0f0; bfe.u32 %r9, %r1, 4, 8;", 0x0f),
        ("mov.b32 %r1, 0x00000f00; bfe.s32 %r9, %r1, 8, 4;", 0xffff_ffff),
        ("mov.b32 %r1, 0x00000700; bfe.s32 %r9, %r1, 8, 4;", 7),
        ("mov.b32 %r1, 0x80000000; bfe.s32 %r9, %r1, 40, 4;", 0xffff_ffff),
        ("mov.b32 %r1, 0xffffffff; bfe.s32 %r9, %r1, 4, 0;", 0),
        ("mov.b64 %rd1, 0x800000; bfe.s64 %rd2, %rd1, 16, 8; cvt.u32.u64 %r9, %rd2;", 0xffff_ff80),
        ("mov.b64 %rd1, 0x8000000000; bfe.s64 %rd2, %rd1, 32, 8; shr.u64 %rd3, %rd2, 32; cvt.u32.u64 %r9, %rd3;", 0xffff_ffff),
        ("mov.b32 %r1, 0xff; mov.b32 %r2, 0; bfi.b32 %r9, %r1, %r2, 28, 8;", 0xf000_0000),
        ("mov.b32 %r1, 0xff; mov.b32 %r2, 0x12345678; bfi.b32 %r9, %r1, %r2, 4, 0;", 0x1234_5678),
        ("mov.b32 %r1, 0x5; mov.b32 %r2, 0xffffffff; bfi.b32 %r9, %r1, %r2, 8, 4;", 0xffff_f5ff),
        // byte permutes, with sign replication
        ("mov.b32 %r1, 0x44332211; mov.b32 %r2, 0x88776655; prmt.b32 %r9, %r1, %r2, 0x7531;", 0x8866_4422),
        ("mov.b32 %r1, 0xf0; mov.b32 %r2, 0; prmt.b32 %r9, %r1, %r2, 0x0880;", 0xf0ff_fff0),
        ("mov.b32 %r1, 0x70; mov.b32 %r2, 0; prmt.b32 %r9, %r1, %r2, 0x0880;", 0x7000_0070),
        // integer conversions: sources cut to the type, results extended by it
        ("mov.b64 %rd1, 0x1ff; cvt.s8.s64 %rs1, %rd1; cvt.s32.s16 %r9, %rs1;", 0xffff_ffff),
        ("mov.b64 %rd1, 0x17f; cvt.s8.s64 %rs1, %rd1; cvt.s32.s16 %r9, %rs1;", 0x7f),
        ("mov.b32 %r1, 0x12345678; cvt.u16.u32 %rs1, %r1; cvt.u32.u16 %r9, %rs1;", 0x5678),
        ("mov.b16 %rs1, 0x80; cvt.s16.s8 %rs2, %rs1; cvt.u32.u16 %r9, %rs2;", 0xff80),
        ("mov.b16 %rs1, 0x1ff; cvt.u32.u8 %r9, %rs1;", 0xff),
        ("mov.b32 %r1, 0x80000000; cvt.s64.s32 %rd1, %r1; shr.u64 %rd2, %rd1, 32; cvt.u32.u64 %r9, %rd2;", 0xffff_ffff),
        ("mov.b32 %r1, 0x80000000; cvt.u64.u32 %rd1, %r1; shr.u64 %rd2, %rd1, 32; cvt.u32.u64 %r9, %rd2;", 0),
        // multiplies wrap at their width; wide ones do not
        ("mov.b32 %r1, 0xffffffff; mul.wide.u32 %rd1, %r1, %r1; shr.u64 %rd2, %rd1, 32; cvt.u32.u64 %r9, %rd2;", 0xffff_fffe),
        ("mov.b32 %r1, -2; mov.b32 %r2, 3; mul.wide.s32 %rd1, %r1, %r2; shr.u64 %rd2, %rd1, 32; cvt.u32.u64 %r9, %rd2;", 0xffff_ffff),
        ("mov.b16 %rs1, 0xffff; mul.wide.u16 %r9, %rs1, %rs1;", 0xfffe_0001),
        ("mov.b32 %r1, 0x10000; mad.lo.s32 %r9, %r1, %r1, 5;", 5),
        ("mov.b16 %rs1, 300; mul.lo.s16 %rs2, %rs1, %rs1; cvt.u32.u16 %r9, %rs2;", 24464),
        ("mov.b16 %rs1, 0x7fff; add.s16 %rs2, %rs1, 1; cvt.u32.u16 %r9, %rs2;", 0x8000),
        ("mov.b64 %rd1, 0xffffffff; add.s64 %rd2, %rd1, 1; shr.u64 %rd3, %rd2, 32; cvt.u32.u64 %r9, %rd3;", 1),
        ("mov.b32 %r1, 0x0f0f0f0f; not.b32 %r9, %r1;", 0xf0f0_f0f0),
        ("mov.b32 %r1, 0x0ff0; xor.b32 %r9, %r1, 0xff00;", 0xf0f0),
        // integer to f32, f32 to f16: round to nearest even
        ("mov.b32 %r1, 16777217; cvt.rn.f32.s32 %f1, %r1; mov.b32 %r9, %f1;", 0x4b80_0000),
        ("mov.b32 %r1, 16777219; cvt.rn.f32.s32 %f1, %r1; mov.b32 %r9, %f1;", 0x4b80_0002),
        ("mov.b32 %r1, 0xffffffff; cvt.rn.f32.u32 %f1, %r1; mov.b32 %r9, %f1;", 0x4f80_0000),
        ("mov.b32 %r1, 0xffffffff; cvt.rn.f32.s32 %f1, %r1; mov.b32 %r9, %f1;", 0xbf80_0000),
        ("mov.b16 %rs1, 0xffff; cvt.rn.f32.s16 %f1, %rs1; mov.b32 %r9, %f1;", 0xbf80_0000),
        ("mov.b16 %rs1, 0xffff; cvt.rn.f32.u16 %f1, %rs1; mov.b32 %r9, %f1;", 0x477f_ff00),
        ("mov.f32 %f1, 0f477FF000; cvt.rn.f16.f32 %rs1, %f1; cvt.u32.u16 %r9, %rs1;", 0x7c00),
        ("mov.f32 %f1, 0f477FEFFF; cvt.rn.f16.f32 %rs1, %f1; cvt.u32.u16 %r9, %rs1;", 0x7bff),
        ("mov.f32 %f1, 0f33000000; cvt.rn.f16.f32 %rs1, %f1; cvt.u32.u16 %r9, %rs1;", 0),
        ("mov.f32 %f1, 0f33C00000; cvt.rn.f16.f32 %rs1, %f1; cvt.u32.u16 %r9, %rs1;", 2),
        // f16 to f32: exact, subnormals and infinities kept, a NaN canonical
        ("mov.b16 %rs1, 0x0001; cvt.f32.f16 %f1, %rs1; mov.b32 %r9, %f1;", 0x3380_0000),
        ("mov.b16 %rs1, 0x83ff; cvt.f32.f16 %f1, %rs1; mov.b32 %r9, %f1;", 0xb87f_c000),
        ("mov.b16 %rs1, 0x7bff; cvt.f32.f16 %f1, %rs1; mov.b32 %r9, %f1;", 0x477f_e000),
        ("mov.b16 %rs1, 0xfc00; cvt.f32.f16 %f1, %rs1; mov.b32 %r9, %f1;", 0xff80_0000),
        ("mov.b16 %rs1, 0xfd01; cvt.f32.f16 %f1, %rs1; mov.b32 %r9, %f1;", 0x7fff_ffff),
        ("mov.f32 %f1, 0fFF800000; cvt.rn.f16.f32 %rs1, %f1; cvt.u32.u16 %r9, %rs1;", 0xfc00),
        ("mov.f32 %f1, 0f7FC00001; cvt.rn.f16.f32 %rs1, %f1; cvt.u32.u16 %r9, %rs1;", 0x7fff),
        // pairs: the first source into the high half
        ("cvt.rn.bf16x2.f32 %r9, 0f3F808000, 0f3F818000;", 0x3f80_3f82),
        ("cvt.rn.bf16x2.f32 %r9, 0f7F7FFFFF, 0fFFC00001;", 0x7f80_7fff),
        ("cvt.rn.bf16x2.f32 %r9, 0f00008000, 0f80018000;", 0x0000_8002),
        ("cvt.rn.f16x2.f32 %r9, 0f477FF000, 0f33C00000;", 0x7c00_0002),
        ("cvt.rn.f16x2.f32 %r9, 0fBF800000, 0f7F800001;", 0xbc00_7fff),
        // f32 arithmetic: IEEE, subnormals kept, NaN results canonical
        ("mov.f32 %f1, 0f7FC00001; mul.rn.f32 %f2, %f1, 0f3F800000; mov.b32 %r9, %f2;", 0x7fff_ffff),
        ("mov.f32 %f1, 0fFFC00000; add.rn.f32 %f2, %f1, 0f3F800000; mov.b32 %r9, %f2;", 0x7fff_ffff),
        ("mov.f32 %f1, 0f7F800001; sub.rn.f32 %f2, 0f3F800000, %f1; mov.b32 %r9, %f2;", 0x7fff_ffff),
        ("mov.f32 %f1, 0f7F800000; mul.rn.f32 %f2, %f1, 0f00000000; mov.b32 %r9, %f2;", 0x7fff_ffff),
        ("mov.f32 %f1, 0f00000001; add.rn.f32 %f2, %f1, %f1; mov.b32 %r9, %f2;", 2),
        ("mov.f32 %f1, 0f33000000; sub.rn.f32 %f2, 0f3F800000, %f1; mov.b32 %r9, %f2;", 0x3f80_0000),
        ("mov.f32 %f1, 0f3F800000; neg.f32 %f2, %f1; mov.b32 %r9, %f2;", 0xbf80_0000),
        ("mov.f32 %f1, 0fBF800000; abs.f32 %f2, %f1; mov.b32 %r9, %f2;", 0x3f80_0000),
        // comparisons: ordered ones false on NaN, unordered ones true
        ("mov.f32 %f1, 0f7FC00000; setp.lt.f32 %p1, %f1, 0f3F800000; selp.b32 %r9, 1, 0, %p1;", 0),
        ("mov.f32 %f1, 0f7FC00000; setp.ltu.f32 %p1, %f1, 0f3F800000; selp.b32 %r9, 1, 0, %p1;", 1),
        ("mov.f32 %f1, 0f7FC00000; setp.ne.f32 %p1, %f1, %f1; selp.b32 %r9, 1, 0, %p1;", 0),
        ("mov.f32 %f1, 0f7FC00000; setp.neu.f32 %p1, %f1, %f1; selp.b32 %r9, 1, 0, %p1;", 1),
        ("mov.f32 %f1, 0f7FC00000; setp.nan.f32 %p1, %f1, %f1; selp.b32 %r9, 1, 0, %p1;", 1),
        ("mov.f32 %f1, 0f3F800000; setp.num.f32 %p1, %f1, %f1; selp.b32 %r9, 1, 0, %p1;", 1),
        ("mov.b32 %r1, -1; setp.lt.s32 %p1, %r1, 1; selp.b32 %r9, 1, 0, %p1;", 1),
        ("mov.b32 %r1, -1; setp.lt.u32 %p1, %r1, 1; selp.b32 %r9, 1, 0, %p1;", 0),
        ("mov.b32 %r1, -1; setp.hi.u32 %p1, %r1, 1; selp.b32 %r9, 1, 0, %p1;", 1),
        ("mov.b16 %rs1, 0x8000; setp.lt.s16 %p1, %rs1, 0; selp.b32 %r9, 1, 0, %p1;", 1),
        ("mov.b64 %rd1, -1; setp.ge.u64 %p1, %rd1, 5; selp.b32 %r9, 7, 8, %p1;", 7),
        ("mov.b16 %rs1, 0x1234; setp.eq.b16 %p1, %rs1, 0x1234; selp.b32 %r9, 7, 8, %p1;", 7),
        ("mov.f32 %f1, 0f3F800000; setp.gt.f32 %p1, %f1, 0f00000000; selp.f32 %f2, %f1, 0f40000000, %p1; mov.b32 %r9, %f2;", 0x3f80_0000),
        // guards, predicate logic, packing
        ("mov.b32 %r9, 1; setp.eq.s32 %p1, %r9, 1; @%p1 mov.b32 %r9, 2; @!%p1 mov.b32 %r9, 3;", 2),
        ("setp.eq.s32 %p1, 1, 1; setp.eq.s32 %p2, 1, 2; and.pred %p3, %p1, %p2; or.pred %p4, %p1, %p2; selp.b32 %r1, 1, 0, %p3; selp.b32 %r2, 2, 0, %p4; or.b32 %r9, %r1, %r2;", 2),
        ("mov.b16 %rs1, 0x1111; mov.b16 %rs2, 0x2222; mov.b32 %r9, {%rs1, %rs2};", 0x2222_1111),
        ("mov.b32 %r1, 0xaaaabbbb; mov.b32 {%rs3, %rs4}, %r1; cvt.u32.u16 %r9, %rs4;", 0xaaaa),
        ("mov.b32 %r1, 0xaaaabbbb; { .reg .b16 tmp; mov.b32 {tmp, %rs4}, %r1; } cvt.u32.u16 %r9, %rs4;", 0xaaaa),
        ("mov.b64 %rd1, 0x1111222233334444; mov.b64 {%r1, %r2}, %rd1; mov.b32 %r9, %r2;", 0x1111_2222),
        ("mov.u32 %r9, %ntid.x;", 1),
        // a loop: a predicated backward branch
        ("mov.b32 %r9, 0; $L1: add.s32 %r9, %r9, 3; setp.lt.u32 %p1, %r9, 30; @%p1 bra $L1;", 30),
    ];
    for (body, want) in cases {
        let body = body.replace("$L1: ", "\n$L1:\n");
        let got = eval(&body);
        assert_eq!(got, *want, "`{body}`: got {got:#x}, want {want:#x}");
    }
}

/// Runs a launch of `t` over `threads` threads with an output of `out_len`
/// bytes; returns the error.
fn launch_err(globals: &str, body: &str, threads: u32, out_len: usize) -> String {
    let m = Module::parse(&module(globals, body)).unwrap();
    let mut mem = Memory::new(&m);
    let out = mem.alloc("out", out_len).unwrap();
    let c = LaunchConfig {
        grid: [1, 1, 1],
        block: [threads, 1, 1],
        params: &[out],
    };
    m.launch("t", &mut mem, &c).unwrap_err().to_string()
}

/// Each memory rule stops a launch that breaks it, with the kernel, thread,
/// instruction and address named; a launch that keeps them all passes.
#[test]
fn memory_checks_fail_where_they_should() {
    let table = ".global .align 4 .b8 TAB[8] = {1, 2, 3, 4, 5, 6, 7, 8};";
    // each thread writes its own 4 bytes: fine
    let ok = "mov.u32 %r1, %tid.x; mul.wide.u32 %rd1, %r1, 4; add.s64 %rd2, %rd0, %rd1; st.global.u32 [%rd2], %r1;";
    let m = Module::parse(&module("", ok)).unwrap();
    let mut mem = Memory::new(&m);
    let out = mem.alloc("out", 256).unwrap();
    let c = LaunchConfig {
        grid: [1, 1, 1],
        block: [64, 1, 1],
        params: &[out],
    };
    m.launch("t", &mut mem, &c).unwrap();
    let bytes = mem.read_host(out, 256).unwrap();
    assert_eq!(&bytes[4 * 63..], &63u32.to_le_bytes());

    let cases: &[(&str, &str, u32, usize, &[&str])] = &[
        // past the end of the buffer (into the gap after it)
        (
            "",
            "mov.b32 %r1, 0; st.global.u32 [%rd0+256], %r1;",
            1,
            256,
            &[
                "outside every allocation",
                "thread [0, 0, 0]",
                "st.global.u32 [%rd0+256]",
            ],
        ),
        // a 16-byte vector 4 bytes off 16
        (
            "",
            "mov.b32 %r1, 0; st.global.v4.u32 [%rd0+4], {%r1, %r1, %r1, %r1};",
            1,
            64,
            &["16-byte access", "not 16-byte aligned"],
        ),
        // reading output no one wrote
        (
            "",
            "ld.global.nc.u32 %r1, [%rd0+8];",
            1,
            64,
            &["never written", "buffer out"],
        ),
        // two threads writing the same bytes
        (
            "",
            "mov.u32 %r1, %tid.x; st.global.u32 [%rd0], %r1;",
            2,
            64,
            &["a race", "thread 0", "thread [1, 0, 0]"],
        ),
        // reading what another thread wrote
        (
            "",
            "mov.u32 %r1, %tid.x; setp.eq.u32 %p1, %r1, 0; @%p1 st.global.u32 [%rd0], %r1;\n\t\
             ld.global.u32 %r2, [%rd0]; mul.wide.u32 %rd1, %r1, 4; add.s64 %rd2, %rd0, %rd1; st.global.u32 [%rd2+4], %r2;",
            2,
            64,
            &["reads", "a race", "thread 0", "thread [1, 0, 0]"],
        ),
        // writing a table
        (
            table,
            "mov.u64 %rd1, TAB; mov.b32 %r1, 0; st.global.u32 [%rd1], %r1;",
            1,
            64,
            &["read-only table TAB"],
        ),
        // a 4-byte load 2 bytes into a table
        (
            table,
            "mov.u64 %rd1, TAB; ld.global.nc.u32 %r1, [%rd1+2];",
            1,
            64,
            &["4-byte access", "not 4-byte aligned"],
        ),
        // reading past a table's end
        (
            table,
            "mov.u64 %rd1, TAB; ld.global.nc.u8 %rs1, [%rd1+8];",
            1,
            64,
            &["outside every allocation"],
        ),
        // a loop that never ends
        ("", "$L9:\n\tbra.uni $L9;", 1, 64, &["hung"]),
        // a register no one wrote
        (
            "",
            "st.global.u32 [%rd0], %r3;",
            1,
            64,
            &["never wrote", "st.global.u32 [%rd0], %r3"],
        ),
        // a register only the thread before wrote: no value carries over
        (
            "",
            "mov.u32 %r1, %tid.x; setp.eq.u32 %p1, %r1, 0; @%p1 mov.b32 %r5, 7;\n\t\
             mul.wide.u32 %rd1, %r1, 4; add.s64 %rd2, %rd0, %rd1; st.global.u32 [%rd2], %r5;",
            2,
            64,
            &["never wrote", "thread [1, 0, 0]"],
        ),
    ];
    for (globals, body, threads, len, want) in cases {
        let e = launch_err(globals, body, *threads, *len);
        for w in *want {
            assert!(e.contains(w), "`{body}`: {e:?} lacks {w:?}");
        }
        assert!(
            e.contains("t: block [0, 0, 0]") && e.contains("PTX line"),
            "{e}"
        );
    }
    // reading a table inside it is fine, and sign-extends as `.s8` says
    let (mut mem, out, r) = run_one(
        &module(
            ".global .align 4 .b8 TAB[4] = {1, 2, 255, 4};",
            "mov.u64 %rd1, TAB; ld.global.nc.s8 %rs1, [%rd1+2]; cvt.s32.s16 %r1, %rs1; st.global.u32 [%rd0], %r1;",
        ),
        4,
    );
    r.unwrap();
    assert_eq!(mem.read_host(out, 4).unwrap(), &[0xff; 4]);
    // bytes a launch left unwritten are an error when copied back
    let (mut mem, out, r) = run_one(&module("", ""), 8);
    r.unwrap();
    let e = mem.read_host(out, 8).unwrap_err();
    assert!(e.contains("never written"), "{e}");
}

/// A form the interpreter does not implement, and anything with shared
/// memory, barriers, warp-level or atomic operations, is refused at load,
/// naming the kernel, the line and the form.
#[test]
fn unsupported_forms_are_refused_at_load() {
    for (body, form) in [
        ("bar.sync 0;", "bar.sync"),
        ("atom.global.add.u32 %r1, [%rd0], 1;", "atom.global.add.u32"),
        (
            "shfl.sync.bfly.b32 %r1, %r2, 1, 31, -1;",
            "shfl.sync.bfly.b32",
        ),
        ("ld.shared.u32 %r1, [%rd0];", "ld.shared.u32"),
        ("st.local.u32 [%rd0], %r1;", "st.local.u32"),
        // without .rn, ptxas may fuse a multiply and an add
        ("mul.f32 %f1, %f2, %f3;", "mul.f32"),
        ("fma.rn.f32 %f1, %f2, %f3, %f4;", "fma.rn.f32"),
        ("cvt.rzi.s32.f32 %r1, %f1;", "cvt.rzi.s32.f32"),
        ("cvt.sat.u8.s32 %rs1, %r1;", "cvt.sat.u8.s32"),
        ("prmt.b32.f4e %r1, %r2, %r3, %r4;", "prmt.b32.f4e"),
        ("vote.sync.all.pred %p1, %p2, -1;", "vote.sync.all.pred"),
        ("call foo;", "call"),
        ("mov.u32 %r1, %laneid;", "%laneid"),
        // wider than the 16 bytes a thread may access at once
        (
            "ld.global.nc.v4.u64 {%rd1, %rd2, %rd3, %rd4}, [%rd0];",
            "ld.global.nc.v4.u64",
        ),
    ] {
        let e = Module::parse(&module("", body)).unwrap_err();
        assert!(
            e.contains("PTX kernel t, line") && e.contains(form),
            "`{body}`: {e}"
        );
    }
    // malformed text is an error, never a panic
    let many = vec!["%r1"; 258].join(", ");
    for (body, want) in [
        ("add. %r1, %r2, %r3;".to_string(), "add."),
        ("add.\u{e9} %r1, %r2, %r3;".to_string(), "add."),
        (format!("mov.b32 {{{many}}}, %r2;"), "mov.b32"),
        (format!("mov.b64 %rd1, {{{many}}};"), "mov.b64"),
        ("mov.b32 %r1, 010;".to_string(), "010"),
        ("mov.b32 %r1, 0x10UU;".to_string(), "0x10UU"),
        ("selp.b32 %r1, 1, 2, %r3;".to_string(), "not a predicate"),
        ("$L1:\n$L1:".to_string(), "defined twice"),
    ] {
        let body = body.replace("$L1:\n", "\n$L1:\n");
        let e = Module::parse(&module("", &body)).unwrap_err();
        assert!(e.contains(want), "`{body}`: {e}");
    }
    for align in ["18446744073709551615", "3", "1099511627776"] {
        let e = Module::parse(&module(
            &format!(".global .align {align} .b8 T[1] = {{1}};"),
            "",
        ))
        .unwrap_err();
        assert!(e.contains("alignment"), "{e}");
    }
    let e = Module::parse(&module("", ".shared .align 4 .b8 s[16];")).unwrap_err();
    assert!(e.contains(".shared"), "{e}");
    let e = Module::parse(&module(".shared .align 4 .b8 s[16];", "")).unwrap_err();
    assert!(e.contains(".shared"), "{e}");
}

/// Launch shapes and parameters are checked as the driver checks them.
#[test]
fn launch_configurations_are_checked() {
    let m = Module::parse(&module("", "")).unwrap();
    let mut mem = Memory::new(&m);
    let out = mem.alloc("out", 4).unwrap();
    for (grid, block, params, want) in [
        (
            [1, 1, 1],
            [65, 1, 1],
            vec![out],
            "more than the kernel's 64",
        ),
        (
            [1, 65536, 1],
            [1, 1, 1],
            vec![out],
            "past the device's limits",
        ),
        ([0, 1, 1], [1, 1, 1], vec![out], "dimension is 0"),
        ([1, 1, 1], [1, 1, 1], vec![], "0 parameters given"),
        ([1, 1, 1], [1, 1, 1], vec![out, 1], "2 parameters given"),
    ] {
        let c = LaunchConfig {
            grid,
            block,
            params: &params,
        };
        let e = m.launch("t", &mut mem, &c).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    let c = LaunchConfig {
        grid: [1; 3],
        block: [1; 3],
        params: &[out],
    };
    let e = m.launch("nope", &mut mem, &c).unwrap_err().to_string();
    assert!(e.contains("CUDA_ERROR_NOT_FOUND"), "{e}");
    // `.reqntid` is a shape every launch must have, not only a maximum
    let text = module("", "").replace(".maxntid 64, 1, 1", ".reqntid 32, 2");
    let m = Module::parse(&text).unwrap();
    for (block, ok) in [([32, 2, 1], true), ([64, 1, 1], false), ([32, 1, 1], false)] {
        let c = LaunchConfig {
            grid: [1; 3],
            block,
            params: &[out],
        };
        match m.launch("t", &mut mem, &c) {
            Ok(()) => assert!(ok, "{block:?} ran"),
            Err(e) => assert!(!ok && e.to_string().contains("requires [32, 2, 1]"), "{e}"),
        }
    }
}

/// `convert --device ptx` writes what `--device cpu` writes, and `verify
/// --device ptx` (and `ptx<arch>` for every built target) finds every tensor
/// bit-identical; an architecture the build lacks is a clear error.
#[test]
fn the_command_line_runs_the_ptx() {
    let targets = targets("the_command_line_runs_the_ptx");
    if targets.is_empty() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_gguf-dequant");
    let dir = TempDir::new("ptx-cli");
    let input = fixture("real-weights.gguf");
    let convert = |device: &str, out: &std::path::Path| {
        let o = std::process::Command::new(bin)
            .args(["convert", "--dtype", "bf16", "--device", device, "-o"])
            .arg(out)
            .arg(&input)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{device}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read(out).unwrap()
    };
    let cpu = convert("cpu", &dir.join("cpu.safetensors"));
    assert_eq!(convert("ptx", &dir.join("ptx.safetensors")), cpu);
    for arch in targets {
        let o = std::process::Command::new(bin)
            .args([
                "verify",
                "--device",
                &format!("ptx{arch}"),
                "--dtype",
                "f16",
            ])
            .arg(&input)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && text.contains("all 28 tensors bit-identical"),
            "{text}"
        );
    }
    let o = std::process::Command::new(bin)
        .args(["verify", "--device", "ptx75"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no PTX for compute_75"));
}

/// The performance model counts what a warp does: a store of 4 bytes a
/// thread at consecutive addresses touches 4 sectors a warp, the same
/// store at a 64-byte stride 32; a 16-byte vector a thread, 16 sectors;
/// warps split at the block's edge (a block of 48 threads is warps of 32 and
/// 16); instructions are counted once a warp, by class.
#[test]
fn the_model_counts_sectors_and_warp_instructions() {
    use gguf_dequant::ptx::model::{profile, Class};
    let run = |body: &str, threads: u32, len: usize| {
        let m = Module::parse(&module("", body)).unwrap();
        let mut mem = Memory::new(&m);
        let out = mem.alloc("out", len).unwrap();
        let c = LaunchConfig {
            grid: [2, 1, 1],
            block: [threads, 1, 1],
            params: &[out],
        };
        profile(&m, "t", &mut mem, &c).unwrap()
    };
    let index = "mov.u32 %r1, %tid.x; mov.u32 %r2, %ctaid.x; mov.u32 %r3, %ntid.x; mad.lo.s32 %r4, %r2, %r3, %r1;";
    let dense = run(&format!("{index} mul.wide.u32 %rd1, %r4, 4; add.s64 %rd2, %rd0, %rd1; st.global.u32 [%rd2], %r4;"), 64, 512);
    // 2 blocks x 2 warps, each one store of 128 bytes: 4 sectors
    assert_eq!(dense.l1_sectors, 4 * 4);
    assert_eq!(dense.dram_bytes, 512);
    assert_eq!(dense.warp_insts[&Class::Store], 4);
    // per warp: ld.param; 3 movs (renames, not costed); mad.lo and
    // mul.wide (IMADs, on the FMA pipe); add.s64; st; ret
    assert_eq!(dense.warp_insts[&Class::Load], 4);
    assert_eq!(dense.warp_insts[&Class::Rename], 4 * 3);
    assert_eq!(dense.warp_insts[&Class::IntMul], 4 * 2);
    assert_eq!(dense.warp_insts[&Class::Int64], 4);
    assert_eq!(dense.warp_insts.get(&Class::Int), None);
    assert_eq!(dense.warp_insts[&Class::Branch], 4);
    let strided = run(&format!("{index} mul.wide.u32 %rd1, %r4, 64; add.s64 %rd2, %rd0, %rd1; st.global.u32 [%rd2], %r4;"), 64, 8192);
    assert_eq!(strided.l1_sectors, 4 * 32);
    assert_eq!(strided.dram_bytes, 128 * 32);
    let vector = run(&format!("{index} mul.wide.u32 %rd1, %r4, 16; add.s64 %rd2, %rd0, %rd1; st.global.v4.u32 [%rd2], {{%r4, %r4, %r4, %r4}};"), 64, 2048);
    assert_eq!(vector.l1_sectors, 4 * 16);
    // 48 threads a block: warps of 32 and 16 threads, 4 + 2 sectors a block
    let ragged = run(&format!("{index} mul.wide.u32 %rd1, %r4, 4; add.s64 %rd2, %rd0, %rd1; st.global.u32 [%rd2], %r4;"), 48, 384);
    assert_eq!(ragged.l1_sectors, 2 * (4 + 2));
    assert_eq!(ragged.warp_insts[&Class::Store], 4);
    // a branch only some threads take: its instructions count once a warp
    let diverged = run(&format!("{index} setp.lt.u32 %p1, %r1, 5; @%p1 bra $L2;\n\tadd.s32 %r5, %r4, 1;\n$L2:\n\tmul.wide.u32 %rd1, %r4, 4; add.s64 %rd2, %rd0, %rd1; st.global.u32 [%rd2], %r4;"), 64, 512);
    // setp in every warp, and the add in every warp (each has a thread
    // that does not branch)
    assert_eq!(diverged.warp_insts[&Class::Int], 4 * 2);
}

/// A body whose last statement is a label (a branch there ends the thread)
/// or an instruction that is not `ret` (the thread ends after it) runs to
/// its end and no further.
#[test]
fn a_body_ends_at_its_end() {
    for tail in [
        "bra.uni $LEND;\n\tst.global.u32 [%rd0], %r1;\n$LEND:",
        "mov.b32 %r1, 5;",
    ] {
        let text = module("", "").replace("\tret;\n}", &format!("\tmov.b32 %r1, 7;\n\t{tail}\n}}"));
        assert!(text.ends_with(&format!("{tail}\n}}\n")), "{text}");
        let (mut mem, out, r) = run_one(&text, 4);
        r.unwrap();
        assert!(
            mem.read_host(out, 4).is_err(),
            "the store after the branch ran"
        );
    }
}

/// Every rounding case of f32 to f16 and bf16 (ties, overflow, subnormal
/// results, NaN payloads: `rounding_patterns`) through the f32 kernels'
/// 16-bit outputs, the pairs converted by one `cvt.rn.{f16,bf16}x2.f32`:
/// `half`'s values to the bit, and a NaN wherever `half` gives one.
#[test]
fn output_rounding_matches_half() {
    let bits = rounding_patterns();
    let src: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
    let values: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
    for arch in targets("output_rounding_matches_half") {
        let mut h = vec![f16::ZERO; values.len()];
        ptx::dequantize(arch, GgmlType::F32, &src, &mut h).unwrap();
        let want: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
        assert_same_values(&format!("sm_{arch} f32 patterns -> f16"), &h, &want);
        let mut b = vec![bf16::ZERO; values.len()];
        ptx::dequantize(arch, GgmlType::F32, &src, &mut b).unwrap();
        let want: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
        assert_same_values(&format!("sm_{arch} f32 patterns -> bf16"), &b, &want);
        println!(
            "sm_{arch}: {} f32 patterns rounded as half rounds them",
            values.len()
        );
    }
}
