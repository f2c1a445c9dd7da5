//! PLACEHOLDER: q5_0 is not written yet.

use super::Format;
use crate::blocks::block_q5_0;
use crate::types::GgmlType;

pub struct Q5_0;
impl Format for Q5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    type Block = block_q5_0;
    fn decode(_b: &block_q5_0, _y: &mut [f32]) {
        todo!("q5_0 decoder")
    }
}
