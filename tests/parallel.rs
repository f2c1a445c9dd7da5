#![cfg(feature = "cuda")]
//! Shards through the loader pipeline, and tensor-parallel loads over several
//! emulated devices: each device receives only its shards' compressed bytes
//! (counted by the emulated device), decodes them, and the ranks' parts put
//! back together equal the whole tensor decoded on the CPU, to the bit.

mod common;

use common::*;
use gguf_dequant::emulated::device::{EmuDevice, EmuOut, EmuStream};
use gguf_dequant::gguf::{GgufFile, GgufWriter, TensorInfo};
use gguf_dequant::parallel::{ModelLoad, RankLoad, Split};
use gguf_dequant::pipeline::{Device, LoadOptions, Loader};
use gguf_dequant::shard::Shard;
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::{cpu, GgmlType, OutElem};
use half::{bf16, f16};

/// A fresh emulated device's loader, with `opts()`.
fn emulated_loader() -> Loader<EmuDevice> {
    let dev = EmuDevice::new();
    let stream = dev.new_stream().unwrap();
    Loader::new(dev, stream, &opts()).unwrap()
}

/// Small staging buffers: a column shard's rows take several strided copies.
fn opts() -> LoadOptions {
    LoadOptions::default()
        .with_chunk_bytes(64 << 10)
        .with_streams(2)
}

/// One tensor of every type (rows of 6 blocks, 150 x 2 rows), and an f32
/// tensor whose half row is larger than a staging buffer.
fn file() -> GgufFile {
    let mut w = GgufWriter::new();
    let mut rng = Rng(23);
    for ty in GgmlType::dequantizable() {
        let ne = [6 * ty.block_elems() as u64, 150, 2];
        w.add_tensor(ty.name(), ty, &ne, random_blocks(ty, 6 * 300, &mut rng))
            .unwrap();
    }
    let wide = [1u64 << 16, 3];
    w.add_tensor(
        "wide",
        GgmlType::F32,
        &wide,
        random_blocks(GgmlType::F32, 3 << 16, &mut rng),
    )
    .unwrap();
    GgufFile::from_bytes(w.to_bytes()).unwrap()
}

fn whole<O: OutElem>(f: &GgufFile, t: &TensorInfo) -> Vec<O> {
    cpu::dequantize_to_vec(t.ty, f.tensor_data(t).unwrap()).unwrap()
}

/// Bytes of the shard's blocks: what should cross the bus.
fn shard_bytes(t: &TensorInfo, s: &Shard) -> u64 {
    s.byte_ranges(t.ty, &t.ne)
        .iter()
        .map(|r| r.end - r.start)
        .sum()
}

fn copy_out<O: OutElem>(dev: &EmuDevice, stream: &EmuStream, out: &EmuOut<O>) -> Vec<O> {
    let mut got = vec![O::from_f32(f32::NAN); out.len()];
    dev.copy_out(stream, out, &mut got).unwrap();
    got
}

fn some_shards(t: &TensorInfo) -> Vec<Shard> {
    let qk = t.ty.block_elems() as u64;
    let (rows, cols) = (t.ne[1..].iter().product::<u64>(), t.ne[0]);
    let mut v = vec![
        Shard::whole(t),
        Shard {
            rows: 3..rows / 2 + 7,
            cols: 0..cols,
        },
        Shard {
            rows: 0..rows,
            cols: 2 * qk..5 * qk,
        },
        Shard {
            rows: 1..2,
            cols: qk..2 * qk,
        },
        Shard::of_rows(t, 2, 3).unwrap(),
        Shard::of_cols(t, 1, 2).unwrap(),
    ];
    v.retain(|s| s.check(&t.name, t.ty, &t.ne).is_ok());
    v
}

/// Every type, each shard loaded alone through the pipeline: the values of
/// the sliced whole tensor, and only the shard's bytes copied to the device.
fn check_shards<O: OutElem + Bits>() {
    let f = file();
    for t in f.tensors() {
        let all: Vec<O> = whole(&f, t);
        for s in some_shards(t) {
            let loader = emulated_loader();
            let (dev, stream) = (loader.device(), loader.stream());
            let (outs, report) = loader
                .load_parts::<O>(&f, &[(t, s.clone())], &mut |_| {})
                .unwrap();
            let what = format!("{} {s:?} as {}", t.name, O::OUT);
            assert_bits_eq(
                &what,
                &copy_out(dev, stream, &outs[0]),
                &shards::slice(&all, t, &s),
            );
            let want = shard_bytes(t, &s);
            let moved = (dev.bytes_copied_in(), report.compressed_bytes);
            assert_eq!(moved, (want, want), "{what}");
        }
    }
}

