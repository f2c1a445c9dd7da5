//! PLACEHOLDER: q1_0 is not written yet.

use super::Format;
use crate::blocks::block_q1_0;
use crate::types::GgmlType;

pub struct Q1_0;
impl Format for Q1_0 {
    const TYPE: GgmlType = GgmlType::Q1_0;
    type Block = block_q1_0;
    fn decode(_b: &block_q1_0, _y: &mut [f32]) {
        todo!("q1_0 decoder")
    }
}
