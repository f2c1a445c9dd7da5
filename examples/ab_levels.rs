//! Same-process A/B of the CPU fast path's instruction-set levels: for each
//! type named, decodes 64 Mi elements of random valid blocks to f32 on one
//! thread at each available SIMD level in turn, between copies of the same
//! size, and prints each level's rate as a ratio to the copy, and their ratio.
//! Interleaving the levels in one process is what makes small differences
//! visible on a shared, noisy machine, where separate `bench` runs differ by
//! more than the levels do.
//!
//!     cargo run --release --example ab_levels -- q4_K iq2_xxs f32
//!
//! `ALIGN=1` puts the output on a 64-byte boundary instead of where a `Vec`
//! puts it (16 bytes past one, with glibc).

use std::time::Instant;

use gguf_dequant::cpu::{self, Level};
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::GgmlType;

const ELEMS: usize = 64 << 20;
const ROUNDS: usize = 7;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    let levels: Vec<Level> = Level::available()
        .into_iter()
        .filter(|&l| l != Level::Scalar)
        .collect();
    if levels.is_empty() {
        eprintln!("this CPU has no SIMD level to compare (only the scalar decoders)");
        std::process::exit(2);
    }
    let align = std::env::var_os("ALIGN").is_some();
    for name in std::env::args().skip(1) {
        let Some(ty) = GgmlType::from_name(&name) else {
            eprintln!("unknown type '{name}'");
            std::process::exit(2);
        };
        let src = random_blocks(ty, ELEMS / ty.block_elems(), &mut Rng(1));
        let n = src.len() / ty.block_bytes() * ty.block_elems();
        let mut buf = vec![0f32; n + 16];
        let start = if align {
            buf.as_ptr().align_offset(64)
        } else {
            0
        };
        let out = &mut buf[start..start + n];
        let (from, mut to) = (vec![1f32; n], vec![0f32; n]);
        let mut times = vec![Vec::new(); levels.len() + 1];
        // the first round warms everything up and is not counted
        for round in 0..=ROUNDS {
            let t = Instant::now();
            for (a, b) in to.chunks_mut(1 << 16).zip(from.chunks(1 << 16)) {
                a.copy_from_slice(b);
            }
            std::hint::black_box(&mut to);
            let copy = t.elapsed().as_secs_f64();
            if round > 0 {
                times[levels.len()].push(copy);
            }
            for (i, &level) in levels.iter().enumerate() {
                let t = Instant::now();
                pool.install(|| cpu::dequantize_with(level, true, ty, &src, out))
                    .expect("decoding");
                if round > 0 {
                    times[i].push(t.elapsed().as_secs_f64());
                }
            }
        }
        let med: Vec<f64> = times.into_iter().map(median).collect();
        let copy = med[levels.len()];
        let cells: Vec<String> = levels
            .iter()
            .zip(&med)
            .map(|(l, t)| format!("{} {:.2}x copy", l.name(), copy / t))
            .collect();
        let last = levels.len() - 1;
        println!(
            "{name:8} {}  (last / first level: {:.2})",
            cells.join("  "),
            med[0] / med[last]
        );
    }
}
