//! PLACEHOLDER: q2_0 is not written yet.

use super::Format;
use crate::blocks::block_q2_0;
use crate::types::GgmlType;

pub struct Q2_0;
impl Format for Q2_0 {
    const TYPE: GgmlType = GgmlType::Q2_0;
    type Block = block_q2_0;
    fn decode(_b: &block_q2_0, _y: &mut [f32]) {
        todo!("q2_0 decoder")
    }
}
