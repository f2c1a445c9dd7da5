//! PLACEHOLDER: q5_1 is not written yet.

use super::Format;
use crate::blocks::block_q5_1;
use crate::types::GgmlType;

pub struct Q5_1;
impl Format for Q5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    type Block = block_q5_1;
    fn decode(_b: &block_q5_1, _y: &mut [f32]) {
        todo!("q5_1 decoder")
    }
}
