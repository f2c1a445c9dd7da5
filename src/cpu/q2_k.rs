//! PLACEHOLDER: q2_k is not written yet.

use super::Format;
use crate::blocks::block_q2_K;
use crate::types::GgmlType;

pub struct Q2_K;
impl Format for Q2_K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    type Block = block_q2_K;
    fn decode(_b: &block_q2_K, _y: &mut [f32]) {
        todo!("q2_k decoder")
    }
}
