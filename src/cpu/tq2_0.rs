//! PLACEHOLDER: tq2_0 is not written yet.

use super::Format;
use crate::blocks::block_tq2_0;
use crate::types::GgmlType;

pub struct TQ2_0;
impl Format for TQ2_0 {
    const TYPE: GgmlType = GgmlType::TQ2_0;
    type Block = block_tq2_0;
    fn decode(_b: &block_tq2_0, _y: &mut [f32]) {
        todo!("tq2_0 decoder")
    }
}
