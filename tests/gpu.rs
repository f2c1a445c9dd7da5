#![cfg(feature = "cuda")]
//! The GPU suite: every type and output type on a real device against the CPU
//! reference. Where there is no GPU (or the build has no kernels) each test
//! prints a SKIPPED line and passes, so that `cargo test` passes everywhere
//! (the host-emulated suite covers the kernel source there), unless
//! `GDQ_REQUIRE_GPU=1` is set: then a missing GPU fails every test, so that
//! a run meant to prove the GPU path cannot pass by skipping it.
//!
//! scripts/fake-gpu.sh runs it against fakecuda, the workspace's software
//! CUDA driver (kernels interpreted): the device names say so, and what needs
//! a real GPU's memory or speed runs scaled down there, saying so.

mod common;

use common::*;
use gguf_dequant::gguf::{GgufFile, GgufWriter};
use gguf_dequant::gpu::Gpu;
use gguf_dequant::synth::{random_blocks, Rng as SynthRng};
use gguf_dequant::OutElem;
use gguf_dequant::{cpu, CudaErrorKind, Error, GgmlType};
use half::{bf16, f16};

fn gpu(test: &str) -> Option<Gpu> {
    match Gpu::new(0) {
        Ok(g) => Some(g),
        Err(e) if std::env::var_os("GDQ_REQUIRE_GPU").is_some_and(|v| v == "1") => {
            panic!("{test}: GDQ_REQUIRE_GPU=1 and no usable GPU: {e}")
        }
        Err(e) => {
            println!("SKIPPED {test}: {e}");
            None
        }
    }
}

fn check_random<O: OutElem + Bits>(g: &Gpu, ty: GgmlType, n_blocks: usize, seed: u64) {
    let src = random_blocks(ty, n_blocks, &mut SynthRng(seed));
    let n = n_blocks * ty.block_elems();
    let mut want = vec![O::default(); n];
    cpu::dequantize_reference(ty, &src, &mut want).unwrap();
    let mut got = vec![O::from_f32(f32::NAN); n];
    g.dequantize_host(ty, &src, &mut got).unwrap();
    assert_bits_eq(
        &format!("{ty} -> {:?}, {n_blocks} blocks", O::OUT),
        &got,
        &want,
    );
}

#[test]
fn every_type_and_output_matches_the_reference_on_random_blocks() {
    let Some(g) = gpu("random blocks") else {
        return;
    };
    let mut seed = 1;
    for ty in GgmlType::dequantizable() {
        // One block; a few; enough to fill many thread blocks but not the last.
        for n_blocks in [1, 7, 4099] {
            seed += 1;
            check_random::<f32>(&g, ty, n_blocks, seed);
            check_random::<f16>(&g, ty, n_blocks, seed);
            check_random::<bf16>(&g, ty, n_blocks, seed);
        }
    }
}

#[test]
fn real_weights_match_ggml() {
    let Some(g) = gpu("real weights") else { return };
    for t in real_tensors() {
        let mut got = vec![f32::NAN; t.expected.len()];
        g.dequantize_host(t.ty, &t.quant, &mut got).unwrap();
        assert_bits_eq(&format!("{} gpu f32", t.name), &got, &t.expected);
        let mut got16 = vec![f16::NAN; t.expected.len()];
        g.dequantize_host(t.ty, &t.quant, &mut got16).unwrap();
        assert_bits_eq(&format!("{} gpu f16", t.name), &got16, &to_f16(&t.expected));
        let mut gotb = vec![bf16::NAN; t.expected.len()];
        g.dequantize_host(t.ty, &t.quant, &mut gotb).unwrap();
        assert_bits_eq(
            &format!("{} gpu bf16", t.name),
            &gotb,
            &to_bf16(&t.expected),
        );
    }
}

