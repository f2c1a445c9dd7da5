//! PLACEHOLDER: q8_0 is not written yet.

use super::Format;
use crate::blocks::block_q8_0;
use crate::types::GgmlType;

pub struct Q8_0;
impl Format for Q8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    type Block = block_q8_0;
    fn decode(_b: &block_q8_0, _y: &mut [f32]) {
        todo!("q8_0 decoder")
    }
}
