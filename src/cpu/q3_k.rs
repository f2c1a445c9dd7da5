//! PLACEHOLDER: q3_k is not written yet.

use super::Format;
use crate::blocks::block_q3_K;
use crate::types::GgmlType;

pub struct Q3_K;
impl Format for Q3_K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    type Block = block_q3_K;
    fn decode(_b: &block_q3_K, _y: &mut [f32]) {
        todo!("q3_k decoder")
    }
}
