//! The fastest of many decodes, for comparing two builds of this crate on a
//! shared, noisy machine: for each type named, decodes 16 Mi elements of
//! random valid blocks into the output type at the best level on one thread,
//! 15 times, beside the fill limit (`cpu::fill_limit`), and prints the
//! fastest of each in Melem/s. The fastest run is the one least disturbed by
//! other guests; build the example at both commits and run the two binaries
//! alternately, several rounds, comparing their rates type by type.
//!
//!     cargo run --release --example best_of -- bf16 iq2_xxs q4_K
//!
//! Prints `type dtype decode_melem_per_s fill_melem_per_s`, a line per type.

use std::time::Instant;

use gguf_dequant::cpu::{self, Level, OutElem};
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::{GgmlType, OutType};
use half::{bf16, f16};

const ELEMS: usize = 16 << 20;
const RUNS: usize = 15;

/// The fastest decode and fill of `src` (`n` values of `ty`), Melem/s.
fn fastest<O: OutElem>(ty: GgmlType, src: &[u8], n: usize) -> (f64, f64) {
    let (mut out, mut fill) = (vec![O::default(); n], vec![O::default(); n]);
    let level = Level::best();
    let (mut decode_s, mut fill_s) = (f64::MAX, f64::MAX);
    for _ in 0..RUNS {
        let t = Instant::now();
        cpu::dequantize_with(level, true, ty, src, &mut out).expect("decoding");
        decode_s = decode_s.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        cpu::fill_limit(level, true, ty, src, &mut fill).expect("the fill");
        fill_s = fill_s.min(t.elapsed().as_secs_f64());
    }
    (n as f64 / decode_s / 1e6, n as f64 / fill_s / 1e6)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: best_of f32|f16|bf16 TYPE [TYPE ...]";
    let Some(dtype) = args.next().and_then(|s| OutType::from_name(&s)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    for name in args {
        let Some(ty) = GgmlType::from_name(&name) else {
            eprintln!("unknown type '{name}'; {usage}");
            std::process::exit(2);
        };
        let blocks = ELEMS / ty.block_elems();
        let src = random_blocks(ty, blocks, &mut Rng(7));
        let n = blocks * ty.block_elems();
        let (decode, fill) = pool.install(|| match dtype {
            OutType::F32 => fastest::<f32>(ty, &src, n),
            OutType::F16 => fastest::<f16>(ty, &src, n),
            OutType::BF16 => fastest::<bf16>(ty, &src, n),
        });
        println!("{name} {} {decode:.0} {fill:.0}", dtype.name());
    }
}
