//! Shared by the decoder targets.

use gguf_dequant::GgmlType;

include!(concat!(env!("OUT_DIR"), "/ready.rs"));

/// The types fuzzed: dequantizable, with a written (non-placeholder) decoder.
pub fn ready_types() -> Vec<GgmlType> {
    let v: Vec<GgmlType> = READY
        .iter()
        .map(|n| GgmlType::from_name(n).expect("a CPU decoder file named after no type"))
        .collect();
    assert!(v.iter().all(|t| t.is_dequantizable()));
    v
}
