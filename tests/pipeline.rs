#![cfg(feature = "cuda")]
//! The loader pipeline (staging, streams, events) on the emulated device, which
//! runs each stream as late as it may and fails any operation the pipeline did
//! not order: every tensor of the real-weights fixture and of Qwen- and
//! Llama-shaped synthetic models, in every output type, with tensors spanning
//! many staging chunks and slots reused across tensors, to the bit against the
//! CPU; and each ordering of the pipeline left out on purpose, caught.

mod common;

use common::*;
use gguf_dequant::emulated::device::EmuDevice;
use gguf_dequant::gguf::{GgufFile, GgufWriter, TensorInfo};
use gguf_dequant::pipeline::{Device, LoadOptions, Loader, Ordering};
use gguf_dequant::synth::{preset, random_blocks, Rng};
use gguf_dequant::{cpu, OutElem};
use half::{bf16, f16};

/// Small chunks and few slots: many chunks per tensor, slots reused often.
fn opts(streams: usize) -> LoadOptions {
    LoadOptions::default()
        .with_chunk_bytes(64 << 10)
        .with_streams(streams)
}

/// A loader on a fresh emulated device.
fn emulated(opts: &LoadOptions) -> Loader<EmuDevice> {
    let dev = EmuDevice::new();
    let stream = dev.new_stream().unwrap();
    Loader::new(dev, stream, opts).unwrap()
}

/// Loads every tensor of `file` through the pipeline on a fresh emulated
/// device and checks each against the CPU's decode of it, to the bit.
fn check_file<O: OutElem + Bits>(file: &GgufFile, opts: &LoadOptions) {
    let loader = emulated(opts);
    let (dev, alloc_stream) = (loader.device(), loader.stream());
    let tensors: Vec<&TensorInfo> = file.tensors().iter().collect();
    let mut last = 0;
    let (outs, report) = loader.load::<O>(file, &tensors, &mut |d| last = d).unwrap();
    let total: u64 = tensors.iter().map(|t| t.nbytes).sum();
    assert_eq!((report.compressed_bytes, last), (total, total));
    for (t, out) in tensors.iter().zip(&outs) {
        let mut got = vec![O::from_f32(f32::NAN); t.n_elems as usize];
        dev.copy_out(alloc_stream, out, &mut got).unwrap();
        let mut want = vec![O::default(); got.len()];
        cpu::dequantize(t.ty, file.tensor_data(t).unwrap(), &mut want).unwrap();
        assert_bits_eq(&format!("{} as {}", t.name, O::OUT), &got, &want);
    }
}

fn check_all_outputs(file: &GgufFile) {
    for streams in [2, 3] {
        check_file::<f32>(file, &opts(streams));
        check_file::<f16>(file, &opts(streams));
        check_file::<bf16>(file, &opts(streams));
    }
}

/// A file of random valid blocks with these tensors.
fn synthetic(plans: &[gguf_dequant::synth::TensorPlan], seed: u64) -> GgufFile {
    let mut w = GgufWriter::new();
    let mut rng = Rng(seed);
    for p in plans {
        let n: u64 = p.ne.iter().product();
        let blocks = (n / p.ty.block_elems() as u64) as usize;
        w.add_tensor(
            p.name.clone(),
            p.ty,
            &p.ne,
            random_blocks(p.ty, blocks, &mut rng),
        )
        .unwrap();
    }
    GgufFile::from_bytes(w.to_bytes()).unwrap()
}

#[test]
fn every_tensor_of_the_real_weights() {
    let file = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    check_all_outputs(&file);
}

/// The first four layers of the Qwen2.5-0.5B Q4_K_M preset (f32, q5_0, q8_0,
/// q4_K, q6_K, as in the real file), the embedding left out for time.
#[test]
fn a_qwen_shaped_model() {
    let plans: Vec<_> = preset("qwen2.5-0.5b-q4_k_m")
        .unwrap()
        .into_iter()
        .filter(|p| (0..4).any(|l| p.name.starts_with(&format!("blk.{l}."))))
        .collect();
    let file = synthetic(&plans, 1);
    check_file::<bf16>(&file, &opts(3));
    check_file::<f32>(&file, &opts(2));
}

/// Layer 0 of the Llama-3-8B Q4_K_M preset without its largest tensors.
#[test]
fn a_llama_shaped_layer() {
    let plans: Vec<_> = preset("llama-3-8b-q4_k_m")
        .unwrap()
        .into_iter()
        .filter(|p| p.name.starts_with("blk.0.") && p.ne.iter().product::<u64>() <= 1 << 22)
        .collect();
    assert!(plans.len() >= 4);
    let file = synthetic(&plans, 2);
    check_file::<f16>(&file, &opts(2));
}

