//! PLACEHOLDER: q6_k is not written yet.

use super::Format;
use crate::blocks::block_q6_K;
use crate::types::GgmlType;

pub struct Q6_K;
impl Format for Q6_K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    type Block = block_q6_K;
    fn decode(_b: &block_q6_K, _y: &mut [f32]) {
        todo!("q6_k decoder")
    }
}