/// Tensors at odd offsets of a mapped file decode right through the host
/// entry point (`dequantize_host`). What this proves is the host side: the
/// bytes are copied into a fresh device allocation, which is aligned, so no
/// kernel here sees an odd address (misaligned device views are refused by
/// `Gpu::dequantize`'s alignment check instead).
#[test]
fn tensors_at_unaligned_offsets_in_a_mapped_file() {
    let Some(g) = gpu("unaligned offsets") else {
        return;
    };
    let mut w = GgufWriter::new();
    w.add_kv("general.alignment", gguf_dequant::gguf::Value::U32(1))
        .unwrap();
    let mut rng = SynthRng(99);
    // An i8 tensor of three elements first pushes every later tensor off alignment.
    w.add_tensor("pad", GgmlType::I8, &[3], vec![1, 2, 3])
        .unwrap();
    for ty in GgmlType::dequantizable() {
        let ne = [ty.block_elems() as u64 * 3, 2];
        w.add_tensor(
            format!("t.{}", ty.name()),
            ty,
            &ne,
            random_blocks(ty, 6, &mut rng),
        )
        .unwrap();
    }
    let path = std::env::temp_dir().join(format!("gdq-unaligned-{}.gguf", std::process::id()));
    std::fs::write(&path, w.to_bytes()).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let mut odd = 0;
    for t in file.tensors().iter().filter(|t| t.ty.is_dequantizable()) {
        odd += usize::from(t.offset % 2 == 1);
        let src = file.tensor_data(t).unwrap();
        let want: Vec<f32> = cpu::dequantize_to_vec(t.ty, src).unwrap();
        let mut got = vec![f32::NAN; want.len()];
        g.dequantize_host(t.ty, src, &mut got).unwrap();
        assert_bits_eq(&t.name, &got, &want);
    }
    std::fs::remove_file(&path).ok();
    assert!(odd > 0, "the file should hold tensors at odd offsets");
}

/// Whether the driver is fakecuda, the software one (scripts/fake-gpu.sh):
/// its device names say so.
fn software_driver(g: &Gpu) -> bool {
    g.name().contains("SOFTWARE CUDA driver")
}

/// A tensor of more than 2^31 elements: 64-bit indexing in the kernels. Checked
/// at the blocks around 2^31 and at the end against the CPU reference.
///
/// Under the software driver (kernels interpreted, device memory in host
/// memory) it runs scaled down, and says so: the same launch sequence over
/// 2^19 elements, which proves the host side but not 64-bit indexing.
#[test]
fn a_tensor_past_two_to_the_31_elements() {
    let Some(g) = gpu("2^31 elements") else {
        return;
    };
    let ty = GgmlType::Q4_0;
    let middle = if software_driver(&g) {
        println!(
            "SCALED DOWN under the software CUDA driver: 2^19 elements, not 2^31 \
             (64-bit indexing in the kernels is for a GPU to prove)"
        );
        (1usize << 19) / 32
    } else {
        (1usize << 31) / 32
    };
    let n_blocks = middle + 4096;
    let src = random_blocks(ty, n_blocks, &mut SynthRng(5));
    let dev_src = g.stream().clone_htod(&src).unwrap();
    let n = n_blocks * 32;
    let mut dev_out = g.stream().alloc_zeros::<bf16>(n).unwrap();
    g.dequantize(ty, &dev_src.as_view(), &mut dev_out.as_view_mut())
        .unwrap();
    g.synchronize().unwrap();
    for first_block in [0usize, middle - 64, n_blocks - 64] {
        let range = first_block * 32..(first_block + 64) * 32;
        let mut got = vec![bf16::ZERO; range.len()];
        g.stream()
            .memcpy_dtoh(&dev_out.slice(range.clone()), &mut got)
            .unwrap();
        g.synchronize().unwrap();
        let mut want = vec![bf16::ZERO; range.len()];
        cpu::dequantize_reference(
            ty,
            &src[first_block * 18..(first_block + 64) * 18],
            &mut want,
        )
        .unwrap();
        assert_bits_eq(&format!("blocks from {first_block}"), &got, &want);
    }
}

