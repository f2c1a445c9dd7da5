// The one list of formats. Everything keyed by format follows from it:
//
// - the CPU reference: `src/cpu/<file>.rs` defines `pub struct <Type>`
//   implementing `cpu::Format` (the module declarations and the decoder
//   table come from here);
// - the SIMD kernels: `src/cpu/fast/<file>.rs` implements the fast path's
//   `Simd` trait for the same struct (a format without one does not compile);
// - the CUDA kernels: `cuda/<file>.cu` defines `struct <name>` whose
//   `GDQ_KERNELS(<name>)` gives `gdq_<name>_{f32,f16,bf16}`; build.rs writes
//   the dispatch table (`formats.def`) and the translation unit (`all.cu`)
//   from this list, checks that each kernel splits a block among the threads
//   said here, and that the compiled image holds exactly the kernels named here;
// - the tests, which run once per format (`for_each_format!(their_macro)`).
//
// Adding a format: a row here, its id and geometry in `src/types.rs`, its
// layout in `cuda/blocks.h`, the three files above, and its scale fields in
// `src/synth.rs` (what must be finite for random blocks to be valid).
//
// Each row: `Type => name: parts`, where `Type` is the `GgmlType` variant,
// `name` the CUDA struct and kernel name, and `parts` the number of GPU
// threads that decode one block (each writes `block elements / parts`
// values). The plain types' kernels take 8 elements a thread
// (`PLAIN_VALS`), and a one-element "tail" kernel (`/ name`) finishes
// what is not a whole group of 8 or not 16-byte aligned.
//
// build.rs `include!`s this file, so it holds only the macro and constants.

/// Calls `$then! { file { Type => name: parts [/ tail], ... } ... }` with
/// the list of every format this crate decodes, grouped by the file that
/// implements them (see `src/formats.rs`).
#[doc(hidden)]
#[macro_export]
macro_rules! for_each_format {
    ($then:ident) => {
        $then! {
            plain { F32 => f32: 1 / f32_tail, F16 => f16: 1 / f16_tail, BF16 => bf16: 1 / bf16_tail }
            q4_0 { Q4_0 => q4_0: 4 }
            q4_1 { Q4_1 => q4_1: 4 }
            q5_0 { Q5_0 => q5_0: 4 }
            q5_1 { Q5_1 => q5_1: 4 }
            q8_0 { Q8_0 => q8_0: 4 }
            q1_0 { Q1_0 => q1_0: 8 }
            q2_0 { Q2_0 => q2_0: 4 }
            q2_k { Q2_K => q2_k: 16 }
            q3_k { Q3_K => q3_k: 16 }
            q4_k { Q4_K => q4_k: 16 }
            q5_k { Q5_K => q5_k: 16 }
            q6_k { Q6_K => q6_k: 16 }
            iq2_xxs { IQ2_XXS => iq2_xxs: 16 }
            iq2_xs { IQ2_XS => iq2_xs: 32 }
            iq2_s { IQ2_S => iq2_s: 32 }
            iq3_xxs { IQ3_XXS => iq3_xxs: 32 }
            iq3_s { IQ3_S => iq3_s: 16 }
            iq1_s { IQ1_S => iq1_s: 32 }
            iq1_m { IQ1_M => iq1_m: 32 }
            iq4_nl { IQ4_NL => iq4_nl: 4 }
            iq4_xs { IQ4_XS => iq4_xs: 16 }
            tq1_0 { TQ1_0 => tq1_0: 16 }
            tq2_0 { TQ2_0 => tq2_0: 16 }
            mxfp4 { MXFP4 => mxfp4: 4 }
            nvfp4 { NVFP4 => nvfp4: 4 }
        }
    };
}

/// Threads per CUDA block of every decode kernel (`GDQ_THREADS` on the C side).
pub const THREADS_PER_BLOCK: u32 = 256;

/// Elements each thread of the plain types' main kernels decodes
/// (`GDQ_PLAIN_VALS` on the C side): 8 f32 are two 16-byte loads, 8 f16/bf16
/// one, and 8 outputs one or two 16-byte stores.
pub const PLAIN_VALS: u32 = 8;
