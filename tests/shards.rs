//! Shards (rows, columns, both) of a tensor of every type, decoded from their
//! own blocks on the CPU and the emulated kernels: the same bits as slicing the
//! whole decoded tensor; unaligned column splits refused with the reason.

mod common;

use common::*;
use gguf_dequant::gguf::{GgufFile, GgufWriter, TensorInfo};
#[cfg(feature = "cuda")]
use gguf_dequant::shard::dequantize_shard_with;
use gguf_dequant::shard::{dequantize_shard, Shard};
use gguf_dequant::synth::{random_blocks, Rng};
use gguf_dequant::{cpu, GgmlType};
use half::bf16;

/// A file with one tensor of every type: rows of 6 blocks, 5 x 2 rows.
fn file() -> GgufFile {
    let mut w = GgufWriter::new();
    let mut rng = Rng(17);
    for ty in GgmlType::dequantizable() {
        let ne = [6 * ty.block_elems() as u64, 5, 2];
        w.add_tensor(ty.name(), ty, &ne, random_blocks(ty, 60, &mut rng))
            .unwrap();
    }
    GgufFile::from_bytes(w.to_bytes()).unwrap()
}

fn shards(t: &TensorInfo) -> Vec<Shard> {
    let qk = t.ty.block_elems() as u64;
    vec![
        Shard::whole(t),
        Shard {
            rows: 3..7,
            cols: 0..6 * qk,
        },
        Shard {
            rows: 0..10,
            cols: 2 * qk..5 * qk,
        },
        Shard {
            rows: 9..10,
            cols: qk..2 * qk,
        },
        Shard {
            rows: 4..4,
            cols: 0..qk,
        },
        Shard::of_rows(t, 2, 3).unwrap(),
        Shard::of_cols(t, 1, 4).unwrap(),
    ]
}

#[test]
fn every_type_every_shard_on_the_cpu_and_the_emulated_kernels() {
    let f = file();
    for t in f.tensors() {
        let whole: Vec<bf16> = cpu::dequantize_to_vec(t.ty, f.tensor_data(t).unwrap()).unwrap();
        for s in shards(t) {
            let want = shards::slice(&whole, t, &s);
            let mut got = vec![bf16::NAN; want.len()];
            dequantize_shard(&f, t, &s, &mut got).unwrap();
            assert_bits_eq(&format!("{} {s:?} cpu", t.name), &got, &want);
            #[cfg(feature = "cuda")]
            {
                let mut emu = vec![bf16::NAN; want.len()];
                dequantize_shard_with(&f, t, &s, &mut emu, gguf_dequant::emulated::dequantize)
                    .unwrap();
                assert_bits_eq(&format!("{} {s:?} emulated", t.name), &emu, &want);
            }
        }
    }
}

#[test]
fn unaligned_or_outside_shards_are_refused() {
    let f = file();
    let t = f.tensor("q4_K").unwrap();
    let mut out = vec![bf16::ZERO; 10 * 100];
    let err = dequantize_shard(
        &f,
        t,
        &Shard {
            rows: 0..10,
            cols: 0..100,
        },
        &mut out,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("block boundaries (multiples of 256)"),
        "{err}"
    );
    let mut out = vec![bf16::ZERO; 11 * 256];
    let err = dequantize_shard(
        &f,
        t,
        &Shard {
            rows: 0..11,
            cols: 0..256,
        },
        &mut out,
    )
    .unwrap_err();
    assert!(err.to_string().contains("rows outside 0..10"), "{err}");
    let mut out = vec![bf16::ZERO; 3];
    assert!(dequantize_shard(
        &f,
        t,
        &Shard {
            rows: 0..1,
            cols: 0..256
        },
        &mut out
    )
    .is_err());
    assert!(
        Shard::of_cols(t, 0, 7).is_err(),
        "6 blocks a row cannot make 7 parts"
    );
    assert!(Shard::of_rows(t, 3, 3).is_err());
}

/// The Megatron rule by llama.cpp's names: output projections by rows, the
/// ones reducing over them by columns, the rest whole.
#[test]
fn megatron_splits_by_role() {
    use gguf_dequant::shard::Split;
    let f = shards::llama_layer();
    let split = |n: &str| Split::megatron(f.tensor(&format!("blk.0.{n}.weight")).unwrap());
    for (role, want) in [
        ("attn_q", Split::Rows),
        ("attn_v", Split::Rows),
        ("ffn_up", Split::Rows),
        ("attn_output", Split::Cols),
        ("ffn_down", Split::Cols),
        ("attn_norm", Split::Replicate),
    ] {
        assert_eq!(split(role), want, "{role}");
    }
}

/// A shard's shape holds exactly its elements, for a vector too: the empty
/// shard of a vector's rows (`rows: 0..0`) is `[0]`, not `[cols]` (found by
/// the Python fuzzer, 2026-12-06: `get_tensor(name, shard=((0, 0), None))`
/// of a 1-D tensor made an array of 0 values in the shape `[cols]`, an
/// "internal error").
#[test]
fn a_shard_shape_holds_its_elements() {
    let mut w = GgufWriter::new();
    let ty = GgmlType::Q8_0;
    w.add_tensor("v", ty, &[64], random_blocks(ty, 2, &mut Rng(3)))
        .unwrap();
    let v = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let t = v.tensor("v").unwrap();
    let sh = |rows, cols| Shard { rows, cols };
    let vector = [
        (sh(0..0, 0..64), vec![0]),
        (sh(1..1, 32..64), vec![0]),
        (sh(0..1, 32..64), vec![32]),
        (sh(0..1, 0..0), vec![0]),
        (Shard::whole(t), vec![64]),
    ];
    for (s, shape) in vector {
        assert_eq!(s.shape(&t.ne), shape, "{s:?} of a vector");
        let mut out = vec![0f32; s.n_elems() as usize];
        dequantize_shard(&v, t, &s, &mut out).unwrap();
    }
    let f = file();
    for t in f.tensors() {
        for s in shards(t) {
            let n: u64 = s.shape(&t.ne).iter().product();
            assert_eq!(n, s.n_elems(), "{s:?} of {:?}", t.ne);
        }
    }
}

/// Splits are as even as whole blocks go, the first parts larger, none
/// empty, and together cover the row exactly once.
#[test]
fn splits_are_even_in_whole_blocks() {
    let mut w = GgufWriter::new();
    let ty = GgmlType::Q4_K;
    w.add_tensor("t", ty, &[6 * 256, 5], random_blocks(ty, 30, &mut Rng(1)))
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
    let t = f.tensor("t").unwrap();
    let cols: Vec<_> = (0..4)
        .map(|i| Shard::of_cols(t, i, 4).unwrap().cols)
        .collect();
    assert_eq!(cols, [0..512, 512..1024, 1024..1280, 1280..1536]);
    let rows: Vec<_> = (0..3)
        .map(|i| Shard::of_rows(t, i, 3).unwrap().rows)
        .collect();
    assert_eq!(rows, [0..2, 2..4, 4..5]);
    assert!(Shard::of_cols(t, 0, 7).is_err() && Shard::of_rows(t, 5, 5).is_err());
}