#[test]
fn bad_lengths_are_errors_before_launch() {
    let Some(g) = gpu("bad lengths") else { return };
    let src = g.stream().clone_htod(&[0u8; 19]).unwrap();
    let mut dst = g.stream().alloc_zeros::<f32>(32).unwrap();
    assert!(g
        .dequantize(GgmlType::Q4_0, &src.as_view(), &mut dst.as_view_mut())
        .is_err());
    let src = g.stream().clone_htod(&[0u8; 36]).unwrap();
    let mut dst = g.stream().alloc_zeros::<f32>(32).unwrap();
    assert!(g
        .dequantize(GgmlType::Q4_0, &src.as_view(), &mut dst.as_view_mut())
        .is_err());
    assert!(g
        .dequantize(GgmlType::Q8_K, &src.as_view(), &mut dst.as_view_mut())
        .is_err());
}

#[test]
fn no_gpu_is_an_error_not_a_panic() {
    // Holds everywhere: with a GPU this opens a device number that does not exist.
    let err = Gpu::new(1 << 20).err().expect("device 2^20 must not open");
    assert!(err.to_string().contains("CUDA"), "{err}");
    let Error::Cuda(c) = &err else {
        panic!("not a CUDA error: {err:?}")
    };
    assert!(
        matches!(
            c.kind(),
            CudaErrorKind::NoDriver | CudaErrorKind::NoDevice | CudaErrorKind::NoKernels
        ),
        "{err:?}"
    );
}

/// With a GPU, an ordinal past the device count is `NoDevice`, saying how
/// many there are.
#[test]
fn an_ordinal_past_the_device_count_is_no_device() {
    let Some(_g) = gpu("no such device") else {
        return;
    };
    let count = gguf_dequant::gpu::device_count().unwrap();
    let err = Gpu::new(count)
        .err()
        .expect("one past the last device must not open");
    let Error::Cuda(c) = &err else {
        panic!("not a CUDA error: {err:?}")
    };
    assert_eq!(c.kind(), CudaErrorKind::NoDevice, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("this machine has {count}")),
        "{err}"
    );
}

/// An allocation larger than any device's memory (4 TiB; fakecuda presents
/// an H200's 140 GiB) is the driver's own `CUDA_ERROR_OUT_OF_MEMORY`: an error
/// of kind `OutOfMemory` whose source is the driver's error, after which the
/// device still decodes.
#[test]
fn out_of_device_memory_is_its_own_kind() {
    use cudarc::driver::{sys, DriverError};
    use gguf_dequant::pipeline::Device;
    let Some(g) = gpu("out of memory") else {
        return;
    };
    let err = Device::alloc_out::<f32>(&g, g.stream(), 1 << 40)
        .expect_err("4 TiB of device memory must be refused");
    let Error::Cuda(c) = &err else {
        panic!("not a CUDA error: {err:?}")
    };
    assert_eq!(c.kind(), CudaErrorKind::OutOfMemory, "{err}");
    assert_eq!(
        c.code(),
        Some(sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY as u32),
        "{err}"
    );
    assert!(c.context().starts_with("allocating"), "{err}");
    let message = err.to_string();
    assert!(message.starts_with("CUDA: allocating "), "{message}");
    assert!(message.contains("CUDA_ERROR_OUT_OF_MEMORY"), "{message}");
    let source = std::error::Error::source(&err).expect("the driver's error as the source");
    let driver = source
        .downcast_ref::<DriverError>()
        .expect("the source is cudarc's DriverError");
    assert_eq!(driver.0, sys::CUresult::CUDA_ERROR_OUT_OF_MEMORY);
    // out of memory is not sticky: the context still works
    check_random::<f32>(&g, GgmlType::Q4_0, 7, 3);
}

