//! Shared by the decoder targets.

use gguf_dequant::GgmlType;

/// The types fuzzed: every type the crate decodes (the list of formats).
pub fn ready_types() -> Vec<GgmlType> {
    GgmlType::dequantizable().collect()
}
