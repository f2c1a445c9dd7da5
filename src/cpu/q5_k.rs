//! PLACEHOLDER: q5_k is not written yet.

use super::Format;
use crate::blocks::block_q5_K;
use crate::types::GgmlType;

pub struct Q5_K;
impl Format for Q5_K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    type Block = block_q5_K;
    fn decode(_b: &block_q5_K, _y: &mut [f32]) {
        todo!("q5_k decoder")
    }
}
