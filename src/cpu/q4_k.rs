//! PLACEHOLDER: q4_k is not written yet.

use super::Format;
use crate::blocks::block_q4_K;
use crate::types::GgmlType;

pub struct Q4_K;
impl Format for Q4_K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    type Block = block_q4_K;
    fn decode(_b: &block_q4_K, _y: &mut [f32]) {
        todo!("q4_k decoder")
    }
}