/// Tensors with a zero in their shape, through the load pipeline and the
/// host entry point: empty outputs (`cuMemAlloc` refuses zero bytes), the
/// tensors around them decoded.
#[test]
fn empty_tensors_through_the_pipeline() {
    use gguf_dequant::pipeline::LoadOptions;
    let Some(loader) = gpu("empty tensors").map(|g| g.loader(&LoadOptions::default()).unwrap())
    else {
        return;
    };
    let g = loader.device();
    let mut w = GgufWriter::new();
    let mut rng = SynthRng(9);
    let q4k = GgmlType::Q4_K;
    w.add_tensor("before", q4k, &[512, 3], random_blocks(q4k, 6, &mut rng))
        .unwrap();
    w.add_tensor("empty.rows", q4k, &[256, 0], Vec::new())
        .unwrap();
    w.add_tensor("empty.cols", q4k, &[0, 7], Vec::new())
        .unwrap();
    w.add_tensor("after", q4k, &[256], random_blocks(q4k, 1, &mut rng))
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let tensors: Vec<_> = f.tensors().iter().collect();
    let (outs, _) = loader.load::<f32>(&f, &tensors, &mut |_| {}).unwrap();
    for (t, out) in tensors.iter().zip(&outs) {
        assert_eq!(out.len() as u64, t.n_elems, "{}", t.name);
        let got = match out.len() {
            0 => Vec::new(),
            _ => g.stream().clone_dtoh(out).unwrap(),
        };
        let want: Vec<f32> = cpu::dequantize_to_vec(t.ty, f.tensor_data(t).unwrap()).unwrap();
        assert_bits_eq(&t.name, &got, &want);
    }
    let mut none: Vec<f32> = Vec::new();
    g.dequantize_host(q4k, &[], &mut none).unwrap();
}

/// Decoding into memory the caller owns, on its raw stream (the legacy
/// default one, and one of its own), leaves the thread's current CUDA
/// context as it found it (none, here): the CUDA runtime (PyTorch's current
/// device) reads it. And the values are right.
#[test]
fn foreign_calls_leave_the_current_context_as_it_was() {
    use cudarc::driver::{sys, DevicePtr};
    use gguf_dequant::gpu::ForeignBuffer;
    use gguf_dequant::pipeline::LoadOptions;
    use gguf_dequant::shard::Shard;
    let Some(loader) = gpu("foreign calls").map(|g| g.loader(&LoadOptions::default()).unwrap())
    else {
        return;
    };
    let g = loader.device();
    let f = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    let t = f.tensors().iter().find(|t| t.ty == GgmlType::Q4_K).unwrap();
    let blocks = f.tensor_data(t).unwrap();
    let want: Vec<f32> = cpu::dequantize_to_vec(t.ty, blocks).unwrap();
    let own = g.context().new_stream().unwrap();
    let src = g.stream().clone_htod(blocks).unwrap();
    let mut out = g.stream().alloc_zeros::<f32>(want.len()).unwrap();
    fn ptr<T>(s: &cudarc::driver::CudaSlice<T>) -> u64 {
        let (ptr, _record) = s.device_ptr(s.stream());
        ptr
    }
    let (src_buf, out_buf) = (
        ForeignBuffer {
            ptr: ptr(&src),
            len: blocks.len(),
        },
        ForeignBuffer {
            ptr: ptr(&out),
            len: want.len(),
        },
    );
    g.stream().synchronize().unwrap();
    let no_context = || {
        // SAFETY: making no context current is always allowed.
        unsafe { sys::cuCtxSetCurrent(std::ptr::null_mut()) }
            .result()
            .unwrap();
    };
    let current = || {
        let mut ctx = std::ptr::null_mut();
        // SAFETY: writes the thread's current context into `ctx`.
        unsafe { sys::cuCtxGetCurrent(&mut ctx) }.result().unwrap();
        ctx
    };
    for stream in [std::ptr::null_mut(), own.cu_stream()] {
        for call in ["load_into_foreign", "dequantize_foreign"] {
            g.context().bind_to_thread().unwrap();
            g.stream().memset_zeros(&mut out).unwrap();
            g.context().synchronize().unwrap();
            no_context();
            // SAFETY: `src` and `out` are this context's memory of the sizes
            // given, unused meanwhile; `stream` a live stream of the context.
            unsafe {
                match call {
                    "load_into_foreign" => loader
                        .load_into_foreign::<f32>(stream, &f, &[(t, Shard::whole(t))], &[out_buf])
                        .map(|_| ()),
                    _ => g.dequantize_foreign::<f32>(stream, t.ty, src_buf, out_buf),
                }
            }
            .unwrap();
            assert!(current().is_null(), "{call} left a context current");
            g.context().bind_to_thread().unwrap();
            g.context().synchronize().unwrap();
            let got = g.stream().clone_dtoh(&out).unwrap();
            assert_bits_eq(call, &got, &want);
        }
    }
}