/// Every type, in tensors of odd block counts around the chunk size.
#[test]
fn every_type_in_tensors_around_the_chunk_size() {
    let mut w = GgufWriter::new();
    let mut rng = Rng(3);
    for ty in gguf_dequant::GgmlType::dequantizable() {
        let chunk_blocks = (64 << 10) / ty.block_bytes();
        for blocks in [1, chunk_blocks - 1, chunk_blocks + 1, 2 * chunk_blocks + 3] {
            let ne = [(blocks * ty.block_elems()) as u64];
            w.add_tensor(
                format!("{ty}.{blocks}"),
                ty,
                &ne,
                random_blocks(ty, blocks, &mut rng),
            )
            .unwrap();
        }
    }
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    check_all_outputs(&file);
}

/// Tensors with no elements (a zero in their shape) load as empty outputs
/// among the others: device allocators refuse zero bytes (the emulated one
/// as the driver does), so the device gives them a minimal allocation.
#[test]
fn empty_tensors_among_others() {
    let mut w = GgufWriter::new();
    let mut rng = Rng(4);
    let q4k = gguf_dequant::GgmlType::Q4_K;
    w.add_tensor("before", q4k, &[512, 3], random_blocks(q4k, 6, &mut rng))
        .unwrap();
    for (i, ne) in [[256u64, 0], [0, 7]].iter().enumerate() {
        w.add_tensor(format!("empty.{i}"), q4k, ne, Vec::new())
            .unwrap();
    }
    w.add_tensor("after", q4k, &[256], random_blocks(q4k, 1, &mut rng))
        .unwrap();
    let file = GgufFile::from_bytes(w.to_bytes()).unwrap();
    assert_eq!(
        file.tensors().iter().map(|t| t.n_elems).collect::<Vec<_>>(),
        [1536, 0, 0, 256]
    );
    check_all_outputs(&file);
}

/// A load that fails part way (the file shrinks under it: the last tensor's
/// bytes are gone) returns its error only once nothing of it is left queued,
/// so the outputs queued so far can be freed, or handed back to the engine
/// that owns them, with no copy or decode of them still to run.
#[test]
fn a_failed_load_leaves_nothing_queued() {
    let dir = TempDir::new("pipeline-shrink");
    let path = dir.join("model.gguf");
    let mut w = GgufWriter::new();
    let mut rng = Rng(5);
    let q4k = gguf_dequant::GgmlType::Q4_K;
    for i in 0..4 {
        let blocks = random_blocks(q4k, 1200, &mut rng);
        w.add_tensor(format!("t{i}"), q4k, &[256 * 1200], blocks)
            .unwrap();
    }
    std::fs::write(&path, w.to_bytes()).unwrap();
    let file = GgufFile::open(&path).unwrap();
    let last = file.tensors().last().unwrap().offset;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(last + 4)
        .unwrap();
    let tensors: Vec<&TensorInfo> = file.tensors().iter().collect();
    let parts: Vec<_> = tensors
        .iter()
        .map(|t| (*t, gguf_dequant::shard::Shard::whole(t)))
        .collect();
    for into_callers in [false, true] {
        let loader = emulated(&opts(3));
        let (dev, stream) = (loader.device(), loader.stream());
        let err = if into_callers {
            let mut outs: Vec<_> = tensors
                .iter()
                .map(|t| dev.alloc_out::<f32>(stream, t.n_elems as usize).unwrap())
                .collect();
            let ready = dev.record(stream).unwrap();
            loader
                .load_parts_into(&ready, &file, &parts, &mut outs, &mut |_| {})
                .unwrap_err()
        } else {
            loader
                .load::<f32>(&file, &tensors, &mut |_| {})
                .unwrap_err()
        };
        assert!(err.to_string().contains("t3"), "{err}");
        assert_eq!(dev.queued_ops(), 0, "left queued after: {err}");
    }
}

