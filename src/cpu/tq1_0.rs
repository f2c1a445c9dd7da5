//! PLACEHOLDER: tq1_0 is not written yet.

use super::Format;
use crate::blocks::block_tq1_0;
use crate::types::GgmlType;

pub struct TQ1_0;
impl Format for TQ1_0 {
    const TYPE: GgmlType = GgmlType::TQ1_0;
    type Block = block_tq1_0;
    fn decode(_b: &block_tq1_0, _y: &mut [f32]) {
        todo!("tq1_0 decoder")
    }
}