#[test]
fn every_type_every_shard_through_the_pipeline_f32() {
    check_shards::<f32>();
}

#[test]
fn every_type_every_shard_through_the_pipeline_bf16() {
    check_shards::<bf16>();
}

/// A Llama-shaped layer split Megatron-style over `world` emulated devices
/// (columns of 3 blocks a row: uneven over 2 ranks).
fn check_world<O: OutElem + Bits>(world: usize) {
    let f = shards::llama_layer();
    let kinds: Vec<Split> = f.tensors().iter().map(Split::megatron).collect();
    assert!(
        kinds.contains(&Split::Rows) && kinds.contains(&Split::Cols),
        "{kinds:?}"
    );
    let loaders: Vec<Loader<EmuDevice>> = (0..world).map(|_| emulated_loader()).collect();
    let load = ModelLoad::new(&f).split(Split::megatron).world_size(world);
    let plan = load.plan().unwrap();
    let loads = load.run::<O, EmuDevice>(&loaders).unwrap();
    let ranks: Vec<(RankLoad<EmuOut<O>>, Vec<O>)> = loads
        .into_iter()
        .enumerate()
        .map(|(r, l)| {
            let values = l
                .tensors
                .iter()
                .flat_map(|t| copy_out(loaders[r].device(), loaders[r].stream(), &t.data))
                .collect::<Vec<O>>();
            (l, values)
        })
        .collect();
    for (r, (l, _)) in ranks.iter().enumerate() {
        let want: u64 = plan[r].iter().map(|(t, s)| shard_bytes(t, s)).sum();
        let copied = loaders[r].device().bytes_copied_in();
        assert_eq!(copied, want, "rank {r} of {world}");
        assert_eq!(l.report.compressed_bytes, want);
    }
    for (i, t) in f.tensors().iter().enumerate() {
        let all: Vec<O> = whole(&f, t);
        if kinds[i] == Split::Replicate {
            for (l, values) in &ranks {
                assert_bits_eq(&format!("{} replicated", t.name), part(l, values, i), &all);
            }
            continue;
        }
        let parts: Vec<_> = ranks
            .iter()
            .map(|(l, values)| (&l.tensors[i].shard, part(l, values, i)))
            .collect();
        let together = shards::gather(t, &parts);
        assert_bits_eq(&format!("{} over {world} ranks", t.name), &together, &all);
    }
}

/// Tensor `i`'s values among a rank's values (its tensors' one after another).
fn part<'a, O: OutElem>(l: &RankLoad<EmuOut<O>>, values: &'a [O], i: usize) -> &'a [O] {
    let start: u64 = l.tensors[..i].iter().map(|x| x.shard.n_elems()).sum();
    &values[start as usize..(start + l.tensors[i].shard.n_elems()) as usize]
}

#[test]
fn a_llama_layer_over_one_two_and_three_devices() {
    check_world::<f16>(1);
    check_world::<bf16>(2);
    check_world::<f32>(3);
}

/// What cannot be planned is refused before anything is loaded, by name.
#[test]
fn impossible_plans_are_errors() {
    let f = file();
    let q4 = |t: &TensorInfo| t.ty == GgmlType::Q4_K;
    let err = |load: ModelLoad| load.plan().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err(ModelLoad::new(&f).world_size(0)).contains("0 ranks"));
    // 6 blocks a row cannot go to 7 ranks
    let seven = err(ModelLoad::new(&f)
        .tensors(q4)
        .split(|_| Split::Cols)
        .world_size(7));
    assert!(
        seven.contains("tensor 'q4_K'") && seven.contains("part"),
        "{seven}"
    );
    let two = ModelLoad::new(&f)
        .tensors(q4)
        .split(|_| Split::Rows)
        .world_size(2);
    assert_eq!(two.plan().unwrap().len(), 2);
    let one = [emulated_loader()];
    let one_device = two.run::<f32, EmuDevice>(&one);
    let msg = one_device.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("2 ranks loaded on 1 devices"), "{msg}");
    let no_rank_2 = two.load_rank::<f32, EmuDevice>(&one[0], 2, &mut |_| {});
    let msg = no_rank_2.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("rank 2 of a world of 2"), "{msg}");
    assert_eq!(one[0].device().bytes_copied_in(), 0);
}
