//! PLACEHOLDER: q4_1 is not written yet.

use super::Format;
use crate::blocks::block_q4_1;
use crate::types::GgmlType;

pub struct Q4_1;
impl Format for Q4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    type Block = block_q4_1;
    fn decode(_b: &block_q4_1, _y: &mut [f32]) {
        todo!("q4_1 decoder")
    }
}