/// Tensor-parallel loads on the one GPU: a world of 1, and of 2 ranks as two
/// loaders on device 0 (each its own streams and pinned staging), loading at
/// once; the gathered shards equal the CPU's decode of each whole tensor.
#[test]
fn sharded_loads_as_one_and_two_ranks_on_one_gpu() {
    use gguf_dequant::parallel::{ModelLoad, Split};
    use gguf_dequant::pipeline::LoadOptions;
    let Some(g) = gpu("sharded loads") else {
        return;
    };
    let f = shards::llama_layer();
    for world in [1, 2] {
        let loaders: Vec<_> = (0..world)
            .map(|_| {
                let gpu = Gpu::from_context(g.context().clone()).unwrap();
                gpu.loader(&LoadOptions::default()).unwrap()
            })
            .collect();
        let load = ModelLoad::new(&f).split(Split::megatron).world_size(world);
        let ranks = load.run::<bf16, Gpu>(&loaders).unwrap();
        if world == 1 {
            // one rank on one loader, on this thread: the same tensors
            let one = load.load_rank::<bf16, Gpu>(&loaders[0], 0, &mut |_| {});
            let one = one.unwrap();
            let names = |r: &gguf_dequant::parallel::RankLoad<_>| {
                r.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>()
            };
            assert_eq!(names(&one), names(&ranks[0]));
        }
        let host: Vec<Vec<Vec<bf16>>> = ranks
            .iter()
            .zip(loaders.iter().map(|l| l.device()))
            .map(|(r, g)| {
                r.tensors
                    .iter()
                    .map(|t| g.stream().clone_dtoh(&t.data).unwrap())
                    .collect()
            })
            .collect();
        for (i, t) in f.tensors().iter().enumerate() {
            let want: Vec<bf16> = cpu::dequantize_to_vec(t.ty, f.tensor_data(t).unwrap()).unwrap();
            let parts: Vec<_> = ranks
                .iter()
                .zip(&host)
                .map(|(r, h)| (&r.tensors[i].shard, &h[i][..]))
                .collect();
            shards::check_ranks(t, &parts, &want, &world.to_string());
        }
        let sent: u64 = ranks.iter().map(|r| r.report.compressed_bytes).sum();
        println!("world {world}: {sent} compressed bytes sent");
    }
}

/// Tensor-parallel loads over two devices, rank i on device i (`run` with
/// a loader each): the gathered shards equal the CPU's decode. Needs two
/// devices: skipped (saying so) on a machine with one, as a GPU runner with
/// a single card is; scripts/fake-gpu.sh runs it over two software devices.
#[test]
fn sharded_loads_over_two_devices() {
    use gguf_dequant::parallel::{ModelLoad, Split};
    if gpu("two devices").is_none() {
        return;
    }
    let count = gguf_dequant::gpu::device_count().unwrap();
    if count < 2 {
        println!("SKIPPED two devices: this machine has {count}");
        return;
    }
    let f = shards::llama_layer();
    let opts = gguf_dequant::pipeline::LoadOptions::default();
    let loaders: Vec<_> = (0..2)
        .map(|i| Gpu::new(i).unwrap().loader(&opts).unwrap())
        .collect();
    let gpus: Vec<&Gpu> = loaders.iter().map(|l| l.device()).collect();
    let load = ModelLoad::new(&f).split(Split::megatron).world_size(2);
    let ranks = load.run::<f16, Gpu>(&loaders).unwrap();
    for (i, t) in f.tensors().iter().enumerate() {
        let want: Vec<f16> = cpu::dequantize_to_vec(t.ty, f.tensor_data(t).unwrap()).unwrap();
        let host: Vec<Vec<f16>> = ranks
            .iter()
            .zip(&gpus)
            .map(|(r, g)| g.stream().clone_dtoh(&r.tensors[i].data).unwrap())
            .collect();
        let parts: Vec<_> = ranks
            .iter()
            .zip(&host)
            .map(|(r, h)| (&r.tensors[i].shard, &h[..]))
            .collect();
        shards::check_ranks(t, &parts, &want, "devices 0 and 1");
    }
}

