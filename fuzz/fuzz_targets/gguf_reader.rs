//! Arbitrary bytes into the GGUF reader. A file it accepts must satisfy every
//! promise of the reader (checked here independently), every tensor's data must
//! be readable, and the file written again by `GgufWriter` must read back the same.

#![no_main]

use gguf_dequant::gguf::{GgufFile, GgufWriter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    check_invariants(&f);
    round_trip(&f);
});

fn check_invariants(f: &GgufFile) {
    let a = f.alignment();
    assert!(a.is_power_of_two() && a <= 1 << 20);
    assert_eq!(f.data_offset() % a, 0);
    assert!(f.data_offset() >= 24);
    assert_eq!(f.file_len(), f.as_bytes().len() as u64);
    for (k, v) in f.metadata() {
        assert!(
            std::ptr::eq(f.get(k).unwrap(), v),
            "key '{k}' is not unique"
        );
        let _ = std::hint::black_box(v.to_string());
        let _ = std::hint::black_box(v.to_json());
    }
    let mut touched = 0u64;
    for t in f.tensors() {
        assert!(std::ptr::eq(f.tensor(&t.name).unwrap(), t));
        assert!((1..=4).contains(&t.ne.len()));
        assert_eq!(t.n_elems, t.ne.iter().product::<u64>());
        assert_eq!(t.ty.bytes_for(t.n_elems), Some(t.nbytes));
        assert_eq!(t.ne[0] % t.ty.block_elems() as u64, 0);
        assert!(t.offset >= f.data_offset());
        assert_eq!((t.offset - f.data_offset()) % a, 0);
        assert!(t.offset + t.nbytes <= f.file_len());
        let d = f.tensor_data(t).expect("the data of an accepted tensor");
        assert_eq!(d.len() as u64, t.nbytes);
        touched = d.iter().fold(touched, |s, &b| s.wrapping_add(b as u64));
        assert_eq!(t.shape_row_major().len(), t.ne.len());
    }
    std::hint::black_box(touched);
    // No two tensors' bytes overlap (pairwise, as an oracle independent of the reader's sort).
    let ts = f.tensors();
    if ts.len() <= 256 {
        for (i, x) in ts.iter().enumerate() {
            for y in &ts[i + 1..] {
                let disjoint = x.nbytes == 0
                    || y.nbytes == 0
                    || x.offset + x.nbytes <= y.offset
                    || y.offset + y.nbytes <= x.offset;
                assert!(disjoint, "'{}' and '{}' overlap", x.name, y.name);
            }
        }
    }
}

fn round_trip(f: &GgufFile) {
    let mut w = GgufWriter::new();
    w.set_version(f.version()).unwrap();
    for (k, v) in f.metadata() {
        w.add_kv(k.clone(), v.clone())
            .expect("the writer refused a key the reader accepted");
    }
    for t in f.tensors() {
        w.add_tensor(t.name.clone(), t.ty, &t.ne, f.tensor_data(t).unwrap())
            .expect("the writer refused a tensor the reader accepted");
    }
    let g = GgufFile::from_bytes(w.to_bytes()).expect("the writer's file must read");
    // Debug, not ==: a NaN value must compare equal to itself here.
    assert_eq!(format!("{:?}", f.metadata()), format!("{:?}", g.metadata()));
    assert_eq!(f.version(), g.version());
    assert_eq!(f.alignment(), g.alignment());
    assert_eq!(f.tensors().len(), g.tensors().len());
    for (x, y) in f.tensors().iter().zip(g.tensors()) {
        assert_eq!(
            (&x.name, x.ty, &x.ne, x.nbytes),
            (&y.name, y.ty, &y.ne, y.nbytes)
        );
        assert_eq!(f.tensor_data(x).unwrap(), g.tensor_data(y).unwrap());
    }
}
