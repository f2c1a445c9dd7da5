//! Criterion benches of decoding: per type, the CPU fast path on one thread and
//! on all of them, the GPU when there is one (skipped when `Gpu::new(0)` fails),
//! and, with `--features peers`, candle-core and anamnesis on the same inputs
//! and threads.
//!
//! `cargo bench --bench decode [-- FILTER]`; `GDQ_BENCH_ELEMS` sets the elements
//! per type (default 16 Mi: an f32 output of 64 MiB, beyond the caches of most
//! machines). For figures against a copy reference and in JSON, prefer
//! `gguf-dequant bench`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
#[cfg(feature = "cuda")]
use gguf_dequant::gpu::Gpu;
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::{cpu, GgmlType};

#[cfg(feature = "peers")]
use gguf_dequant::peers;

fn elems() -> usize {
    std::env::var("GDQ_BENCH_ELEMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16 << 20)
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
}

fn decode(c: &mut Criterion) {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pools = [("1t".to_string(), pool(1)), (format!("{all}t"), pool(all))];
    #[cfg(feature = "cuda")]
    let gpu = Gpu::new(0).ok();
    let mut rng = Rng(0xc0de);
    for ty in GgmlType::dequantizable() {
        let n = elems() / ty.block_elems() * ty.block_elems();
        let src = random_blocks(ty, n / ty.block_elems(), &mut rng);
        let mut out = vec![0f32; n];
        let mut g = c.benchmark_group(format!("decode/{}", ty.name()));
        g.throughput(Throughput::Elements(n as u64));
        g.sample_size(10);
        for (name, pool) in &pools {
            g.bench_function(BenchmarkId::new("gguf-dequant", name), |b| {
                b.iter(|| pool.install(|| cpu::dequantize(ty, &src, &mut out).unwrap()))
            });
            #[cfg(feature = "peers")]
            for peer in peers::PEERS {
                if let Some(f) = peer.decoder::<f32>(ty) {
                    g.bench_function(BenchmarkId::new(peer.name, name), |b| {
                        b.iter(|| pool.install(|| f(&src, &mut out)))
                    });
                }
            }
        }
        #[cfg(feature = "cuda")]
        if let Some(gpu) = &gpu {
            let dev_src = gpu.stream().clone_htod(&src).unwrap();
            let mut dev_out = gpu.stream().alloc_zeros::<f32>(n).unwrap();
            g.bench_function("gpu", |b| {
                b.iter(|| {
                    gpu.dequantize(ty, &dev_src.as_view(), &mut dev_out.as_view_mut())
                        .unwrap();
                    gpu.synchronize().unwrap();
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