/// A panic in the middle of a load (here the caller's progress callback's)
/// unwinds only after every slot stream has drained.
#[test]
fn a_panic_mid_load_leaves_nothing_queued() {
    let file = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    let tensors: Vec<&TensorInfo> = file.tensors().iter().collect();
    let loader = emulated(&opts(3));
    let mut calls = 0;
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loader.load::<f32>(&file, &tensors, &mut |_| {
            calls += 1;
            assert!(calls < 4, "the caller's callback panics");
        })
    }));
    assert!(unwound.is_err(), "the panic did not reach the caller");
    assert_eq!(loader.device().queued_ops(), 0);
    // and the loader is usable after the panic: the next load is whole
    let t = tensors[0];
    let mut got = vec![f32::NAN; t.n_elems as usize];
    loader
        .decode_part(&file, t, &gguf_dequant::shard::Shard::whole(t), &mut got)
        .unwrap();
    let want: Vec<f32> = cpu::dequantize_to_vec(t.ty, file.tensor_data(t).unwrap()).unwrap();
    assert_bits_eq("after the panic", &got, &want);
}

/// Without the wait for the output's allocation, a decode runs before it: the
/// emulated device refuses the load, naming the missing wait.
#[test]
fn a_decode_not_ordered_after_the_allocation_fails() {
    let file = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    let loader = emulated(&opts(2).with_skip(Some(Ordering::AllocationBeforeDecode)));
    let tensors: Vec<&TensorInfo> = file.tensors().iter().collect();
    let err = loader
        .load::<f32>(&file, &tensors, &mut |_| {})
        .expect_err("an unordered decode must fail");
    assert!(
        err.to_string().contains("an event wait is missing"),
        "{err}"
    );
}

/// Without the wait for a staging buffer's last copy, the host refills it
/// before the copy runs: the copy sends later blocks, and the output is wrong.
#[test]
fn a_refill_not_ordered_after_the_copy_corrupts_the_output() {
    let file = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    let t = file.tensor("minilm.f32").unwrap();
    assert!(
        t.nbytes > 3 * (64 << 10),
        "the tensor must span more chunks than slots"
    );
    let loader = emulated(&opts(2).with_skip(Some(Ordering::CopyBeforeRefill)));
    let mut got = vec![0f32; t.n_elems as usize];
    loader
        .decode_part(&file, t, &gguf_dequant::shard::Shard::whole(t), &mut got)
        .unwrap();
    let want: Vec<f32> = cpu::dequantize_to_vec(t.ty, file.tensor_data(t).unwrap()).unwrap();
    let wrong = got
        .iter()
        .zip(&want)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert!(wrong > 0, "an unordered refill must show in the output");
}

/// Into outputs the caller allocated on its own stream (an engine's
/// allocator): decodes wait for the caller's `ready` event, and the outputs
/// equal the CPU's; without that wait, the emulated device refuses the load.
#[test]
fn into_outputs_the_caller_owns() {
    use gguf_dequant::shard::Shard;
    let file = GgufFile::open(fixture("real-weights.gguf")).unwrap();
    let parts: Vec<(&TensorInfo, Shard)> = file
        .tensors()
        .iter()
        .map(|t| (t, Shard::whole(t)))
        .collect();
    for skip in [None, Some(Ordering::AllocationBeforeDecode)] {
        let loader = emulated(&opts(2).with_skip(skip));
        let dev = loader.device();
        let caller = dev.new_stream().unwrap();
        let mut outs: Vec<_> = parts
            .iter()
            .map(|(t, _)| dev.alloc_out::<bf16>(&caller, t.n_elems as usize).unwrap())
            .collect();
        let ready = dev.record(&caller).unwrap();
        let loaded = loader.load_parts_into(&ready, &file, &parts, &mut outs, &mut |_| {});
        if skip.is_some() {
            let err = loaded.expect_err("a decode before the caller's allocation must fail");
            assert!(
                err.to_string().contains("an event wait is missing"),
                "{err}"
            );
            continue;
        }
        let total: u64 = parts.iter().map(|(t, _)| t.nbytes).sum();
        assert_eq!(loaded.unwrap().compressed_bytes, total);
        for ((t, _), out) in parts.iter().zip(&outs) {
            let mut got = vec![bf16::NAN; t.n_elems as usize];
            dev.copy_out(&caller, out, &mut got).unwrap();
            let want: Vec<bf16> =
                cpu::dequantize_to_vec(t.ty, file.tensor_data(t).unwrap()).unwrap();
            assert_bits_eq(&format!("{} into the caller's output", t.name), &got, &want);
        }
    }
    // an output of the wrong size is refused before anything moves
    let loader = emulated(&opts(2));
    let dev = loader.device();
    let caller = dev.new_stream().unwrap();
    let mut short = vec![dev.alloc_out::<f32>(&caller, 1).unwrap()];
    let ready = dev.record(&caller).unwrap();
    let err = loader
        .load_parts_into(&ready, &file, &parts[..1], &mut short, &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("into an output of 1"), "{err}");
    assert_eq!(dev.bytes_copied_in(), 0);
}