/// candle tensors on candle's CUDA device, decoded by our kernels in its
/// context and stream: every tensor of the fixture in each dtype equals the
/// CPU decode, and candle computes with them.
#[cfg(feature = "candle-cuda")]
#[test]
fn candle_tensors_on_the_gpu() {
    use candle_core::{DType, Device};
    if gpu("candle tensors").is_none() {
        return;
    }
    let dev = Device::new_cuda(0).unwrap();
    let file = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    for dtype in [DType::F32, DType::F16, DType::BF16] {
        let loaded = gguf_dequant::candle::load(&file, dtype, &dev, |_| true).unwrap();
        for t in file.tensors() {
            let got = loaded[&t.name].to_dtype(DType::F32).unwrap();
            let want: Vec<f32> =
                cpu::dequantize_to_vec(t.ty, file.tensor_data(t).unwrap()).unwrap();
            let want = candle_core::Tensor::from_vec(want, got.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            let (g, w) = (
                got.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_bits_eq(&format!("candle {} as {dtype:?}", t.name), &g, &w);
            // candle computes with it on the device
            let sum = loaded[&t.name]
                .to_dtype(DType::F32)
                .unwrap()
                .sum_all()
                .unwrap();
            assert!(sum.to_scalar::<f32>().unwrap().is_finite());
        }
    }
}

/// A stream or buffer of another device's context is refused before any
/// launch (the kernels are loaded in the `Gpu`'s own context), and the same
/// call on the `Gpu`'s own stream decodes. Needs two devices: skipped
/// (saying so) with one; scripts/fake-gpu.sh runs it over two software
/// devices.
#[test]
fn a_stream_of_another_context_is_refused() {
    let Some(g0) = gpu("another context") else {
        return;
    };
    let count = gguf_dequant::gpu::device_count().unwrap();
    if count < 2 {
        println!("SKIPPED another context: this machine has {count} device");
        return;
    }
    let g1 = Gpu::new(1).unwrap();
    let ty = GgmlType::Q4_0;
    let blocks = random_blocks(ty, 4, &mut SynthRng(3));
    let n = 4 * ty.block_elems();
    let src0 = g0.stream().clone_htod(&blocks).unwrap();
    let mut dst0 = g0.stream().alloc_zeros::<f32>(n).unwrap();
    let src1 = g1.stream().clone_htod(&blocks).unwrap();
    let mut dst1 = g1.stream().alloc_zeros::<f32>(n).unwrap();
    let refused = [
        g0.dequantize_on(g1.stream(), ty, &src0.as_view(), &mut dst0.as_view_mut()),
        g0.dequantize_on(g0.stream(), ty, &src1.as_view(), &mut dst0.as_view_mut()),
        g0.dequantize_on(g0.stream(), ty, &src0.as_view(), &mut dst1.as_view_mut()),
    ];
    for (i, r) in refused.into_iter().enumerate() {
        let e = r.expect_err("another context's stream or buffer must be refused");
        assert!(
            e.to_string().contains("another CUDA context"),
            "case {i}: {e}"
        );
    }
    g0.dequantize_on(g0.stream(), ty, &src0.as_view(), &mut dst0.as_view_mut())
        .unwrap();
    let got = g0.stream().clone_dtoh(&dst0).unwrap();
    let want: Vec<f32> = cpu::dequantize_to_vec(ty, &blocks).unwrap();
    assert_bits_eq("on its own stream", &got, &want);
    // device 1's buffers were only written by their zeroing and upload: let those finish
    // before the buffers are freed (the software driver runs queued work as
    // late as it may, and reported the free racing the zeroing in 14 of 30
    // runs of this test alone)
    g1.context().synchronize().unwrap();
}
